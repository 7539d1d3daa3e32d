"""The in-memory fake follows the same contract as the DVC + git adapter (fast)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from modelcycle.errors import VersioningError
from modelcycle.versioning.base import Snapshot, VersionState
from modelcycle.versioning.memory import MemoryVersioning, dvc_md5

from tests.pipeline_fixture import CACHED, DVC_YAML, OWNED_COMMIT, REPORTS, STAGES, TAG

PARAMS = "window: '2015-01'\nseed: 0\n"
ALL_PATHS = ["dvc.yaml", "dvc.lock", "params.yaml", "data/.gitignore", "models/.gitignore",
             *CACHED, *REPORTS]


def write_outputs(root: Path, seed: int) -> None:
    for rel in CACHED[:4]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"{rel} {seed}".encode() * 50)
    model = root / "models/challenger"
    if model.exists():
        shutil.rmtree(model)
    (model / "sub").mkdir(parents=True)
    (model / "model.bin").write_bytes(bytes([seed % 256]) * 300)
    (model / "sub" / f"extra-{seed}.txt").write_text(str(seed))
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports/validation.json").write_text(f'{{"rows": {seed}}}')
    (root / "reports/metrics.json").write_text(f'{{"mae": {seed}.5}}')
    (root / "reports/predictions.csv").write_text(f"actual,challenger,champion\n{seed},{seed}.5,\n")


def picture(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for rel in ALL_PATHS:
        p = root / rel
        if p.is_dir():
            out[rel] = {f.relative_to(p).as_posix(): f.read_bytes() for f in p.rglob("*") if f.is_file()}
        else:
            out[rel] = p.read_bytes() if p.is_file() else None
    return out


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(PARAMS)
    (root / "modelcycle.yaml").write_text("name: taxifare\n")
    return root


@pytest.fixture
def cycled(ws: Path) -> tuple[Path, MemoryVersioning]:
    v = MemoryVersioning(ws)
    write_outputs(ws, 2)
    v.commit(STAGES, "cycle 2015-02", tag="modelcycle/taxifare/2015-02")
    return ws, v


def test_a_new_one_has_no_commit_and_no_tag() -> None:
    v = MemoryVersioning(".")
    assert v.head() is None and v.tags() == []


def test_hashes_are_dvcs() -> None:
    assert dvc_md5(".", "no/such/file") is None


def test_dir_hash_follows_dvc_listing(tmp_path: Path) -> None:
    (tmp_path / "m" / "s").mkdir(parents=True)
    (tmp_path / "m" / "b.txt").write_bytes(b"b")
    (tmp_path / "m" / "s" / "a.txt").write_bytes(b"a")
    listing = [{"md5": hashlib.md5(b"b").hexdigest(), "relpath": "b.txt"},
               {"md5": hashlib.md5(b"a").hexdigest(), "relpath": "s/a.txt"}]
    expected = hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"
    assert dvc_md5(tmp_path, "m") == expected


def test_commit_records_outputs_commits_owned_files_tags_and_pushes(ws: Path) -> None:
    v = MemoryVersioning(ws)
    write_outputs(ws, 3)
    snap = v.commit(STAGES, "cycle 2015-03", tag=TAG)
    assert isinstance(snap, Snapshot)
    assert snap.commit == v.head() and v.tag_target(TAG) == snap.commit
    assert v.tags("modelcycle/") == [TAG]
    assert set(snap.hashes) == set(CACHED) | set(REPORTS)
    assert snap.hashes == v.hashes(list(snap.hashes))
    assert snap.hashes["models/challenger"].endswith(".dir")
    lock = (ws / "dvc.lock").read_text()
    assert all(h in lock for h in snap.hashes.values())
    assert "/raw.parquet" in (ws / "data/.gitignore").read_text()
    assert "/challenger" in (ws / "models/.gitignore").read_text()
    assert [c.message for c in v.log()] == ["cycle 2015-03"]
    assert v.log()[0].changed <= OWNED_COMMIT
    assert v.log()[0].tree["modelcycle.yaml"] == b"name: taxifare\n"  # the config the cycle used
    assert snap.pushed is True and v.remote is not None
    for rel in CACHED:
        assert snap.hashes[rel] in v.remote
    model_file = hashlib.md5((ws / "models/challenger/model.bin").read_bytes()).hexdigest()
    assert model_file in v.remote


@pytest.mark.parametrize("fail_after", [None, "dvc_commit", "git_commit", "tag"])
def test_rollback_puts_everything_back_exactly(cycled: tuple[Path, MemoryVersioning],
                                               fail_after: str | None) -> None:
    ws, v = cycled
    before = picture(ws)
    head, tags = v.head(), v.tags()
    state = v.state()
    write_outputs(ws, 3)
    (ws / "params.yaml").write_text(PARAMS.replace("2015-01", "2015-03"))
    v.fail_after = fail_after  # type: ignore[assignment]
    if fail_after is None:
        v.commit(STAGES, "cycle 2015-03", tag=TAG)
    else:
        with pytest.raises(VersioningError, match="simulated"):
            v.commit(STAGES, "cycle 2015-03", tag=TAG)
    assert picture(ws) != before
    v.restore(state)
    assert picture(ws) == before
    assert v.head() == head and v.tags() == tags
    assert v.state() == state
    v.restore(state)  # idempotent
    assert picture(ws) == before and v.head() == head


def test_rollback_of_a_first_cycle(ws: Path) -> None:
    v = MemoryVersioning(ws)
    before = picture(ws)
    state = v.state()
    assert state.head is None and state.outputs == dict.fromkeys(CACHED + REPORTS)
    write_outputs(ws, 1)
    v.commit(STAGES, "first", tag=TAG)
    v.restore(state)
    assert picture(ws) == before and v.head() is None and v.tags() == []
    for rel in CACHED + REPORTS + ["dvc.lock", "data/.gitignore"]:
        assert not (ws / rel).exists()


def test_restore_brings_back_outputs_that_were_never_committed(cycled: tuple[Path, MemoryVersioning]) -> None:
    ws, v = cycled
    write_outputs(ws, 7)
    dirty = picture(ws)
    state = v.state()
    write_outputs(ws, 8)
    v.commit(STAGES, "cycle 8", tag=TAG)
    v.restore(state)
    assert picture(ws) == dirty


def test_users_unrelated_files_survive(cycled: tuple[Path, MemoryVersioning]) -> None:
    """Files the stages do not read stay out of the cycle's commit; the config they read
    (modelcycle.yaml) goes in as the cycle used it, and a rollback leaves the user's edit."""
    ws, v = cycled
    (ws / "modelcycle.yaml").write_text("edited\n")
    (ws / "notes.txt").write_text("untracked\n")
    (ws / "data/scratch.csv").write_text("a,b\n")
    state = v.state()
    assert state.dirty == ("modelcycle.yaml",)
    write_outputs(ws, 3)
    v.commit(STAGES, "c", tag=TAG)
    assert not {"notes.txt", "data/scratch.csv"} & set(v.log()[0].tree)
    assert v.log()[0].tree["modelcycle.yaml"] == b"edited\n"
    v.restore(state)
    assert (ws / "modelcycle.yaml").read_text() == "edited\n"
    assert (ws / "notes.txt").read_text() == "untracked\n"
    assert (ws / "data/scratch.csv").read_text() == "a,b\n"


