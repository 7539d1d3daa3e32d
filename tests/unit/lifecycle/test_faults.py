"""A failure injected before and after every side effect of a cycle leaves the workspace as it
was: cycles run on the in-memory registry and versioning fakes (a real Prefect test server and
real stage files), with a failure raised at each named trace point.

Before the commit point, the snapshot (HEAD on its branch, tags, owned files and DVC outputs,
versions, aliases, model tags, journal, lock, runs) must equal the one before the cycle. After
it, the cycle's changes stand and recovery closes its bookkeeping.
"""

from __future__ import annotations

import pytest

from modelcycle import tracepoints
from modelcycle.config import Workspace
from modelcycle.lifecycle import flows
from modelcycle.lifecycle.journal import Journal
from tests.unit.lifecycle.conftest import Fakes, holding

pytestmark = pytest.mark.usefixtures("prefect_server")

# every point a cycle passes before its commit point, in order
BEFORE_COMMIT = [
    "cycle:started", "cycle:fetched", "cycle:training", "cycle:trained", "cycle:decided",
    "before:commit", "versioning:dvc-committed", "versioning:git-committed", "versioning:tagged",
    "did:commit", "after:commit",
    "before:register", "registry:registered", "did:register", "after:register",
    "before:alias:challenger", "did:alias:challenger", "after:alias:challenger",
    "before:alias:champion", "did:alias:champion",
]
AFTER_COMMIT = ["after:alias:champion", "cycle:committed", "cycle:tracked"]


class InjectedError(RuntimeError):
    pass


def fail_at(point: str):
    def hook(reached: str) -> None:
        if reached == point:
            raise InjectedError(f"injected failure at {point}")
    return tracepoints.injecting(hook)


def test_every_point_is_reached_by_a_promoting_cycle(fakes: Fakes) -> None:
    seen: list[str] = []
    with tracepoints.injecting(seen.append):
        result = flows.run(fakes.root, "2015-03")  # the fare change: the challenger is promoted
    assert result.outcome == "promote"
    for point in BEFORE_COMMIT + AFTER_COMMIT:
        assert point in seen, point
    order = [p for p in seen if p in BEFORE_COMMIT + AFTER_COMMIT]
    assert order == sorted(order, key=(BEFORE_COMMIT + AFTER_COMMIT).index)


@pytest.mark.parametrize("point", BEFORE_COMMIT)
def test_a_failure_before_the_commit_point_changes_nothing(fakes: Fakes, point: str) -> None:
    before = fakes.snapshot()
    with fail_at(point), pytest.raises(InjectedError):
        flows.run(fakes.root, "2015-03")
    after = fakes.snapshot()
    assert after == before
    failed = [r for r in fakes.registry.runs.values() if r.tags.get("modelcycle.window") == "2015-03"]
    assert [r.status for r in failed] in ([], ["FAILED"])
    # and the next cycle runs as if nothing had happened
    assert flows.run(fakes.root, "2015-03").outcome == "promote"


@pytest.mark.parametrize("point", AFTER_COMMIT)
def test_a_failure_after_the_commit_point_keeps_the_cycle(fakes: Fakes, point: str) -> None:
    with fail_at(point), pytest.raises(InjectedError):
        flows.run(fakes.root, "2015-03")
    reg = fakes.registry
    champion = reg.get_alias("taxifare", "champion")
    assert champion is not None and champion.version == "2"
    assert reg.model_tags("taxifare")["modelcycle.champion"] == "2"
    assert "modelcycle/taxifare/2015-03" in fakes.versioning.tags()
    # the next cycle's recovery closes the committed cycle's bookkeeping, and undoes nothing
    result = flows.run(fakes.root, "2015-04")
    assert result.repaired is None or "committed" in result.repaired
    assert result.champion_version == "2"
    assert not (fakes.root / ".modelcycle/journal.json").exists()
    assert not [r for r in reg.runs.values() if r.status == "RUNNING"]


def test_the_undo_functions_are_the_ones_recovery_uses(fakes: Fakes) -> None:
    """A journal left as a killed process leaves it (registration done, the answer never
    recorded) is rolled back by recovery through the same undo table the hooks use."""
    from modelcycle.lifecycle import effects

    before = fakes.snapshot()
    with fail_at("did:register"), pytest.raises(InjectedError):
        flows.run(fakes.root, "2015-03")
    assert fakes.snapshot() == before
    assert set(effects.UNDO) == {"workspace", "commit", "register", "alias:challenger", "alias:champion",
                                 "reject"}


def test_a_deleted_champion_escalates_instead_of_promoting_unchecked(fakes: Fakes) -> None:
    fakes.registry.delete_version("taxifare", "1")
    result = flows.run(fakes.root, "2015-01")
    assert result.outcome == "escalate"
    assert any("version 1 is gone" in r for r in result.reasons), result.reasons
    assert fakes.registry.get_alias("taxifare", "champion") is None
    assert fakes.registry.get_alias("taxifare", "challenger").version == "2"


