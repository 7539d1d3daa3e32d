"""The model's slot on a real Prefect server when its holder dies: a cycle killed while it held
the slot does not make the next cycle on its machine wait for the lease to run out (60-75 s)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from modelcycle.lifecycle import modellock

pytestmark = [pytest.mark.usefixtures("prefect_server")]

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: a cycle's hold of the slot, in a process of its own, that then hangs until it is killed
HOLDER = """
import sys, time
from modelcycle.lifecycle import modellock
with modellock.hold(sys.argv[1], "2015-01", say=print):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_cycle_killed_while_it_held_the_slot_frees_it_for_the_next_cycle_on_its_machine() -> None:
    from prefect.settings import PREFECT_API_URL

    model = f"slot-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": SRC,
           modellock.HOST_ENV: "host-a"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, model], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        said: list[str] = []
        killed: list[float] = []

        def kill_later() -> None:
            deadline = time.monotonic() + 60
            while not said and time.monotonic() < deadline:  # refused, it says for whom it waits
                time.sleep(0.1)
            time.sleep(1)
            said.append("-- killed")
            holder.kill()
            holder.wait()
            killed.append(time.monotonic())

        threading.Thread(target=kill_later, daemon=True).start()
        with modellock.hold(model, "2015-02", say=said.append):
            got = time.monotonic()
            assert killed, "the slot was taken while its holder still ran"
        assert got - killed[0] < 10, said  # not the lease's 60-75 s
        assert said[0] == f"waiting for 2015-01 on host-a to finish the cycle of {model}"
        assert said[1] == "-- killed"
        assert said[2] == f"2015-01 on host-a stopped while it held the cycle of {model}: its slot is free again"
        # and the slot works on: released by the block, it is taken again at once
        with modellock.hold(model, "2015-03", say=said.append):
            pass
        assert len(said) == 3
    finally:
        holder.kill()
        holder.wait()


def test_taking_and_releasing_the_slot_are_prefect_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """As with Prefect's own ``concurrency()``: the UI's event feed and the limit's page show the
    slot taken by a cycle, then released."""
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)
    model = f"slot-{uuid.uuid4().hex[:8]}"
    try:
        with modellock.hold(model, "2015-01", say=print):
            pass
    finally:
        worker.drain()
    events = [e for client in AssertingEventsClient.all for e in client.events
              if e.resource.get("prefect.resource.name") == modellock.limit_name(model)]
    assert [e.event for e in events] == ["prefect.concurrency-limit.acquired", "prefect.concurrency-limit.released"]
    acquired, released = events
    assert acquired.resource.id == released.resource.id and acquired.resource.id.startswith("prefect.concurrency-limit.")
    assert acquired.resource["limit"] == "1" and released.follows == acquired.id
