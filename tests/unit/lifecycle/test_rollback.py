"""The alias history a cycle, promote and rollback write, rollback itself, and the serving load
check of the act block: cycles on the in-memory registry and versioning fakes."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from modelcycle import tracepoints
from modelcycle.config import Workspace
from modelcycle.errors import ModelcycleError, NoChampionError, RegistryError
from modelcycle.lifecycle import actions, flows, lock, services
from modelcycle.lifecycle.journal import Journal
from modelcycle.notify import EventKind, Notifier
from modelcycle.registry import history
from tests.unit.lifecycle.conftest import Fakes

pytestmark = pytest.mark.usefixtures("prefect_server")
NAME = "taxifare"


@pytest.fixture(scope="module")
def promoted_fakes(champion_fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Fakes:
    """After 2014-12 (v1 champion) and 2015-03, the fare change (v2 promoted), run once."""
    fakes = champion_fakes.clone_to(tmp_path_factory.mktemp("promoted") / "ws")
    with services.using(factory=fakes):
        assert flows.run(fakes.root, "2015-03").outcome == "promote"
    return fakes


@pytest.fixture
def two(promoted_fakes: Fakes, tmp_path: Path) -> Fakes:
    fakes = promoted_fakes.clone_to(tmp_path / "ws")
    with services.using(factory=fakes):
        yield fakes


def svc_of(fakes: Fakes) -> services.Services:
    """The services a command uses, its notifications going to the workspace's decision log."""
    svc = fakes(Workspace.load(fakes.root))
    svc.notifier = Notifier(file=svc.ws.path(svc.ws.config.notify.file))
    return svc


def decision_log(fakes: Fakes) -> list[dict]:
    path = fakes.root / ".modelcycle" / "notifications.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def champion(fakes: Fakes) -> str | None:
    mv = fakes.registry.get_alias(NAME, "champion")
    return mv.version if mv else None


def rollback(fakes: Fakes, **kw) -> actions.Promotion:
    with lock.hold(fakes.root, "modelcycle rollback"):
        return actions.rollback(svc_of(fakes), **{"to": None, "reason": "bad fares", "by": "ana", **kw})


# what a cycle records ----------------------------------------------------------------------

def test_a_cycle_records_both_alias_moves_with_its_window_and_runs(two: Fakes) -> None:
    moves = history.moves(two.registry, NAME)
    assert [(m.alias, m.before, m.after, m.by, m.window) for m in moves] == [
        ("challenger", None, "1", "cycle", "2014-12"), ("champion", None, "1", "cycle", "2014-12"),
        ("challenger", "1", "2", "cycle", "2015-03"), ("champion", "1", "2", "cycle", "2015-03")]
    run = two.registry.runs[moves[-1].run_id]
    assert run.tags["modelcycle.window"] == "2015-03"
    assert moves[-1].flow_run_id == run.tags["modelcycle.flow_run_id"] and moves[-1].flow_run_id
    assert moves[-1].reason.startswith("promote; ")
    tags = two.registry.get_version(NAME, "2").tags
    assert tags["champion_by"] == "cycle 2015-03" and tags["champion_since"] == moves[-1].time


@pytest.fixture
def one(champion_fakes: Fakes, tmp_path: Path) -> Fakes:
    """After 2014-12 only (v1 champion): 2015-03 promotes."""
    fakes = champion_fakes.clone_to(tmp_path / "ws")
    with services.using(factory=fakes):
        yield fakes


def test_a_rolled_back_cycle_records_the_undo_of_its_alias_moves(one: Fakes) -> None:
    def fail(point: str) -> None:
        if point == "did:alias:champion":
            raise RuntimeError("the registry went away")

    with tracepoints.injecting(fail), pytest.raises(RuntimeError):
        flows.run(one.root, "2015-03")
    assert champion(one) == "1"
    tail = [(m.alias, m.before, m.after, m.by, m.window) for m in history.moves(one.registry, NAME)[-4:]]
    assert tail == [("challenger", "1", "2", "cycle", "2015-03"), ("champion", "1", "2", "cycle", "2015-03"),
                    ("champion", "2", "1", "undo", "2015-03"), ("challenger", "2", "1", "undo", "2015-03")]


