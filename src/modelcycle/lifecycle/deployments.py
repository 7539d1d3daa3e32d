"""Prefect deployments of a workspace's cycle: on a schedule, and on fresh data.

``deploy`` registers one deployment of the cycle flow (``modelcycle-cycle/<model>``) with

* the workspace's folder as its parameter and no window, so each run takes the next window
  complete in the source (:mod:`modelcycle.lifecycle.automation`);
* a cron or interval schedule, in a time zone;
* a concurrency limit of one: runs that fall due together (a schedule and a trigger, a worker
  that was stopped a while) wait for a slot on the server instead of each starting a process
  only to wait for the workspace's lock;
* a trigger (a Prefect automation) that starts a run when the data watcher emits
  :data:`~modelcycle.lifecycle.automation.EVENT_WINDOW` or
  :data:`~modelcycle.lifecycle.automation.EVENT_DRIFT` for this workspace, with the event's
  window as the run's window.

It runs in a Prefect **process work pool** (``automation.work_pool``, created if missing),
served by ``modelcycle worker``: a deployment then exists on the server whether or not a worker
runs (scheduled runs wait for one, and the UI shows them), each run gets a process of its own
(a run that pauses for a human holds no worker; a crash takes one run down, not the worker),
and workers on other machines can serve the same pool. Prefect's served flows
(``flow.serve``) would tie the deployment's life to one long-running process instead.
The flow is given by its module path, so any machine with modelcycle installed can run it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from modelcycle.config import Workspace
from modelcycle.errors import ConfigError, WorkspaceError
from modelcycle.lifecycle.automation import EVENT_DRIFT, EVENT_WINDOW, resource_id

log = logging.getLogger(__name__)

FLOW_NAME = "modelcycle-cycle"
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> timedelta:
    """``90``, ``30s``, ``5m``, ``1h``, ``1d`` as a time span."""
    m = _INTERVAL.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--interval '{text}' is not a time span",
                          "write it as a number with a unit: 30s, 5m, 1h, 1d")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def check_schedule(cron: str | None, interval: str | None, timezone: str | None) -> None:
    """The schedule's options, checked before anything connects (and before Prefect is imported:
    the command line points it at the server first)."""
    if cron and interval:
        raise ConfigError("give --cron or --interval, not both",
                          "a deployment runs on one schedule: keep the one you want")
    if interval:
        parse_interval(interval)
    if timezone:
        check_timezone(timezone)
    if cron and len(cron.split()) != 5:
        raise ConfigError(f"--cron '{cron}' is not a cron expression", CRON_HINT)


CRON_HINT = ('write five fields: minute hour day-of-month month day-of-week, e.g. "0 3 1 * *" '
             "(03:00 on the first of each month)")


def check_cron(cron: str) -> None:
    from prefect._vendor.croniter import croniter  # Prefect's own copy, which its schedules use

    if not croniter.is_valid(cron):
        raise ConfigError(f"--cron '{cron}' is not a cron expression", CRON_HINT)


def check_timezone(tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"--timezone '{tz}' is not a time zone",
                          "give an IANA name such as UTC, Europe/Paris or America/New_York") from exc


@dataclass(frozen=True)
class Deployed:
    """One deployment of a cycle, as the server has it."""

    id: str
    name: str
    workspace: str
    schedules: list[str]
    paused: bool
    work_pool: str | None
    triggers: int = 0


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def ensure_pool(name: str) -> None:
    """Create the process work pool ``name`` unless it exists."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with _client() as client:
        try:
            client.read_work_pool(name)
            return
        except ObjectNotFound:
            pass
        with contextlib.suppress(ObjectAlreadyExists):  # another worker created it meanwhile
            client.create_work_pool(WorkPoolCreate(name=name, type="process",
                                                   description="modelcycle's deployed cycles"))


