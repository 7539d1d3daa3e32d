"""``act.keep_rejected: false`` on the fakes: a challenger that is not promoted is rolled back
(the workspace, the registry and the aliases exactly as before; only its MLflow run stays),
the window counts as processed, the next window follows it, and a failure or a crash in the
middle leaves the workspace as before the cycle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from modelcycle import tracepoints
from modelcycle.config import Window, Workspace
from modelcycle.errors import ConfigError
from modelcycle.lifecycle import automation, effects, flows, rolledback
from tests.unit.lifecycle.conftest import Fakes

pytestmark = pytest.mark.usefixtures("prefect_server")
NAME = "taxifare"


def configure(root: Path, *, keep_rejected: bool | None = False, min_effect: float | None = 5.0) -> None:
    """Set ``act.keep_rejected`` and, to force a keep, a minimum effect no challenger reaches."""
    path = root / "modelcycle.yaml"
    cfg = yaml.safe_load(path.read_text())
    if keep_rejected is not None:
        cfg["act"] = {"keep_rejected": keep_rejected}
    if min_effect is not None:
        cfg["gate"]["min_effect"] = min_effect
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def runs_of(fakes: Fakes, window: str) -> list:
    return [r for r in fakes.registry.runs.values() if r.tags.get("modelcycle.window") == window]


class InjectedError(RuntimeError):
    pass


def fail_at(point: str):
    def hook(reached: str) -> None:
        if reached == point:
            raise InjectedError(f"injected failure at {point}")
    return tracepoints.injecting(hook)


def test_a_kept_champion_rolls_the_challenger_back_and_leaves_only_its_run(fakes: Fakes) -> None:
    configure(fakes.root)
    before = fakes.snapshot()
    result = flows.run(fakes.root, "2015-01")
    assert fakes.snapshot() == before  # git, tags, owned files, DVC outputs, versions, aliases, journal
    assert result.outcome == "rolled_back"
    assert result.git_commit is None and result.git_tag is None and result.challenger_version is None
    assert result.serving_version == "1" and result.champion_version == "1"
    assert any("act.keep_rejected is false" in r for r in result.reasons), result.reasons
    assert result.rolled_back == "the DVC outputs and params.yaml"
    [run] = runs_of(fakes, "2015-01")
    assert run.status == "FINISHED"
    assert run.tags["modelcycle.outcome"] == "rolled_back" and run.tags["modelcycle.decision"] == "keep"
    assert "minimum" in run.tags["modelcycle.reasons"] or "better" in run.tags["modelcycle.reasons"]
    assert "rolled back" in run.tags["modelcycle.reasons"]
    recorded = rolledback.find(Workspace.load(fakes.root), "2015-01")
    assert recorded is not None and recorded["run_id"] == run.run_id


def test_the_window_counts_as_processed_and_the_next_run_moves_on(fakes: Fakes) -> None:
    configure(fakes.root)
    assert flows.run(fakes.root, "2015-01").outcome == "rolled_back"
    svc = fakes(Workspace.load(fakes.root))
    assert Workspace.load(fakes.root).params.window == "2014-12"  # params.yaml as before the cycle
    said = automation.processed(svc, Window.parse("2015-01"))
    assert said is not None and "rolled back" in said
    assert automation.processed(svc, Window.parse("2015-02")) is None
    assert automation.look(svc).window == Window.parse("2015-02")
    assert flows.run(fakes.root).window == "2015-02"  # no window given: past the rolled-back one
    assert flows.run(fakes.root).window == "2015-03"


def test_a_promoted_challenger_is_versioned_as_always(fakes: Fakes) -> None:
    configure(fakes.root, min_effect=None)
    result = flows.run(fakes.root, "2015-03")  # the fare change: the challenger is promoted
    assert result.outcome == "promote" and result.challenger_version == "2"
    assert result.git_tag == "modelcycle/taxifare/2015-03" and result.git_tag in fakes.versioning.tags()
    assert fakes.registry.get_alias(NAME, "champion").version == "2"
    assert runs_of(fakes, "2015-03")[0].tags["modelcycle.outcome"] == "promote"
    assert rolledback.read(Workspace.load(fakes.root)) == {}


def test_by_default_a_kept_champion_versions_the_challenger(fakes: Fakes) -> None:
    configure(fakes.root, keep_rejected=None)
    result = flows.run(fakes.root, "2015-01")
    assert result.outcome == "keep" and result.challenger_version == "2"
    assert result.git_tag == "modelcycle/taxifare/2015-01"
    assert fakes.registry.get_alias(NAME, "challenger").version == "2"
    assert not rolledback.path_of(Workspace.load(fakes.root)).exists()


def test_an_unanswered_escalation_is_versioned_so_a_human_can_promote_it(fakes: Fakes) -> None:
    configure(fakes.root, min_effect=None)
    fakes.registry.delete_version(NAME, "1")  # the champion is gone: the gate escalates
    result = flows.run(fakes.root, "2015-01")
    assert result.outcome == "escalate" and result.challenger_version == "2" and result.git_tag


def test_an_escalation_whose_approval_times_out_is_rolled_back(fakes: Fakes) -> None:
    """A deployed run's escalation ends as keep when no human answers (or one rejects it)."""
    from modelcycle.gate import Outcome
    from modelcycle.lifecycle import approval, services
    from modelcycle.lifecycle.hooks import Hooks

    def no_answer(svc, result, decision):
        if decision.outcome is not Outcome.ESCALATE:
            return decision
        return approval._decided(svc, result, decision, None, 60)  # what a timed-out pause returns

    configure(fakes.root, min_effect=None)
    fakes.registry.delete_version(NAME, "1")  # the champion is gone: the gate escalates
    before = fakes.snapshot()
    with services.using(hooks=Hooks(after_decide=(no_answer,))):
        result = flows.run(fakes.root, "2015-01")
    assert result.outcome == "rolled_back"
    assert any("no answer within 1 minutes" in r for r in result.reasons), result.reasons
    after = fakes.snapshot()
    # the alias history now also records the deleted champion, a move the cycle found made outside it
    assert {k: v for k, v in after.items() if k != "history_ends"} == \
        {k: v for k, v in before.items() if k != "history_ends"}
    [run] = runs_of(fakes, "2015-01")
    assert run.tags["modelcycle.approval"] == "timeout" and run.tags["modelcycle.outcome"] == "rolled_back"


