"""The cycle's phases and extension points, on the fakes: the next window is found by the flow
itself, an after-decide hook can change the decision (as an approval will), an after-act hook
sees the committed result, and neither can leave a half-done cycle."""

from __future__ import annotations

import time

import pytest

from modelcycle.errors import ConfigError
from modelcycle.gate import Decision, Outcome
from modelcycle.lifecycle import flows, services, stages
from modelcycle.lifecycle.result import Timer
from modelcycle.lifecycle.hooks import Hooks
from modelcycle.versioning import partitions as parts
from tests.unit.lifecycle.conftest import Fakes

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_a_flow_without_a_window_runs_the_next_one(fakes: Fakes) -> None:
    result = flows.run(fakes.root)  # the first champion was 2014-12
    assert result.window == "2015-01"
    assert flows.run(fakes.root).window == "2015-02"


def test_no_window_and_no_cycle_yet_is_a_clear_error(template, tmp_path) -> None:
    import shutil

    root = tmp_path / "fresh"
    shutil.copytree(template, root, symlinks=True)
    with services.using(factory=Fakes(root)), pytest.raises(ConfigError, match="no cycle has run yet"):
        flows.run(root)


def test_an_after_decide_hook_can_approve_an_escalation(fakes: Fakes) -> None:
    seen: list[str] = []

    def approve(svc, result, decision: Decision) -> Decision:
        seen.append(decision.outcome.value)
        if decision.outcome is Outcome.ESCALATE:
            return Decision(Outcome.PROMOTE, [*decision.reasons, "approved by a human"], decision.champion,
                            decision.challenger, decision.metric)
        return decision

    fakes.registry.delete_version("taxifare", "1")  # the champion is gone: the gate escalates
    with services.using(hooks=Hooks(after_decide=(approve,))):
        result = flows.run(fakes.root, "2015-01")
    assert seen == ["escalate"]
    assert result.outcome == "promote" and "approved by a human" in result.reasons
    assert fakes.registry.get_alias("taxifare", "champion").version == result.challenger_version


def test_a_failing_after_decide_hook_rolls_the_cycle_back(fakes: Fakes) -> None:
    def refuse(svc, result, decision):
        raise RuntimeError("the approval service is down")

    before = fakes.snapshot()
    with services.using(hooks=Hooks(after_decide=(refuse,))), pytest.raises(RuntimeError, match="approval"):
        flows.run(fakes.root, "2015-01")
    assert fakes.snapshot() == before


def test_after_act_hooks_see_the_committed_result_and_cannot_undo_it(fakes: Fakes) -> None:
    seen: list[tuple[str, str | None]] = []

    def reload(svc, result) -> None:
        seen.append((result.outcome, result.serving_version))
        raise RuntimeError("the serving process does not answer")

    with services.using(hooks=Hooks(after_act=(reload,))):
        result = flows.run(fakes.root, "2015-03")  # the fare change: promoted
    assert seen == [("promote", result.challenger_version)]
    assert fakes.registry.get_alias("taxifare", "champion").version == result.challenger_version
    assert not (fakes.root / ".modelcycle/journal.json").exists()


def test_the_timer_records_laps_in_order() -> None:
    t = Timer()
    t.lap("fetch")
    t.add("fit", 1.5)
    t.lap("decide")
    assert list(t.laps) == ["fetch", "fit", "decide"] and t.laps["fit"] == 1.5
    assert t.total() >= t.laps["fetch"] + t.laps["decide"]


def test_a_cycles_run_names_its_machine_and_the_worker_that_started_it(fakes: Fakes, monkeypatch) -> None:
    from modelcycle.lifecycle import modellock
    from modelcycle.registry import hosts

    monkeypatch.setenv(modellock.HOST_ENV, "host-a")
    monkeypatch.setenv(modellock.WORKER_ENV, "host-a-4711")  # as `modelcycle worker` sets it for its runs
    deployed = flows.run(fakes.root, "2015-01")
    monkeypatch.delenv(modellock.WORKER_ENV)  # typed in a terminal
    typed = flows.run(fakes.root, "2015-02")
    tags = {r.window: fakes.registry.get_run(r.mlflow_run_id).tags for r in (deployed, typed)}
    assert (tags["2015-01"][hosts.HOST_TAG], tags["2015-01"][hosts.WORKER_TAG]) == ("host-a", "host-a-4711")
    assert tags["2015-02"][hosts.HOST_TAG] == "host-a" and hosts.WORKER_TAG not in tags["2015-02"]
    assert hosts.of_runs(fakes.registry, "taxifare", [deployed.mlflow_run_id, typed.mlflow_run_id]) == {
        deployed.mlflow_run_id: hosts.Ran("host-a", "host-a-4711"), typed.mlflow_run_id: hosts.Ran("host-a")}


def test_a_cycle_writes_its_rows_files_while_it_trains_not_while_it_validates(
        fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    validate, write, train = stages.va.validate_rows, parts.write, stages.train

    def validating(*args, **kwargs):
        got = validate(*args, **kwargs)
        time.sleep(0.3)  # time enough for a write started beside it to show
        events.append("validated")
        return got

    def writing(*args, **kwargs):
        events.append("write partitions")
        return write(*args, **kwargs)

    def training(*args, **kwargs):
        events.append("train")
        return train(*args, **kwargs)

    monkeypatch.setattr(stages.va, "validate_rows", validating)
    monkeypatch.setattr(parts, "write", writing)
    monkeypatch.setattr(stages, "train", training)
    with services.using(factory=fakes):
        result = flows.run(fakes.root, "2015-01")
    assert result.outcome != "failed", result.reasons
    assert events.index("validated") < events.index("write partitions")
    assert "train" in events and events.count("write partitions") == 1
    assert sorted(p.name for p in (fakes.root / "data" / "raw").glob("*.parquet"))  # written all the same
    assert (fakes.root / "data" / "train.json").is_file()
