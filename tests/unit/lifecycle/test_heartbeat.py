"""Flow-run heartbeats on a team's Prefect server: the same event as Prefect's engine sends,
from a thread that stops the moment the flow run ends."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from modelcycle.lifecycle import flows, heartbeat, runtime


def test_a_beat_sends_at_once_and_stops_without_waiting_for_its_interval() -> None:
    sent: list[float] = []
    beat = heartbeat.Beat(lambda: sent.append(time.monotonic()), interval=180).start()
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    beat.stop()
    assert time.monotonic() - started < 0.5  # Prefect's engine thread waits for the rest of its 1 s sleep
    assert len(sent) == 1
    assert not any(t.name == "modelcycle-heartbeat" and t.is_alive() for t in threading.enumerate())


def test_a_beat_repeats_at_its_interval_and_survives_a_failed_send() -> None:
    calls: list[int] = []

    def send() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("server away")

    beat = heartbeat.Beat(send, interval=0.02).start()
    deadline = time.monotonic() + 5
    while len(calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    beat.stop()
    assert len(calls) >= 4


def test_the_event_is_the_one_prefects_engine_sends() -> None:
    """An automation written for Prefect's own heartbeats (resource, related flow, deployment and
    tags) matches modelcycle's."""
    from prefect import flow
    from prefect.client.schemas.objects import FlowRun
    from prefect.flow_engine import FlowRunEngine

    @flow(name="a-flow")
    def a_flow() -> None:  # pragma: no cover - never run
        pass

    run = FlowRun(id=uuid.uuid4(), name="brave-otter", flow_id=uuid.uuid4(), deployment_id=uuid.uuid4(),
                  tags=["modelcycle-process:host:1:2", "team"])
    engine: Any = FlowRunEngine(flow=a_flow, flow_run=run)
    theirs = engine._build_heartbeat_event_template()
    ours = heartbeat.event_for(run, "a-flow")
    assert ours[0] == theirs[0]
    assert sorted(r.model_dump_json() for r in ours[1]) == sorted(r.model_dump_json() for r in theirs[1])


@pytest.mark.usefixtures("prefect_server")
def test_on_a_team_server_a_flow_beats_through_modelcycle_and_not_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow
    from prefect.settings import get_current_settings

    sent: list[dict[str, str]] = []
    real_emit = heartbeat._emit
    monkeypatch.setattr(heartbeat, "_emit", lambda resource, related: (sent.append(resource),
                                                                        real_emit(resource, related)))
    monkeypatch.setattr(runtime, "_team_server", True)
    seen: dict[str, Any] = {}

    @flow(name="beating")
    def beating() -> None:
        with heartbeat.beating("beating"):
            seen["engine"] = get_current_settings().flows.heartbeat_frequency
            seen["run"] = str(runtime.current_flow_run().id)
            seen["threads"] = [t.name for t in threading.enumerate()]

    with flows._run_settings():
        beating()
    assert seen["engine"] is None  # Prefect's own heartbeat thread is not started
    assert "modelcycle-heartbeat" in seen["threads"]
    assert sent and sent[0]["prefect.resource.id"] == f"prefect.flow-run.{seen['run']}"
    assert not any(t.name == "modelcycle-heartbeat" and t.is_alive() for t in threading.enumerate())


@pytest.mark.usefixtures("prefect_server")
def test_on_the_embedded_server_nothing_beats(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow

    monkeypatch.setattr(runtime, "_team_server", False)
    sent: list[Any] = []
    monkeypatch.setattr(heartbeat, "_emit", lambda resource, related: sent.append(resource))

    @flow(name="quiet")
    def quiet() -> list[str]:
        with heartbeat.beating("quiet"):
            return [t.name for t in threading.enumerate()]

    with flows._run_settings():
        names = quiet()
    assert "modelcycle-heartbeat" not in names and not sent
