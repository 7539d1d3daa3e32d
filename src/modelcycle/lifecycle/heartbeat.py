"""Flow-run heartbeats that stop the moment a flow run ends.

A Prefect server tells a crashed flow run from a live one by its heartbeats: the event
``prefect.flow-run.heartbeat``, which an automation can watch ("no heartbeat for N seconds:
mark the run crashed"). Prefect's flow engine sends them from a thread that sleeps in whole
seconds and is joined when the flow run ends, so every flow run waits for the rest of the
current second: about 1 s for a short flow run, 0.5 s on average for a longer one (measured:
a one-task flow takes 0.13 s without heartbeats and 1.10 s with them, on a server on loopback).
A cycle run with ``modelcycle run`` on a team's server paid that wait at its end.

Here the same event (same resource, related flow, deployment and tags, through Prefect's own
``emit_event``) is sent at the same frequency (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, default 180 s)
from a thread that waits on an event instead of sleeping, so it stops at once. The flows turn
the engine's heartbeats off while this runs (see :func:`modelcycle.lifecycle.flows._run_settings`).
On the embedded server there are no heartbeats at all: that server ends with the command, and
modelcycle's recovery closes a dead process's runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

#: the heartbeat interval for flows this process runs, set by the flows' run settings; None: none
INTERVAL: contextvars.ContextVar[float | None] = contextvars.ContextVar("modelcycle_heartbeat", default=None)


def event_for(flow_run: Any, flow_name: str) -> tuple[dict[str, str], list[Any]]:
    """The heartbeat event's resource and related resources for ``flow_run``, as Prefect's flow
    engine builds them (flow, deployment, tags), so an automation written for Prefect's own
    heartbeats matches these."""
    from prefect import __version__
    from prefect.events.related import tags_as_related_resources
    from prefect.events.schemas.events import RelatedResource

    resource = {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                "prefect.resource.name": flow_run.name or "", "prefect.version": __version__}
    related: list[Any] = []
    if flow_run.flow_id:
        related.append(RelatedResource.model_validate({
            "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}", "prefect.resource.role": "flow",
            "prefect.resource.name": flow_name}))
    if flow_run.deployment_id:
        related.append(RelatedResource.model_validate({
            "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
            "prefect.resource.role": "deployment"}))
    related += tags_as_related_resources(set(flow_run.tags or []))
    return resource, related


def _emit(resource: dict[str, str], related: list[Any]) -> None:
    from prefect.events import emit_event

    emit_event(event="prefect.flow-run.heartbeat", resource=resource, related=related)


class Beat:
    """A thread that calls ``send`` now and every ``interval`` seconds until :meth:`stop`, which
    returns at once (the thread waits on an event, never in a sleep)."""

    def __init__(self, send: Callable[[], None], interval: float) -> None:
        self._send = send
        self._interval = interval
        self._stop = threading.Event()
        ctx = contextvars.copy_context()  # Prefect's settings (its API URL) as in the flow
        self._thread = threading.Thread(target=ctx.run, args=(self._loop,), daemon=True,
                                        name="modelcycle-heartbeat")

    def start(self) -> Beat:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._send()
            except Exception:  # a lost heartbeat never fails a cycle
                log.debug("could not send a flow-run heartbeat", exc_info=True)
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def beating(flow_name: str) -> Iterator[None]:
    """Send the current flow run's heartbeats for the block, when the flows' run settings asked
    for them (a team's Prefect server); otherwise nothing."""
    interval = INTERVAL.get()
    from modelcycle.lifecycle import runtime

    flow_run = runtime.current_flow_run() if interval else None
    if interval is None or flow_run is None:
        yield
        return
    resource, related = event_for(flow_run, flow_name)
    beat = Beat(lambda: _emit(resource, related), interval).start()
    try:
        yield
    finally:
        beat.stop()