def test_existing_tag_is_an_error_before_any_side_effect(cycled: tuple[Path, MemoryVersioning]) -> None:
    ws, v = cycled
    head, lock = v.head(), (ws / "dvc.lock").read_bytes()
    write_outputs(ws, 3)
    with pytest.raises(VersioningError, match="already exists") as err:
        v.commit(STAGES, "again", tag="modelcycle/taxifare/2015-02")
    assert "git tag -d" in (err.value.hint or "")
    assert v.head() == head and (ws / "dvc.lock").read_bytes() == lock


@pytest.mark.parametrize("tag", ["bad tag", "ends/", "a..b"])
def test_invalid_tag_name_is_an_error(cycled: tuple[Path, MemoryVersioning], tag: str) -> None:
    with pytest.raises(VersioningError, match="check-ref-format"):
        cycled[1].commit(STAGES, "x", tag=tag)


def test_missing_output_and_unknown_stage_are_errors(ws: Path) -> None:
    v = MemoryVersioning(ws)
    with pytest.raises(VersioningError, match="no stage 'trian'"):
        v.commit(["trian"], "x")
    with pytest.raises(VersioningError, match="nothing to commit"):
        v.commit([], "x")
    write_outputs(ws, 1)
    shutil.rmtree(ws / "models/challenger")
    with pytest.raises(VersioningError, match="models/challenger") as err:
        v.commit(STAGES, "x", tag=TAG)
    assert "did not run" in (err.value.hint or "")


def test_push_failure_is_reported_not_raised(ws: Path, caplog: pytest.LogCaptureFixture) -> None:
    v = MemoryVersioning(ws, push_fails=True)
    write_outputs(ws, 1)
    with caplog.at_level(logging.WARNING):
        snap = v.commit(STAGES, "x", tag=TAG)
    assert snap.pushed is False and TAG in v.tags()
    assert any("not pushed" in r.getMessage() for r in caplog.records)
    write_outputs(ws, 2)
    assert MemoryVersioning(ws, remote=False).commit(STAGES, "y").pushed is False


def test_explicit_stage_spec_without_dvc_yaml(tmp_path: Path) -> None:
    v = MemoryVersioning(tmp_path, stages={"train": ["models/m.bin", "!reports/m.json"]})
    (tmp_path / "models").mkdir()
    (tmp_path / "reports").mkdir()
    (tmp_path / "models/m.bin").write_bytes(b"m")
    (tmp_path / "reports/m.json").write_text("{}")
    state = v.state()
    assert isinstance(state, VersionState)
    assert "reports/m.json" in state.files  # cache: false outputs are owned files
    snap = v.commit(["train"], "x")
    assert snap.hashes["models/m.bin"] == hashlib.md5(b"m").hexdigest()
    assert v.calls == ["state", "commit"]
