"""Reading back on which machine each cycle ran: the ``modelcycle.host`` tag of its run."""

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
    assert hosts.of_runs(reg, "rides", [a, old, None, "no-such-run"]) == {a: "host-a"}
    assert hosts.of_runs(reg, "rides", [a, b, a]) == {a: "host-a", b: "host-b"}
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
                         tags={hosts.HOST_TAG: "host-a", MIGRATED_FROM: "old-run-id"})
    # the notifications and alias history written before the move name the old id
    assert hosts.of_runs(reg, "rides", ["old-run-id"]) == {"old-run-id": "host-a"}
    assert hosts.of_runs(reg, "rides", [copy, "old-run-id"]) == {copy: "host-a", "old-run-id": "host-a"}