@pytest.mark.parametrize("point", ["before:reject", "did:reject"])
def test_a_failure_before_the_record_changes_nothing_and_the_window_is_not_processed(fakes: Fakes,
                                                                                     point: str) -> None:
    configure(fakes.root)
    before = fakes.snapshot()
    with fail_at(point), pytest.raises(InjectedError):
        flows.run(fakes.root, "2015-01")
    assert fakes.snapshot() == before
    assert rolledback.find(Workspace.load(fakes.root), "2015-01") is None
    assert [r.status for r in runs_of(fakes, "2015-01")] == ["FAILED"]
    assert flows.run(fakes.root, "2015-01").outcome == "rolled_back"  # and it runs again as usual


def test_a_failure_after_the_record_keeps_the_rollback(fakes: Fakes) -> None:
    configure(fakes.root)
    before = fakes.snapshot()
    with fail_at("cycle:committed"), pytest.raises(InjectedError):
        flows.run(fakes.root, "2015-01")
    assert rolledback.find(Workspace.load(fakes.root), "2015-01") is not None
    result = flows.run(fakes.root, "2015-02")  # its recovery closes the bookkeeping and undoes nothing
    assert result.repaired is not None and "committed" in result.repaired
    assert result.outcome == "rolled_back"
    after = fakes.snapshot()
    assert {k: after[k] for k in ("head", "tags", "files", "outputs", "versions", "aliases")} == \
        {k: before[k] for k in ("head", "tags", "files", "outputs", "versions", "aliases")}


def test_a_crash_between_the_restore_and_the_record_is_repaired_by_recovery(fakes: Fakes, tmp_path: Path) -> None:
    """The process dies after the record was written, before the journal said so: recovery
    forgets the record (the same undo the hooks use) and the workspace is as before."""
    configure(fakes.root)
    before = fakes.snapshot()
    journal = fakes.root / ".modelcycle/journal.json"
    kept = tmp_path / "journal.json"
    record = rolledback.path_of(Workspace.load(fakes.root))
    kept_record = tmp_path / "rolled_back.json"

    def crash(point: str) -> None:  # what a killed process leaves: its journal and the record
        if point == "did:reject":
            shutil.copy(journal, kept)
            shutil.copy(record, kept_record)
            raise InjectedError("killed")

    with tracepoints.injecting(crash), pytest.raises(InjectedError):
        flows.run(fakes.root, "2015-01")
    shutil.copy(kept, journal)
    shutil.copy(kept_record, record)
    left = json.loads(journal.read_text())
    assert {e["name"]: e["status"] for e in left["effects"]} == {"workspace": "undone", "reject": "intent"}
    svc = fakes(Workspace.load(fakes.root))
    said = effects.recover(svc)
    assert said is not None and "rolled back the record of the rolled-back window" in said
    assert rolledback.find(svc.ws, "2015-01") is None
    assert fakes.snapshot() == before


def test_an_act_section_with_a_typo_is_refused(template: Path, tmp_path: Path) -> None:
    from modelcycle.config import load_config
    from modelcycle.config.models import ActConfig, ProjectConfig

    assert ActConfig().keep_rejected is True
    assert ProjectConfig.model_fields["act"].description
    assert all(f.description for f in ActConfig.model_fields.values())
    cfg = yaml.safe_load((template / "modelcycle.yaml").read_text())
    assert load_config(template / "modelcycle.yaml").act.keep_rejected is True  # absent: as before
    cfg["act"] = {"keep_rejectd": False}
    path = tmp_path / "modelcycle.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="keep_rejectd"):
        load_config(path)
    cfg["act"] = {"keep_rejected": "sometimes"}
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="keep_rejected"):
        load_config(path)
