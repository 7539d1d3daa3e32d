"""Named points of a cycle where a test or the chaos script can step in.

The lifecycle and the adapters call :func:`reach` at each boundary of a side effect ("before the
git commit", "right after MLflow registered the version", ...). Nothing happens unless one of
two hooks is set:

* in-process, :func:`injecting` (tests): a callable run at every point, which may raise to
  simulate a failure there;
* across processes, the environment variable ``MODELCYCLE_TRACE_SIGNAL=<point>:<SIGNAL>``
  (``scripts/chaos.py``): the process sends itself that signal (``KILL``, ``INT``, ``TERM``)
  the first time it reaches the point; ``INT`` goes to the whole process group, as a Ctrl-C in
  a terminal does. ``MODELCYCLE_TRACE_FILE=<path>`` appends every point reached to a file, so
  the script can see which points a cycle passes.

A point costs one dictionary lookup when no hook is set.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNAL_VAR = "MODELCYCLE_TRACE_SIGNAL"
FILE_VAR = "MODELCYCLE_TRACE_FILE"

_hook: Callable[[str], None] | None = None
_fired: set[str] = set()
_lock = threading.Lock()


def reach(point: str) -> None:
    """Mark that the cycle reached ``point``; run the hooks, if any."""
    if _hook is not None:
        _hook(point)
    trace = os.environ.get(FILE_VAR)
    if trace:
        with _lock, open(trace, "a", encoding="utf-8") as fh:
            fh.write(point + "\n")
    spec = os.environ.get(SIGNAL_VAR)
    if spec:
        _maybe_signal(point, spec)


def _maybe_signal(point: str, spec: str) -> None:
    where, _, name = spec.rpartition(":")
    if where != point:
        return
    with _lock:
        if point in _fired:
            return
        _fired.add(point)
    signum = getattr(signal, f"SIG{name.upper()}", None)
    if signum is None:
        return
    if signum == signal.SIGINT:
        os.killpg(os.getpgrp(), signum)  # a terminal's Ctrl-C reaches the whole group
    else:
        os.kill(os.getpid(), signum)


@contextmanager
def injecting(hook: Callable[[str], None]) -> Iterator[None]:
    """Run ``hook(point)`` at every point reached inside the block (tests)."""
    global _hook
    previous, _hook = _hook, hook
    try:
        yield
    finally:
        _hook = previous
