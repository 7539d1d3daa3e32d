"""``modelcycle worker``: Prefect's process worker for the deployed cycles, and the data watcher.

The worker is Prefect's own (``prefect worker start --pool <automation.work_pool> --type
process``), in a child process: it takes the deployment's scheduled and triggered runs and
starts each in a process of its own.

The watcher runs beside it, in this process: every ``automation.check_seconds`` it asks the
source for its newest timestamp (one ``max(timestamp)`` query or a file listing) and, when the
next window is complete there, emits :data:`~modelcycle.lifecycle.automation.EVENT_WINDOW` for
it. The deployment's trigger starts the cycle; the watcher does not run cycles itself. A window
is announced once, and again only if it is still the next one ``REANNOUNCE`` later (the run it
started failed, or no worker took it); while a cycle holds the workspace, nothing is
announced. What was announced is kept in ``.modelcycle/watch.json``, so a restarted worker
does not announce again.

Between two complete windows it also watches for **drift**: at most every
:data:`DRIFT_EVERY`, and only when rows arrived since its last look, it compares the rows of
the open window so far with the champion's training rows
(:func:`~modelcycle.lifecycle.driftcheck.live_drift`, ``drift:`` in modelcycle.yaml). When a
column drifts beyond the threshold, it emits :data:`~modelcycle.lifecycle.automation.EVENT_DRIFT`
naming the rows so far as the window (``2015-05-01..2015-05-15``), and the trigger starts a cycle
on them before the clock would. Once per open window: the month itself is processed as usual
when it is complete (:meth:`~modelcycle.config.Window.following`).

With ``serve.shadow`` on, it also watches what the **server** sees: when the prediction log has
new rows (at most every :data:`DRIFT_EVERY`), the requests the champion answered in the last
:data:`SERVED_SPAN` are compared with its training rows, inputs and predictions
(:func:`~modelcycle.lifecycle.served.served_drift`). Beyond the threshold it emits the same
:data:`~modelcycle.lifecycle.automation.EVENT_DRIFT` (payload ``source: "prediction log"``), once
per open month, on the source's rows of the month so far, and only when the source holds at least
``drift.min_rows`` of them: a cycle needs rows to train on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from modelcycle.atomic import write_atomic
from modelcycle.config import Window, Workspace
from modelcycle.errors import ModelcycleError
from modelcycle.lifecycle import automation, lock
from modelcycle.lifecycle.services import Services

log = logging.getLogger(__name__)

STATE_FILE = "watch.json"
#: a window announced and still not processed after this long is announced again
REANNOUNCE = timedelta(minutes=10)
#: the least time between two drift checks of the open window
DRIFT_EVERY = timedelta(seconds=60)
#: the served requests the watcher compares with the champion's training rows: those of the last day
SERVED_SPAN = timedelta(days=1)
#: the announcement memory's kind for drift of the served requests (its event is EVENT_DRIFT)
SERVED = automation.EVENT_DRIFT + ".served"
#: how often Prefect's worker asks the server for runs to start (its default is 10 s)
WORKER_QUERY_SECONDS = 2


@dataclass
class Announced:
    """What the watcher announced: event kind -> window label -> when (ISO UTC)."""

    path: Path
    seen: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, ws: Workspace) -> Announced:
        path = ws.state_dir / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            seen = {str(k): {str(w): str(t) for w, t in v.items()} for k, v in data.get("announced", {}).items()}
        except (OSError, ValueError, AttributeError):
            seen = {}
        return cls(path, seen)

    def due(self, kind: str, label: str, now: datetime, again: timedelta | None) -> bool:
        when = self.seen.get(kind, {}).get(label)
        if when is None:
            return True
        return again is not None and now - datetime.fromisoformat(when) >= again

    def note(self, kind: str, label: str, now: datetime) -> None:
        self.seen.setdefault(kind, {})[label] = now.isoformat(timespec="seconds")
        write_atomic(self.path, json.dumps({"announced": self.seen}, indent=2) + "\n")


def emit(ws: Workspace, event: str, window: Window, why: str, **payload: Any) -> None:
    """One Prefect event about ``ws``, naming ``window``."""
    from prefect.events import emit_event

    emit_event(event=event, resource={"prefect.resource.id": automation.resource_id(ws),
                                      "prefect.resource.name": ws.config.name,
                                      "modelcycle.workspace": str(ws.root)},
               payload={"window": window.label, "why": why, **payload})


@dataclass
class Check:
    """What one look at the source found."""

    window: Window | None
    why: str
    announced: bool = False


@dataclass
class DriftWatch:
    """When the open window's drift was last measured, and on which newest row."""

    at: datetime | None = None
    latest: datetime | None = None
    served_at: datetime | None = None   # the prediction log's last look, and what it held then
    served_seen: tuple[int, str] | None = None

    def due(self, now: datetime, latest: datetime) -> bool:
        return latest != self.latest and (self.at is None or now - self.at >= DRIFT_EVERY)

    def served_due(self, now: datetime, seen: tuple[int, str]) -> bool:
        return seen != self.served_seen and (self.served_at is None or now - self.served_at >= DRIFT_EVERY)


