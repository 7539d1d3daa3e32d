"""Reading back where each cycle ran: the ``modelcycle.host`` and ``modelcycle.worker`` tags of its run."""

from __future__ import annotations

import pytest

from modelcycle.registry import hosts
from modelcycle.registry.memory import MemoryRegistry


def test_the_host_of_each_run_asked_for():
    reg = MemoryRegistry()
    a = reg.start_run(experiment="rides", run_name="cycle 2015-02", tags={hosts.HOST_TAG: "host-a"})
    b = reg.start_run(experiment="rides", run_name="cycle 2015-03", tags={hosts.HOST_TAG: "host-b"})
    old = reg.start_run(experiment="rides", run_name="cycle 2015-01")  # before runs named their host
    other = reg.start_run(experiment="fares", run_name="cycle 2015-02", tags={hosts.HOST_TAG: "host-c"})
    assert hosts.of_runs(reg, "rides", [a, old, None, "no-such-run"]) == {a: hosts.Ran("host-a")}
    assert hosts.of_runs(reg, "rides", [a, b, a]) == {a: hosts.Ran("host-a"), b: hosts.Ran("host-b")}
    assert hosts.of_runs(reg, "rides", [other]) == {}  # another model's run is not this one's cycle
    assert hosts.of_runs(reg, "nothing-yet", [a]) == {}


def test_no_run_asked_for_asks_the_registry_nothing():
    class Down(MemoryRegistry):
        def find_runs(self, experiment, tags, status=None):
            raise AssertionError("searched")

    assert hosts.of_runs(Down(), "rides", []) == {}
    assert hosts.of_runs(Down(), "rides", [None, ""]) == {}
    with pytest.raises(AssertionError):
        hosts.of_runs(Down(), "rides", ["abc"])


def test_a_run_copied_to_another_server_answers_for_the_id_it_had():
    from modelcycle.registry.migrate import MIGRATED_FROM

    assert hosts.MIGRATED_FROM == MIGRATED_FROM
    reg = MemoryRegistry()
    copy = reg.start_run(experiment="rides", run_name="cycle 2015-02",
                         tags={**hosts.tags("host-a", "host-a-4711"), MIGRATED_FROM: "old-run-id"})
    # the notifications and alias history written before the move name the old id
    assert hosts.of_runs(reg, "rides", ["old-run-id"]) == {"old-run-id": hosts.Ran("host-a", "host-a-4711")}
    assert hosts.of_runs(reg, "rides", [copy, "old-run-id"]) == {copy: hosts.Ran("host-a", "host-a-4711"),
                                                                 "old-run-id": hosts.Ran("host-a", "host-a-4711")}


def test_the_worker_that_started_each_run():
    reg = MemoryRegistry()
    deployed = reg.start_run(experiment="rides", run_name="cycle 2015-02", tags=hosts.tags("host-a", "host-a-4711"))
    typed = reg.start_run(experiment="rides", run_name="cycle 2015-03", tags=hosts.tags("host-b", None))
    found = hosts.of_runs(reg, "rides", [deployed, typed])
    assert found == {deployed: hosts.Ran("host-a", "host-a-4711"), typed: hosts.Ran("host-b", None)}
    assert found[deployed].worker == "host-a-4711" and found[typed].worker is None  # typed in a terminal
    assert reg.get_run(typed).tags == {hosts.HOST_TAG: "host-b"}  # no worker: no tag at all
    # a worker's name without the machine's: the host is what a run is found by
    lone = reg.start_run(experiment="rides", run_name="cycle 2015-04", tags={hosts.WORKER_TAG: "w"})
    assert hosts.of_runs(reg, "rides", [lone]) == {}
    assert (hosts.UNKNOWN.host, hosts.UNKNOWN.worker) == (None, None)


def test_a_command_shows_no_hosts_when_the_runs_cannot_be_read():
    from modelcycle.errors import RegistryError

    class Unreadable(MemoryRegistry):
        def find_runs(self, experiment, tags, status=None):
            raise RegistryError("the MLflow store does not answer")

    assert hosts.shown(Unreadable(), "rides", ["abc"]) == {}
    with pytest.raises(RegistryError):
        hosts.of_runs(Unreadable(), "rides", ["abc"])