def test_a_failing_record_fails_the_move_and_the_cycle_rolls_back(one: Fakes, monkeypatch) -> None:
    before = one.snapshot()
    real = history.record

    def broken(reg, name, move):
        if move.alias == "champion" and move.by == "cycle":
            raise RegistryError("cannot tag model 'taxifare': the database is locked")
        return real(reg, name, move)

    monkeypatch.setattr(history, "record", broken)
    with pytest.raises(RegistryError, match="database is locked"):
        flows.run(one.root, "2015-03")
    assert one.snapshot() == before
    assert history.moves(one.registry, NAME)[-1].by == "undo"  # the challenger's move, put back


def test_a_cycle_records_a_champion_moved_in_the_mlflow_ui_before_its_own_moves(two: Fakes) -> None:
    two.registry.set_alias(NAME, "champion", "1")  # someone, in the UI
    result = flows.run(two.root, "2015-04")
    assert result.champion_version == "1"
    assert result.outside_moves == ["the champion alias was moved outside modelcycle from v2 to v1"]
    moves = history.moves(two.registry, NAME)
    first = next(i for i, m in enumerate(moves) if m.window == "2015-04")
    assert (moves[first - 1].by, moves[first - 1].before, moves[first - 1].after) == ("outside", "2", "1")


def test_a_registry_error_while_looking_for_outside_moves_never_fails_the_cycle(two: Fakes, monkeypatch,
                                                                                caplog) -> None:
    def down(*_a, **_k):
        raise RegistryError("the MLflow server does not answer")

    monkeypatch.setattr(history, "detect_outside", down)
    assert flows.run(two.root, "2015-04").outcome in ("keep", "promote")
    assert "moves made outside modelcycle" in caplog.text


# rollback -------------------------------------------------------------------------------------

def test_rollback_moves_the_champion_back_records_it_and_announces_it(two: Fakes) -> None:
    done = rollback(two)
    assert (done.version, done.previous, champion(two)) == ("1", "2", "1")
    last = history.moves(two.registry, NAME)[-1]
    assert (last.alias, last.before, last.after, last.by, last.who, last.reason) == (
        "champion", "2", "1", "rollback", "ana", "bad fares")
    assert two.registry.model_tags(NAME)["modelcycle.champion"] == "1"
    tags = two.registry.get_version(NAME, "1").tags
    assert tags["champion_by"] == "rollback by ana" and tags["champion_reason"] == "bad fares"
    event = decision_log(two)[-1]
    assert event["kind"] == EventKind.ROLLBACK == "rollback" and event["version"] == "1"
    assert "rolled back to v1 (was v2) by ana" in event["reasons"][0]
    assert not Journal.path_of(Workspace.load(two.root)).exists()


def test_rollback_twice_goes_back_where_it_started(two: Fakes) -> None:
    rollback(two)
    assert rollback(two).version == "2" and champion(two) == "2"


def test_rollback_follows_a_move_made_outside_modelcycle(two: Fakes) -> None:
    two.registry.set_alias(NAME, "champion", "1")  # the UI
    done = rollback(two)
    assert done.outside == ("champion: v2 -> v1",)
    assert (done.version, champion(two)) == ("2", "2")


def test_rollback_to_a_named_version(two: Fakes) -> None:
    two.registry.set_alias(NAME, "challenger", "1")
    assert rollback(two, to="1").version == "1"


@pytest.mark.parametrize(("to", "words"), [
    ("9", "cannot read version 9"), ("2", "v2 is already the champion"),
])
def test_rollback_to_a_version_it_cannot_use_changes_nothing(two: Fakes, to: str, words: str) -> None:
    before = history.moves(two.registry, NAME)
    with pytest.raises(RegistryError, match=words):
        rollback(two, to=to)
    assert champion(two) == "2" and history.moves(two.registry, NAME) == before