def check_once(svc: Services, announced: Announced, *, now: datetime | None = None,
               send: Callable[..., None] = emit, drift: DriftWatch | None = None) -> Check:
    """Look at the source once; announce a newly complete window, or drift in the open one."""
    now = now or automation.utcnow()
    if lock.holder(svc.ws.root) is not None:
        return Check(None, "a cycle is running")
    found = automation.look(svc, now=now)
    window, why = found.window, found.why
    if window is None or not found.complete:
        if drift is not None:
            return (check_drift(svc, announced, drift, found, now=now, send=send)
                    or check_served(svc, announced, drift, found, now=now, send=send) or Check(None, why))
        return Check(None, why)
    if automation.processed(svc, window) is not None:
        return Check(None, f"{window.label} was processed already")
    if not announced.due(automation.EVENT_WINDOW, window.label, now, REANNOUNCE):
        return Check(window, why)
    send(svc.ws, automation.EVENT_WINDOW, window, why)
    announced.note(automation.EVENT_WINDOW, window.label, now)
    return Check(window, why, announced=True)


def check_drift(svc: Services, announced: Announced, watching: DriftWatch, found: automation.Next, *,
                now: datetime, send: Callable[..., None] = emit) -> Check | None:
    """Measure the drift of the open window's rows so far (``found``: the look at the source
    this check took); announce it once per window."""
    from modelcycle.lifecycle.driftcheck import live_drift

    month, so_far = found.window, found.so_far()
    if month is None or so_far is None or found.latest is None or not watching.due(now, found.latest):
        return None
    watching.at, watching.latest = now, found.latest
    if drift_announced(announced, month.label, now):
        return None
    report = live_drift(svc.ws, svc.source, so_far.start, so_far.end, registry=svc.registry)
    if report is None or not report.drifted:
        return None
    columns = {c: round(report.columns[c].psi, 3) for c in report.drifted}
    listed = ", ".join(f"{c} (PSI {p:.2f})" for c, p in columns.items())
    why = f"the rows of {month.label} so far drift from the champion's training rows: {listed}"
    send(svc.ws, automation.EVENT_DRIFT, so_far, why, drifted=columns)
    announced.note(automation.EVENT_DRIFT, month.label, now)
    return Check(so_far, f"{why}: announced, a cycle on {so_far.label} starts", announced=True)


def drift_announced(announced: Announced, label: str, now: datetime) -> bool:
    """Whether drift in month ``label`` was announced already, in the source's rows or in the
    requests served: one early cycle per month, whichever saw it first."""
    return not (announced.due(automation.EVENT_DRIFT, label, now, None) and announced.due(SERVED, label, now, None))