def test_a_champion_moved_during_the_cycle_is_compared_again(fakes: Fakes) -> None:
    """Another worker promoted v2 while this cycle trained against v1: the gate decides
    against v2, scored on the same held-out rows."""
    second = flows.run(fakes.root, "2015-01")
    assert second.challenger_version == "2"
    reg = fakes.registry

    def move_champion(point: str) -> None:
        if point == "cycle:decided":
            reg.set_alias("taxifare", "champion", "2")

    with tracepoints.injecting(move_champion):
        third = flows.run(fakes.root, "2015-02")
    assert third.champion_version == "1"
    assert any("the champion moved from v1 to v2" in r for r in third.reasons), third.reasons
    metrics = (fakes.root / "reports/metrics.json").read_text()
    assert '"champion_version": "2"' in metrics


def test_a_detached_head_is_refused_before_anything_changes(fakes: Fakes) -> None:
    from modelcycle.errors import WorkspaceError

    fakes.versioning.branch_name = None
    before = fakes.snapshot()
    with pytest.raises(WorkspaceError, match="detached") as err:
        flows.run(fakes.root, "2015-01")
    assert "git switch" in (err.value.hint or "")
    assert fakes.snapshot() == before


def test_uncommitted_config_edits_are_committed_with_the_cycle(fakes: Fakes) -> None:
    cfg = fakes.root / "modelcycle.yaml"
    cfg.write_text(cfg.read_text().replace("threshold: 2.5", "threshold: 2.4"))
    result = flows.run(fakes.root, "2015-01")
    commit = fakes.versioning.log()[0]
    assert commit.tree["modelcycle.yaml"] == cfg.read_bytes()
    assert "uncommitted changes to modelcycle.yaml" in commit.message
    assert result.git_commit == commit.sha


def test_journal_owner_alive_is_not_recovered(fakes: Fakes) -> None:
    """A journal whose process still runs (and somehow does not hold the lock) is left alone."""
    import subprocess
    import sys

    from modelcycle.errors import WorkspaceError

    ws = Workspace.load(fakes.root)
    journal = Journal.begin(ws, window="2015-01", state=fakes.versioning.state(), command="a live cycle")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import psutil

        journal.data.update(pid=sleeper.pid, process_start=psutil.Process(sleeper.pid).create_time())
        journal.set()
        with pytest.raises(WorkspaceError, match="is running"):
            flows.run(fakes.root, "2015-01")
        assert Journal.open(ws) is not None
    finally:
        sleeper.kill()
        sleeper.wait()
    result = flows.run(fakes.root, "2015-01")  # its owner is gone now: repaired, then the cycle
    assert result.repaired and "2015-01" in result.repaired


def test_on_a_team_server_the_act_block_holds_a_prefect_concurrency_slot(fakes: Fakes, monkeypatch) -> None:
    """Workers on several machines share no file lock: one Prefect global concurrency slot per
    model, held for the whole cycle, keeps two cycles (and their act blocks) of one model apart."""
    from prefect import get_client

    from modelcycle.lifecycle import runtime

    monkeypatch.setattr(runtime, "_team_server", True)
    held: list[int] = []

    def probe(point: str) -> None:
        if point in ("cycle:fetched", "before:commit"):
            with get_client(sync_client=True) as client:
                held.append(client.read_global_concurrency_limit_by_name("modelcycle-taxifare").active_slots)

    with tracepoints.injecting(probe):
        assert flows.run(fakes.root, "2015-01").outcome in ("keep", "promote")
    assert held == [1, 1]
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("modelcycle-taxifare")
    assert limit.limit == 1 and limit.active_slots == 0


def test_a_cycle_that_waits_for_the_workspace_says_who_holds_it(fakes: Fakes, monkeypatch) -> None:
    """A deployed run that finds another command holding the workspace says so in its Prefect log
    (its only output), once, and runs when the holder ends."""
    import threading

    from modelcycle.lifecycle import automation

    logged: list[tuple[str, str]] = []
    monkeypatch.setattr(automation, "prefect_progress", lambda window, text: logged.append((window, text)))
    with holding(fakes.root) as holder:
        threading.Timer(1.0, holder.kill).start()
        assert flows.run(fakes.root, "2015-03").outcome == "promote"
    waits = [(w, t) for w, t in logged if t.startswith("waiting for the workspace")]
    assert len(waits) == 1, logged
    assert waits[0][0] == "2015-03" and "modelcycle run --window 2015-02" in waits[0][1]
    assert f"pid {holder.pid}" in waits[0][1]