def test_rollback_of_the_first_champion_asks_for_a_version(champion_fakes: Fakes, tmp_path: Path) -> None:
    fakes = champion_fakes.clone_to(tmp_path / "ws")
    with services.using(factory=fakes), pytest.raises(RegistryError) as err:
        rollback(fakes)
    assert "no champion of 'taxifare' before v1" in err.value.message
    assert "--to N" in err.value.hint


def test_rollback_without_a_champion_asks_for_a_version(two: Fakes) -> None:
    two.registry.delete_alias(NAME, "champion")
    with pytest.raises(NoChampionError, match="no champion to roll back") as err:
        rollback(two)
    assert "--to N" in err.value.hint


def test_rollback_to_a_previous_champion_that_was_deleted_says_so(two: Fakes) -> None:
    two.registry.delete_version(NAME, "1")
    with pytest.raises(RegistryError, match="v1, is no longer registered"):
        rollback(two)


def test_an_undone_move_is_not_a_previous_champion() -> None:
    moves = [history.Move("champion", None, "1", "t1", "cycle"), history.Move("champion", "1", "2", "t2", "cycle"),
             history.Move("champion", "2", "3", "t3", "cycle"), history.Move("champion", "3", "2", "t4", "undo")]
    assert actions.previous_champion(moves, "2") == "1"
    assert actions.previous_champion(moves[:3], "3") == "2"
    assert actions.previous_champion(moves, "7") is None


# promote through the same path ---------------------------------------------------------------

def test_promote_is_journaled_and_a_failure_puts_the_alias_back_and_records_the_undo(two: Fakes) -> None:
    def fail(point: str) -> None:
        if point == "did:alias:champion":
            raise RuntimeError("killed")

    with tracepoints.injecting(fail), pytest.raises(RuntimeError), lock.hold(two.root, "promote"):
        actions.promote(svc_of(two), "1", reason="checked", by="ana")
    assert champion(two) == "2"
    assert two.registry.model_tags(NAME)["modelcycle.champion"] == "2"
    tail = [(m.before, m.after, m.by) for m in history.moves(two.registry, NAME)[-2:]]
    assert tail == [("2", "1", "human"), ("1", "2", "undo")]
    assert not Journal.path_of(Workspace.load(two.root)).exists()
    assert not [e for e in decision_log(two) if e["kind"] == "approval"]


def test_promote_records_a_human_move_and_writes_the_decision_log(two: Fakes) -> None:
    with lock.hold(two.root, "promote"):
        done = actions.promote(svc_of(two), "1", reason="checked the May data", by="ana")
    assert (done.version, done.previous) == ("1", "2")
    last = history.moves(two.registry, NAME)[-1]
    assert (last.by, last.who, last.reason, last.after) == ("human", "ana", "checked the May data", "1")
    assert decision_log(two)[-1]["kind"] == "approval"


