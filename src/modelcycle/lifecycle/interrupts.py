"""Ctrl-C (SIGINT) and SIGTERM stop a cycle cleanly.

* once :func:`install` has run (the CLI does that), SIGINT and SIGTERM raise
  :class:`Interrupted` (inside a flow, Prefect's own SIGTERM bridge marks the flow run crashed
  first, then hands the signal back to this handler); without it, SIGINT raises Python's
  ``KeyboardInterrupt``.
* :func:`deferred` holds both signals back while a side effect and its journal entry are
  written, and while a rollback runs: a signal that arrives then takes effect when the block
  ends, so a cycle stops between two side effects, never in the middle of one.
* The cycle awaits its training before it rolls back; a second signal while it waits gives up
  the rollback and leaves the repair to the next run or ``modelcycle doctor`` (the journal
  says what to undo).

The command line reads :func:`last_rollback` to say in one line what was rolled back, and
exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

_note: str | None = None


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (raised by the handler :func:`install` sets). Not a
    ``KeyboardInterrupt``: the command line's own framework would turn that into a silent exit
    before modelcycle could say what it rolled back."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


def _on_signal(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


def install() -> dict[int, Any]:
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in the main thread (the CLI); returns
    the handlers before, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install` replaced."""
    for s, handler in previous.items():
        signal.signal(s, handler)


def signal_of(exc: BaseException) -> int | None:
    """The signal behind an exception that stopped a cycle, if any."""
    if isinstance(exc, Interrupted):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    sig = getattr(exc, "signal", None)  # prefect.exceptions.TerminationSignal
    if type(exc).__name__ == "TerminationSignal" and isinstance(sig, int):
        return sig
    return None


def is_interrupt(exc: BaseException) -> bool:
    return signal_of(exc) is not None


def note_rollback(text: str | None) -> None:
    """Remember what the interrupted cycle rolled back (the CLI prints it)."""
    global _note
    _note = text


def last_rollback() -> str | None:
    return _note


def _deliver(signum: int, handler: Any) -> None:
    """Act on a held-back signal as ``handler`` (the handler before the block) would."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_IGN:
        return
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt
    else:
        raise Interrupted(signum)


class Held:
    """The signals that arrived inside a :func:`deferred` block."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __len__(self) -> int:
        return len(self.signals)


@contextmanager
def deferred(on_signal: Callable[[int, Held], None] | None = None) -> Iterator[Held]:
    """Hold SIGINT and SIGTERM back inside the block; the first one is delivered when it ends.

    ``on_signal(signum, held)`` is called as each one arrives (in the main thread, between two
    bytecodes of the block). Outside the main thread signals cannot be handled: the block runs
    as it is.
    """
    held = Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def record(signum: int, _frame: Any) -> None:
        held.signals.append(signum)
        if on_signal is not None:
            on_signal(signum, held)

    previous = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held.signals:
            first = signal.Signals(held.signals[0])
            _deliver(first, previous[first])
