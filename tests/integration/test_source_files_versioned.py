"""A source's own files (an image folder inside the workspace) are versioned with each cycle's
snapshot, as `dvc add` would: a .dvc file committed with the cycle, the content in the DVC cache
and the remote, and a restore brings the folder back. The same contract on the in-memory fake."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from modelcycle.versioning.dvcgit import DvcGitVersioning
from modelcycle.versioning.memory import MemoryVersioning, dvc_md5
from tests.integration.test_versioning_dvcgit import _new_workspace, commit_files, git, hermetic_git, write_outputs
from tests.pipeline_fixture import STAGES

__all__ = ["hermetic_git"]  # the autouse fixture: no machine-wide git identity or hooks

PICTURES = {"cats/1.png": b"\x89PNG one cat", "cats/2.png": b"\x89PNG two cats", "dogs/1.png": b"\x89PNG a dog"}


def write_pictures(root: Path, files: dict[str, bytes]) -> None:
    folder = root / "pictures"
    if folder.exists():
        shutil.rmtree(folder)
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def pictures(root: Path) -> dict[str, bytes]:
    folder = root / "pictures"
    return {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("adapter", ["dvcgit", "memory"])
def test_a_sources_folder_is_snapshotted_with_the_cycle_and_restored(tmp_path: Path, adapter: str) -> None:
    ws = _new_workspace(tmp_path)
    v = DvcGitVersioning(ws) if adapter == "dvcgit" else MemoryVersioning(ws)
    write_outputs(ws, 2)
    write_pictures(ws, PICTURES)

    snap = v.commit(STAGES, "cycle 2015-02", tag="modelcycle/taxifare/2015-02", tracked=["pictures"])

    value = snap.hashes["pictures"]
    assert value.endswith(".dir") and value == dvc_md5(ws, "pictures") == v.hashes(["pictures"])["pictures"]
    recorded = yaml.safe_load((ws / "pictures.dvc").read_text())
    assert recorded["outs"][0]["md5"] == value and recorded["outs"][0]["path"] == "pictures"
    assert "/pictures" in (ws / ".gitignore").read_text().splitlines()
    if adapter == "dvcgit":
        assert {"pictures.dvc", ".gitignore"} <= commit_files(ws)
        assert git(ws, "ls-files", "pictures") == ""  # the pictures themselves are DVC's, not git's
        assert git(ws, "status", "--porcelain") == ""
        for where in (ws / ".dvc/cache", tmp_path / "remote"):  # in the cache, and pushed
            store = where / "files" / "md5"
            assert (store / value[:2] / value[2:]).is_file()
            for data in PICTURES.values():
                h = hashlib.md5(data).hexdigest()
                assert (store / h[:2] / h[2:]).is_file()
    else:
        assert value in v.cache and all(hashlib.md5(d).hexdigest() in v.cache for d in PICTURES.values())

    # the next cycle changes the pictures, then rolls back: the first cycle's pictures come back
    before = v.state(tracked=["pictures"])
    assert before.outputs["pictures"] == value and "pictures.dvc" in before.files
    write_pictures(ws, {"cats/1.png": b"\x89PNG another cat", "birds/1.png": b"\x89PNG a bird"})
    write_outputs(ws, 3)
    second = v.commit(STAGES, "cycle 2015-03", tag="modelcycle/taxifare/2015-03", tracked=["pictures"])
    assert second.hashes["pictures"] != value
    assert yaml.safe_load((ws / "pictures.dvc").read_text())["outs"][0]["md5"] == second.hashes["pictures"]

    v.restore(before)

    assert pictures(ws) == PICTURES
    assert yaml.safe_load((ws / "pictures.dvc").read_text())["outs"][0]["md5"] == value
    assert v.head() == snap.commit and v.tags("modelcycle/") == ["modelcycle/taxifare/2015-02"]
    if adapter == "dvcgit":
        assert git(ws, "status", "--porcelain") == ""


def test_a_folder_outside_the_workspace_is_not_tracked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from modelcycle.sources.base import tracked_paths

    class Pictures:
        def tracked_paths(self) -> list[Path]:
            return [Path("pictures"), tmp_path / "elsewhere", Path("pictures/../pictures")]

    root = tmp_path / "ws"
    root.mkdir()
    assert tracked_paths(Pictures(), root) == ["pictures"]
    assert "outside the workspace" in caplog.text and "DVC does not version it" in caplog.text
    assert tracked_paths(object(), root) == []  # a source that does not say: nothing