def test_a_promote_killed_midway_is_repaired_by_the_next_command(two: Fakes) -> None:
    """A journal of a promote whose process died after the alias moved: the next rollback puts
    it back first (recorded as an undo), then rolls back from there."""
    ws = Workspace.load(two.root)
    journal = Journal.begin(ws, window="promote v1", state=two.versioning.state(), command="modelcycle promote",
                            kind="promote")
    journal.intent("alias:champion", before="2", to="1", tag_before="2")
    two.registry.set_alias(NAME, "champion", "1")
    history.record(two.registry, NAME, history.Move("champion", "2", "1", history.now(), "human", who="bo"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    journal.data.update(pid=int(dead.stdout), process_start=None)
    journal.set()
    done = rollback(two)
    assert done.repaired == "`modelcycle promote` stopped midway; rolled back the aliases"
    assert (done.previous, done.version) == ("2", "1")  # put back to v2 first, then rolled back to v1
    assert [m.by for m in history.moves(two.registry, NAME)[-3:]] == ["human", "undo", "rollback"]


# the serving load check ------------------------------------------------------------------------

@pytest.fixture
def loader(monkeypatch) -> types.SimpleNamespace:
    """A stand-in for modelcycle.serving.loader: records what it is asked, fails when told."""
    calls: list[tuple] = []
    fake = types.SimpleNamespace(calls=calls, error=None)

    def load_version(reg, name, version):
        calls.append(("load", name, version.version))
        return types.SimpleNamespace(version=version)

    def check_serves(served, rows):
        calls.append(("check", served.version.version, len(rows)))
        if fake.error is not None:
            raise fake.error

    fake.load_version, fake.check_serves = load_version, check_serves
    module = types.ModuleType("modelcycle.serving.loader")
    module.load_version, module.check_serves = load_version, check_serves
    import modelcycle.serving

    monkeypatch.setitem(sys.modules, "modelcycle.serving.loader", module)
    monkeypatch.setattr(modelcycle.serving, "loader", module, raising=False)
    return fake


def served_by_this_process(fakes: Fakes) -> None:
    (fakes.root / ".modelcycle" / "serving.json").write_text(json.dumps(
        {"pid": __import__("os").getpid(), "host": "127.0.0.1", "port": 8080, "started": "now"}))


def test_a_served_workspace_checks_the_new_version_serves_before_the_champion_moves(one: Fakes, loader) -> None:
    fakes = one
    served_by_this_process(fakes)
    seen: list[str] = []
    with tracepoints.injecting(seen.append):
        result = flows.run(fakes.root, "2015-03")
    assert result.outcome == "promote" and champion(fakes) == "2"
    assert loader.calls == [("load", NAME, "2"), ("check", "2", result.rows["holdout"])]
    assert seen.index("after:check-serving") < seen.index("before:alias:champion")


def test_a_version_that_does_not_serve_rolls_the_cycle_back(one: Fakes, loader) -> None:
    fakes = one
    served_by_this_process(fakes)
    loader.error = ModelcycleError("v2 of taxifare predicts NaN for 3 of 200 rows", "fix the features")
    before = fakes.snapshot()
    with pytest.raises(ModelcycleError, match="predicts NaN"):
        flows.run(fakes.root, "2015-03")
    assert champion(fakes) == "1"
    assert [v.version for v in fakes.registry.list_versions(NAME)] == ["1"]  # v2 unregistered
    assert fakes.snapshot() == before


def test_a_workspace_nobody_serves_is_not_checked(one: Fakes, loader) -> None:
    fakes = one
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (fakes.root / ".modelcycle" / "serving.json").write_text(json.dumps({"pid": int(gone.stdout)}))
    assert flows.run(fakes.root, "2015-03").outcome == "promote"
    assert loader.calls == []


def test_a_serve_section_marks_a_workspace_served(champion_fakes: Fakes, tmp_path: Path, monkeypatch) -> None:
    from modelcycle.lifecycle import servecheck

    fakes = champion_fakes.clone_to(tmp_path / "ws")
    ws = Workspace.load(fakes.root)
    assert not servecheck.is_served(ws)
    config = fakes.root / "modelcycle.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "\nserve:\n  port: 8080\n", encoding="utf-8")
    assert servecheck.is_served(Workspace.load(fakes.root))


def test_the_serving_runtimes_own_loader_passes_a_good_version(one: Fakes) -> None:
    served_by_this_process(one)
    seen: list[str] = []
    with tracepoints.injecting(seen.append):
        assert flows.run(one.root, "2015-03").outcome == "promote"
    assert "after:check-serving" in seen and champion(one) == "2"


def test_a_version_the_serving_runtime_cannot_load_is_not_promoted(one: Fakes, monkeypatch) -> None:
    from modelcycle.errors import ServingError

    served_by_this_process(one)
    real = one.registry.load_model
    loads: list[str] = []

    def load_model(uri: str):
        loads.append(uri)
        if len(loads) > 1:  # the champion's scoring loads first; the serving check next
            raise RegistryError("the artifact store does not answer")
        return real(uri)

    monkeypatch.setattr(one.registry, "load_model", load_model)
    before = one.snapshot()
    with pytest.raises(ServingError, match="version 2 of taxifare cannot be loaded for serving"):
        flows.run(one.root, "2015-03")
    assert one.snapshot() == before