def deploy(ws: Workspace, *, cron: str | None = None, interval: str | None = None, timezone: str | None = None,
           name: str | None = None) -> Deployed:
    """Create or update the cycle's deployment for ``ws``; returns it as the server has it."""
    from prefect.deployments.runner import EntrypointType, RunnerDeployment
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.schedules import Cron, Interval

    from modelcycle.lifecycle.flows import cycle_flow

    check_schedule(cron, interval, timezone)
    tz = timezone or "UTC"
    check_timezone(tz)
    schedules: list[Any] = []
    if cron:
        check_cron(cron)
        schedules.append(Cron(cron, timezone=tz))
    elif interval:
        schedules.append(Interval(parse_interval(interval), timezone=tz))
    name = name or ws.config.name
    root = str(Path(ws.root).resolve())
    _refuse_other_workspace(name, root)
    pool = ws.config.automation.work_pool
    ensure_pool(pool)
    trigger = DeploymentEventTrigger(
        name=f"{name}: fresh data or drift starts a cycle",
        description=f"the data watcher of {root} (`modelcycle worker`) found a complete window or drift",
        expect={EVENT_WINDOW, EVENT_DRIFT}, match={"prefect.resource.id": resource_id(ws)},
        parameters={"workspace": root, "window": "{{ event.payload.window }}"})
    deployment = cycle_flow.to_deployment(
        name=name, schedules=schedules, triggers=[trigger], parameters={"workspace": root},
        description=f"The lifecycle of {ws.config.name} in {root}: each run processes the next window "
        "complete in the source (or the window an event names); a window processed already is a no-op.",
        tags=["modelcycle", ws.config.name], work_pool_name=pool, entrypoint_type=EntrypointType.MODULE_PATH,
        enforce_parameter_schema=False, concurrency_limit=1)
    assert isinstance(deployment, RunnerDeployment)  # called outside an event loop: not a coroutine
    deployment_id = deployment.apply(work_pool_name=pool)
    return get(str(deployment_id))


def _refuse_other_workspace(name: str, root: str) -> None:
    """A deployment of this name that runs another workspace is not silently taken over."""
    from prefect.exceptions import ObjectNotFound

    with _client() as client:
        try:
            existing = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
        except ObjectNotFound:
            return
    other = (existing.parameters or {}).get("workspace")
    if other and str(other) != root:
        raise WorkspaceError(f"the deployment {FLOW_NAME}/{name} already runs the workspace {other}",
                             "give this one another name with --name, or delete that one first "
                             f"(`modelcycle -w {other} deploy --delete`)")


def _describe_schedule(s: Any) -> str:
    sched = s.schedule
    tz = getattr(sched, "timezone", None) or "UTC"
    if getattr(sched, "cron", None):
        return f"cron {sched.cron} ({tz})"
    if getattr(sched, "interval", None):
        seconds = sched.interval.total_seconds()
        return f"every {seconds:g}s ({tz})" if seconds < 120 else f"every {seconds / 60:g}m ({tz})"
    return str(sched)


def _as_deployed(d: Any, triggers: int = 0) -> Deployed:
    return Deployed(id=str(d.id), name=d.name, workspace=str((d.parameters or {}).get("workspace", "")),
                    schedules=[_describe_schedule(s) for s in (d.schedules or [])],
                    paused=bool(d.paused), work_pool=d.work_pool_name, triggers=triggers)


def get(deployment_id: str) -> Deployed:
    with _client() as client:
        d = client.read_deployment(deployment_id)
        owned = client.read_resource_related_automations(f"prefect.deployment.{d.id}")
    return _as_deployed(d, len(owned))


def listed() -> list[Deployed]:
    """Every deployment of the cycle on the server (all workspaces)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import DeploymentSort

    with _client() as client:  # the sync client sends no default limit or sort: the server wants both
        found = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
                                        limit=200, sort=DeploymentSort.NAME_ASC)
    return [_as_deployed(d) for d in found]


def delete(ws: Workspace, name: str | None = None) -> Deployed | None:
    """Delete this workspace's deployment (and the automation of its trigger); the deleted one,
    or None when there was none."""
    from prefect.exceptions import ObjectNotFound

    name = name or ws.config.name
    with _client() as client:
        try:
            d = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
        except ObjectNotFound:
            return None
        gone = _as_deployed(d)
        client.delete_resource_owned_automations(f"prefect.deployment.{d.id}")
        client.delete_deployment(d.id)
    return gone
