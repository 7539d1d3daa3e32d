"""The model's lock across machines (a Prefect global concurrency limit), with a fake server:
its name, the message a waiting cycle gives, a missing limit created, re-entrance, who holds it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from modelcycle.lifecycle import modellock, runtime
from modelcycle.lifecycle.modellock import Holding


class FakeServer(modellock.Server):
    """One slot per limit name, as a real limit of 1; the holder note in a dict."""

    def __init__(self, *, exists: bool = True) -> None:
        self.limits: dict[str, threading.Lock] = {}
        self.exists = exists
        self.created: list[str] = []
        self.notes: dict[str, Holding] = {}
        self.attempts = 0
        self.leases: dict[str, threading.Lock] = {}  # lease id -> the slot it holds
        self.released: list[str] = []

    def acquire(self, name: str, holder_id: str | None) -> contextlib.AbstractContextManager[None] | None:
        self.attempts += 1
        if not self.exists:
            raise LookupError(name)
        slot = self.limits.setdefault(name, threading.Lock())
        if not slot.acquire(blocking=False):
            return None
        lease = f"lease-{self.attempts}"
        self.leases[lease] = slot
        server = self

        class Held(contextlib.AbstractContextManager[None]):
            def __init__(self) -> None:
                self.lease = lease

            def __exit__(self, *exc: object) -> None:
                server.release(lease)

        return Held()

    def release(self, lease: str) -> None:
        self.released.append(lease)
        slot = self.leases.pop(lease, None)
        if slot is not None:
            slot.release()

    def forget(self, variable: str) -> None:
        self.notes.pop(variable, None)

    def create(self, name: str) -> None:
        self.created.append(name)
        self.exists = True

    def note(self, variable: str, holding: Holding) -> None:
        self.notes[variable] = holding

    def read(self, variable: str) -> Holding | None:
        return self.notes.get(variable)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modellock, "POLL_SECONDS", 0.01)


def test_names_of_the_limit_and_of_its_holder_note() -> None:
    assert modellock.limit_name("taxifare") == "modelcycle-taxifare"
    assert modellock.limit_name("Fares EU/2") == "modelcycle-fares-eu-2"
    assert modellock.holder_variable("Fares-EU") == "modelcycle_holder_fares_eu"


def test_a_second_cycle_of_the_model_waits_and_says_for_whom(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer()
    monkeypatch.setenv(modellock.HOST_ENV, "host-a")
    monkeypatch.setenv(modellock.WORKER_ENV, "host-a-123")
    said: list[str] = []
    order: list[str] = []
    entered = threading.Event()

    def first() -> None:
        with modellock.hold("taxifare", "2015-01", say=said.append, server=server):
            order.append("first in")
            entered.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(5)
    # the second comes from another process (machine): the per-process re-entrance does not apply
    modellock._held.clear()
    monkeypatch.setenv(modellock.HOST_ENV, "host-b")
    with modellock.hold("taxifare", "2015-02", say=said.append, server=server):
        order.append("second in")
        assert server.notes["modelcycle_holder_taxifare"].host == "host-b"  # the holder now
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert said == ["waiting for 2015-01 on host-a (worker host-a-123) to finish the cycle of taxifare"]
    assert "modelcycle_holder_taxifare" not in server.notes  # a holder that finished leaves no note


def _dead_process() -> str:
    """``host:pid:start`` of a process of this machine that has ended."""
    import subprocess
    import sys

    import psutil

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = int(psutil.Process(child.pid).create_time())
    child.wait()
    return f"{socket.gethostname()}:{child.pid}:{start}"


def test_a_holder_whose_process_is_gone_on_this_machine_has_its_slot_freed_at_once() -> None:
    server = FakeServer()
    slot = server.acquire("modelcycle-taxifare", None)  # taken by a process that then died
    assert slot is not None
    crashed = Holding("2015-01", "host-a", "2026-11-28T10:00:00+00:00", None, _dead_process(), slot.lease)  # type: ignore[attr-defined]
    server.notes["modelcycle_holder_taxifare"] = crashed
    said: list[str] = []
    started = time.monotonic()
    with modellock.hold("taxifare", "2015-02", say=said.append, server=server):
        assert time.monotonic() - started < 1
    assert server.released[0] == crashed.lease
    assert said == ["2015-01 on host-a stopped while it held the cycle of taxifare: its slot is free again"]


@pytest.mark.parametrize("process", ["other-machine:1:1", "alive", ""])
def test_a_holder_that_may_still_run_keeps_its_slot(process: str) -> None:
    import os

    import psutil

    if process == "alive":
        process = f"{socket.gethostname()}:{os.getpid()}:{int(psutil.Process().create_time())}"
    server = FakeServer()
    slot = server.acquire("modelcycle-taxifare", None)
    assert slot is not None
    server.notes["modelcycle_holder_taxifare"] = Holding("2015-01", "host-a", "now", None, process or None,
                                                         slot.lease)  # type: ignore[attr-defined]
    said: list[str] = []

    def hold_it() -> None:
        with modellock.hold("taxifare", "2015-02", say=said.append, server=server):
            said.append("in")

    waiter = threading.Thread(target=hold_it, daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and server.released == []  # it waits: nothing is taken from the holder
    assert said == ["waiting for 2015-01 on host-a to finish the cycle of taxifare"]
    slot.__exit__(None, None, None)  # the holder finishes
    waiter.join(5)
    assert said[-1] == "in"


def test_cycles_of_two_models_do_not_wait_for_each_other() -> None:
    server = FakeServer()
    said: list[str] = []
    with modellock.hold("taxifare", "2015-01", say=said.append, server=server):
        modellock._held.clear()  # as if in another process
        with modellock.hold("fares", "2015-01", say=said.append, server=server):
            pass
    assert said == []
    assert set(server.limits) == {"modelcycle-taxifare", "modelcycle-fares"}


def test_a_missing_limit_is_created_with_one_slot_and_taken() -> None:
    server = FakeServer(exists=False)
    with modellock.hold("taxifare", "next", say=lambda _: None, server=server):
        assert server.created == ["modelcycle-taxifare"]
        assert not server.limits["modelcycle-taxifare"].acquire(blocking=False)  # held
    assert server.limits["modelcycle-taxifare"].acquire(blocking=False)  # released


def test_re_entrant_within_a_process_and_released_on_failure() -> None:
    server = FakeServer()
    with pytest.raises(RuntimeError), modellock.hold("taxifare", "2015-01", say=lambda _: None, server=server):
        with modellock.hold("taxifare", "2015-01", say=lambda _: None, server=server):
            assert server.attempts == 1  # the inner block did not ask again
        raise RuntimeError("the cycle failed")
    assert modellock._held == {}
    assert server.limits["modelcycle-taxifare"].acquire(blocking=False)


def test_waiting_without_a_holder_note() -> None:
    assert modellock.waiting_message("taxifare", None) == "waiting for another cycle to finish the cycle of taxifare"


def test_only_a_long_lived_server_takes_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_team_server", False)
    monkeypatch.setattr(runtime, "_local", None)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert not runtime.long_lived_server()
    monkeypatch.setenv("PREFECT_API_URL", "http://team:4200/api")  # a deployed run's environment
    assert runtime.long_lived_server()

    class Local:
        api_url = "http://team:4200/api"

    monkeypatch.setattr(runtime, "_local", Local())  # the command's own server
    assert not runtime.long_lived_server()
