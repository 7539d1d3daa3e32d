"""Follow the ``champion`` alias: load the version it points at in the background, check it,
and swap it in by replacing one reference.

A thread reads the alias every ``poll_seconds`` (or at once when :meth:`Follower.wake` is
called). When it moved, the new version is loaded with
:func:`~modelcycle.serving.loader.load_version` and checked with
:func:`~modelcycle.serving.loader.check_serves` on a few rows (the input example saved with the
model, else the last requests the server answered); only then does :attr:`Follower.served`
point at it. Requests read that attribute once when they arrive and finish on what they read,
so a request in flight is never cut over and none waits for a load. The version served
before stays loaded, so a rollback to it is a swap without a load. A version that fails to
load or to check is never swapped in: the old one keeps serving, ``/health`` and the log say
why, and it is tried again only when the alias moves again, or after a backoff (the fault may
have been the store's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from modelcycle.config.secrets import redact
from modelcycle.errors import ModelcycleError
from modelcycle.registry.base import CHAMPION, ModelVersion, Registry
from modelcycle.serving.loader import Served, check_serves, load_version

log = logging.getLogger(__name__)

#: Seconds before a version that failed to load is tried again while the alias still names it.
RETRY_SECONDS = (30.0, 60.0, 120.0, 300.0, 600.0)
#: Rows the load check predicts.
CHECK_ROWS = 20


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Failure:
    """A version that was not swapped in, and why."""

    version: str
    message: str
    time: str
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "message": self.message, "time": self.time, "attempts": self.attempts}


class Follower:
    """Holds the served version (:attr:`served`) and keeps it on the alias.

    ``on_move(before, after)`` is called (in the follower's thread) when the alias is seen to
    have moved, with the version numbers (None: unset), before the new version loads; the
    command line records moves made outside modelcycle there. ``on_swap(old, new)`` after a
    swap, ``on_failure(failure)`` after a version was refused. ``sample`` gives recent request
    rows for the load check when the model has no input example.
    """

    def __init__(self, reg: Registry, name: str, *, alias: str = CHAMPION, poll_seconds: float = 2.0,
                 on_move: Callable[[str | None, str | None], None] | None = None,
                 on_swap: Callable[[Served | None, Served], None] | None = None,
                 on_failure: Callable[[Failure], None] | None = None,
                 on_loading: Callable[[ModelVersion], None] | None = None,
                 sample: Callable[[], pd.DataFrame | None] | None = None,
                 loader: Callable[[Registry, str, ModelVersion], Served] = load_version) -> None:
        self.reg, self.name, self.alias, self.poll_seconds = reg, name, alias, poll_seconds
        self.on_move, self.on_swap, self.on_failure, self.on_loading = on_move, on_swap, on_failure, on_loading
        self.sample = sample
        self.loader = loader
        self.served: Served | None = None  # the one reference requests read
        self.previous: Served | None = None  # the version served before, still loaded
        self.loaded_at: str | None = None
        self.last_poll: str | None = None
        self.poll_error: str | None = None
        self.failure: Failure | None = None
        self.notice: str | None = None  # what /health should say beside the version (the alias was removed)
        self.swaps = 0
        self._seen: str | None = None  # what the alias named at the last poll ("" = unset)
        self._retry_at = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one poll at a time (thread, wake-ups, tests)

    # ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="modelcycle-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Poll now (a registry webhook said the alias moved)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll()
            except Exception:  # the follower never dies: the old version keeps serving
                log.exception("following the %s alias of %s failed; trying again", self.alias, self.name)

    # ------------------------------------------------------------------------------------
    def poll(self) -> bool:
        """Read the alias once; load, check and swap when it moved. True when a version was
        swapped in."""
        with self._lock:
            try:
                target = self.reg.get_alias(self.name, self.alias)
            except ModelcycleError as exc:
                self.poll_error = redact(exc.message)
                log.warning("cannot read the %s alias of %s: %s (still serving %s)", self.alias, self.name,
                            self.poll_error, self._serving_text())
                return False
            self.last_poll = now_text()
            self.poll_error = None
            seen = target.version if target else ""
            if seen != self._seen:
                before = self._seen
                self._seen = seen
                if before is not None and self.on_move is not None:
                    try:
                        self.on_move(before or None, seen or None)
                    except Exception as exc:  # noqa: BLE001 - recording a move never stops serving
                        log.warning("could not record the move of %s@%s (%s -> %s): %s", self.name, self.alias,
                                    before or "unset", seen or "unset", exc)
                self._retry_at = 0.0  # the alias moved: a version that failed before may be tried again
            if target is None:
                if self.served is not None and self.notice is None:
                    self.notice = (f"the {self.alias} alias of {self.name} was removed; still serving "
                                   f"v{self.served.version.version} until it points at a version again")
                    log.warning("%s", self.notice)
                return False
            self.notice = None
            current = self.served.version.version if self.served else None
            if target.version == current:
                return False
            failed_here = self.failure is not None and self.failure.version == target.version
            if failed_here and time.monotonic() < self._retry_at:
                return False
            return self._load(target)

    def _load(self, target: ModelVersion) -> bool:
        kept = self.previous
        if kept is not None and kept.version.version == target.version and kept.version.source == target.source:
            self._swap(kept)  # back to the version served before (a rollback): no load, at once
            return True
        if self.on_loading is not None:
            self.on_loading(target)
        try:
            served = self.loader(self.reg, self.name, target)
            rows = self._check_rows(served)
            if rows is not None:
                check_serves(served, rows)
        except ModelcycleError as exc:
            self._failed(target.version, exc.message)
            return False
        except Exception as exc:  # noqa: BLE001 - a model's code may raise anything
            self._failed(target.version, f"{type(exc).__name__}: {exc}")
            return False
        self._swap(served)
        return True

    def _swap(self, served: Served) -> None:
        old = self.served
        self.served = served  # the swap: one reference
        self.previous = old  # kept loaded: a rollback to it needs no load
        self.loaded_at = now_text()
        self.failure = None
        self.swaps += 1 if old is not None else 0
        if self.on_swap is not None:
            self.on_swap(old, served)

    def _failed(self, version: str, message: str) -> None:
        message = redact(message)  # /health and the console show it: never a URL's password
        attempts = self.failure.attempts + 1 if self.failure and self.failure.version == version else 1
        self.failure = Failure(version, message, now_text(), attempts)
        self._retry_at = time.monotonic() + RETRY_SECONDS[min(attempts, len(RETRY_SECONDS)) - 1]
        # the command line says it on the console through on_failure; otherwise the log does
        log.log(logging.INFO if self.on_failure else logging.WARNING, "version %s of %s was not swapped in: %s "
                "(still serving %s)", version, self.name, message, self._serving_text())
        if self.on_failure is not None:
            self.on_failure(self.failure)

    def _serving_text(self) -> str:
        return f"v{self.served.version.version}" if self.served else "nothing"

    def _check_rows(self, served: Served) -> pd.DataFrame | None:
        """A few rows to predict before the swap: the model's input example, else the last
        requests (when they have the new version's columns), else none."""
        example = input_example(served)
        if example is not None and not example.empty:
            return example.head(CHECK_ROWS)
        recent = self.sample() if self.sample is not None else None
        if recent is not None and not recent.empty and all(c in recent.columns for c in served.columns):
            return recent.head(CHECK_ROWS)
        return None


def input_example(served: Served) -> pd.DataFrame | None:
    """The input example saved with the model (MLflow's ``input_example.json``), if there is one."""
    return served.example