def check_served(svc: Services, announced: Announced, watching: DriftWatch, found: automation.Next, *,
                 now: datetime, send: Callable[..., None] = emit) -> Check | None:
    """Measure the drift of the requests the champion answered lately (the prediction log);
    announce it once per open month, on the source's rows of the month so far."""
    from modelcycle.lifecycle import served

    month = found.window
    if month is None or not svc.ws.config.drift.enabled:
        return None
    since = now - SERVED_SPAN
    files = served.log_files(svc.ws, since)
    seen = served.fingerprint(files)
    if not files or not watching.served_due(now, seen):
        return None
    watching.served_at, watching.served_seen = now, seen
    if drift_announced(announced, month.label, now):
        return None
    report = served.served_drift(svc.ws, svc.source, since, registry=svc.registry, files=files)
    if report is None or not report.drifted:
        return None
    columns = {c: round(report.columns[c].psi, 3) for c in report.drifted}
    listed = ", ".join(f"{c} (PSI {p:.2f})" for c, p in columns.items())
    why = f"the requests served since {since:%Y-%m-%d %H:%M} drift from the champion's training rows: {listed}"
    so_far = found.so_far()
    rows = len(svc.source.fetch(so_far.start, so_far.end)) if so_far is not None else 0
    if so_far is None or rows < svc.ws.config.drift.min_rows:
        return Check(None, f"{why}; the source has {rows} rows of {month.label} so far, fewer than drift.min_rows "
                     f"({svc.ws.config.drift.min_rows}): no cycle yet")
    send(svc.ws, automation.EVENT_DRIFT, so_far, why, drifted=columns, source=served.SOURCE_NAME)
    announced.note(SERVED, month.label, now)
    return Check(so_far, f"{why}: announced, a cycle on {so_far.label} starts", announced=True)


def watch(svc: Services, stop: threading.Event, *, every: float,
          report: Callable[[str], None] = lambda _: None) -> None:
    """Check every ``every`` seconds until ``stop`` is set; report what changed."""
    announced = Announced.load(svc.ws)
    drift = DriftWatch()
    last = ""
    while not stop.is_set():
        try:
            found = check_once(svc, announced, drift=drift)
            if found.announced and found.window is not None and found.window.is_month:
                said = f"{found.window.label} is complete: announced, its cycle starts"
            else:
                said = found.why
        except ModelcycleError as exc:
            said = f"the source could not be read: {exc.message}"
        except Exception as exc:  # the watcher keeps watching
            log.warning("the data check failed", exc_info=True)
            said = f"the data check failed: {type(exc).__name__}: {exc}"
        if said != last:
            report(said)
            last = said
        stop.wait(every)


def start_worker(pool: str, *, log_path: Path, name: str | None = None) -> subprocess.Popen[bytes]:
    """Prefect's process worker for ``pool``, in a child process of its own group; named ``name``,
    which the runs it starts inherit (``MODELCYCLE_WORKER``: their logs and MLflow runs say it)."""
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": os.environ.get(
        "PREFECT_WORKER_QUERY_SECONDS", str(WORKER_QUERY_SECONDS)), **({"MODELCYCLE_WORKER": name} if name else {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
             *(["--name", name] if name else [])],
            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        out.close()


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM to the worker's group (it and the runs it started), then SIGKILL after ``timeout``:
    the group stop of ``modelcycle down``."""
    from modelcycle.lifecycle.servers import stop_group

    stop_group(process.pid, None, timeout)
    process.wait()


def wait_started(process: subprocess.Popen[bytes], log_path: Path, *, seconds: float = 3.0) -> None:
    """Raise when the worker exits within ``seconds`` (a missing pool, a bad URL), with its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = ""
            with contextlib.suppress(OSError):
                tail = log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"Prefect's worker exited with code {process.returncode}; its log "
                               f"{log_path} ends with:\n{tail}")
        time.sleep(0.1)
