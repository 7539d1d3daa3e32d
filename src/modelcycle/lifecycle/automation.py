"""What a deployed cycle does beyond a command-line run, and how fresh data is recognised.

A deployed run (a Prefect deployment's flow run: on its schedule, or started by an event) is
the same cycle as ``modelcycle run``, with three differences:

* **its window**: a parameter that defaults to the next window *complete in the source* and not
  yet processed (:func:`next_complete`), so a late or retried run still processes the right
  month, and a deployed workspace walks forward one window per run;
* **idempotence**: a window already processed (a cycle's git tag for it exists, or its
  challenger was rolled back, see :mod:`~modelcycle.lifecycle.rolledback`) is a no-op that says
  so: no commit, no version, no alias move (:func:`processed`);
* **a human decides**: an escalation pauses the flow run for an answer given in the Prefect UI
  or with ``modelcycle approve`` / ``reject`` (:mod:`modelcycle.lifecycle.approval`).

A window is *complete* when a row at or after its end has arrived, or when its end lies
``automation.settle_minutes`` in the past and it has rows: a live source's period that has
just ended, or a month appended to a warehouse in one go.

The data watcher (:mod:`modelcycle.lifecycle.watch`) takes a :func:`look` at the source every
``automation.check_seconds`` and emits :data:`EVENT_WINDOW` for a new complete window; the
deployment's trigger (a Prefect automation) starts the cycle for it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modelcycle.config import Window, Workspace
from modelcycle.lifecycle import rolledback, runtime
from modelcycle.lifecycle.result import CycleResult
from modelcycle.lifecycle.services import Services
from modelcycle.notify import CycleOutcome
from modelcycle.sources.base import latest_of

log = logging.getLogger(__name__)

#: The event the data watcher emits when a window is complete in the source.
EVENT_WINDOW = "modelcycle.window.complete"
#: The event the data watcher emits when the rows so far of the open window drift.
EVENT_DRIFT = "modelcycle.drift.detected"


def resource_id(ws: Workspace) -> str:
    """The Prefect event resource of a workspace: its model's name and a digest of its folder
    (two workspaces of one model name on one server do not start each other's cycles)."""
    digest = hashlib.sha1(str(Path(ws.root).resolve()).encode()).hexdigest()[:12]
    return f"modelcycle.workspace.{ws.config.name}.{digest}"


def tag_base(name: str, label: str) -> str:
    """The git tag of a cycle for window ``label``: ``modelcycle/<model>/<window>`` (``act.next_tag``
    adds ``.N`` to repeats; :func:`processed` looks for either)."""
    return f"modelcycle/{name}/{label}".replace("..", "_")


def processed(svc: Services, window: Window) -> str | None:
    """How a cycle processed ``window`` already, in words (``git tag <tag>``, or that its
    challenger was rolled back, with its MLflow run), or None."""
    base = tag_base(svc.name, window.label)
    found = [t for t in svc.versioning.tags(base) if t == base or t.startswith(base + ".")]
    if found:
        return f"git tag {found[0]}"
    rolled = rolledback.find(svc.ws, window.label)
    if rolled is not None:
        return f"its challenger was rolled back, MLflow run {rolled.get('run_id') or '?'}"
    return None


def utcnow() -> datetime:
    """Naive UTC wall time, as sources give their timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def complete(window: Window, latest: datetime | None, *, now: datetime, settle: timedelta) -> bool:
    """Whether ``window`` is complete, given the source's newest timestamp ``latest``."""
    if latest is None:
        return False
    if latest >= window.end:
        return True
    return latest >= window.start and now >= window.end + settle


@dataclass(frozen=True)
class Next:
    """The next window to process (the one after the last cycle's; None before the first cycle),
    the source's newest timestamp, whether the window is complete, and why, in words."""

    window: Window | None
    latest: datetime | None
    complete: bool
    why: str

    def so_far(self) -> Window | None:
        """The window's rows that have arrived: from its start to the day after the newest row
        (None before its first row)."""
        if self.window is None or self.latest is None or self.latest < self.window.start:
            return None
        day_after = (self.latest + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        end = min(self.window.end, day_after)
        return Window.parse(f"{self.window.start:%Y-%m-%d}..{end:%Y-%m-%d}")


def look(svc: Services, *, now: datetime | None = None) -> Next:
    """One look at the source for the next window: one ``max(timestamp)`` query."""
    ws = svc.ws.reload_params()
    if not ws.params.window:
        return Next(None, None, False, "no cycle has run in this workspace yet: run the first with "
                                       "`modelcycle run --window YYYY-MM`; deployed runs go on from there")
    window = rolledback.next_window(ws)
    latest = latest_of(svc.source, window.start)
    settle = timedelta(minutes=ws.config.automation.settle_minutes)
    if complete(window, latest, now=now or utcnow(), settle=settle):
        return Next(window, latest, True,
                    f"{window.label} is complete in the source (newest row {latest:%Y-%m-%d %H:%M})")
    if latest is None or latest < window.start:
        newest = f"its newest row is {latest:%Y-%m-%d %H:%M}" if latest else "it has no rows"
        return Next(window, latest, False, f"{window.label} has not started in the source yet ({newest})")
    return Next(window, latest, False,
                f"{window.label} is not complete in the source yet (newest row {latest:%Y-%m-%d %H:%M})")


def next_complete(svc: Services, *, now: datetime | None = None) -> tuple[Window | None, str]:
    """The next window to process if it is complete in the source, else None; and why."""
    found = look(svc, now=now)
    return (found.window if found.complete else None), found.why


def skipped(svc: Services, label: str, why: str) -> CycleResult:
    """The result of a deployed run with nothing to do."""
    log.info("nothing to do: %s", why)
    name_run(f"{label}: nothing to do")
    svc.say(label, why)
    return CycleResult(window=label, outcome=CycleOutcome.SKIPPED, reasons=[why], metric=svc.ws.config.metric)


def deployment_id() -> str | None:
    """The deployment of the flow run this code runs in, or None (a command-line run, a test)."""
    run = runtime.current_flow_run()
    return str(run.deployment_id) if run is not None and run.deployment_id else None


def name_run(label: str) -> None:
    """Name the current flow run after its window (the Prefect UI's list, `modelcycle approve`),
    on the server and in the run's context (the notifications name it from there)."""
    run = runtime.current_flow_run()
    if run is None or run.name == label:
        return
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, name=label)
        run.name = label
    except Exception as exc:  # noqa: BLE001 - a name is a convenience
        log.debug("could not rename the flow run: %s", exc)


def prefect_progress(window: str, text: str) -> None:
    """A deployed run's progress lines go to its Prefect log (the UI shows them)."""
    try:
        from prefect import get_run_logger

        get_run_logger().info("%s: %s", window, text)
    except Exception:  # noqa: BLE001 - outside a run: the module's log
        log.info("%s: %s", window, text)


def run_deployed(svc: Services, window: str | None) -> CycleResult:
    """A deployed cycle: pick the window, skip one already processed, let a human decide an
    escalation, run the cycle. The caller holds the workspace lock."""
    from modelcycle.lifecycle import approval
    from modelcycle.lifecycle.cycle import run_cycle
    from modelcycle.lifecycle.hooks import Hooks

    if svc.progress is None:
        svc.progress = prefect_progress
    if window is None:
        found, why = next_complete(svc)
        if found is None:
            return skipped(svc, "next", why)
        w = found
    else:
        w = Window.parse(window)
    tag = processed(svc, w)
    if tag is not None:
        return skipped(svc, w.label, f"{w.label} was processed already ({tag}): nothing to do, "
                                     "no new commit, version or alias move")
    name_run(w.label)
    svc.hooks = Hooks(after_decide=(*svc.hooks.after_decide, approval.ask_human), after_act=svc.hooks.after_act)
    return run_cycle(svc, w)
