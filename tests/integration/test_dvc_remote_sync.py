"""The DVC remote follows the configuration, and a failed push says where and what to do: the
real adapter on real git + DVC repositories in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.errors import VersioningError
from modelcycle.versioning.dvcgit import DvcGitVersioning
from modelcycle.versioning.remote import remote_in_use
from tests.integration.test_versioning_dvcgit import (  # noqa: F401 - hermetic_git is a fixture
    _new_workspace,
    git,
    hermetic_git,
    write_outputs,
)
from tests.pipeline_fixture import STAGES, TAG


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return _new_workspace(tmp_path)


def objects_in(remote: Path) -> set[str]:
    base = remote / "files" / "md5"
    return {f"{p.parent.name}{p.name}" for p in base.rglob("*") if p.is_file()} if base.exists() else set()


def cached_objects(root: Path) -> set[str]:
    base = root / ".dvc" / "cache" / "files" / "md5"
    return {f"{p.parent.name}{p.name}" for p in base.rglob("*") if p.is_file()}


def test_a_changed_remote_is_the_one_pushed_to_and_git_tracks_no_change(ws: Path, tmp_path: Path) -> None:
    tracked_before = (ws / ".dvc/config").read_bytes()
    v = DvcGitVersioning(ws)
    v.sync_remote(str(tmp_path / "team-remote"))
    write_outputs(ws, 1)
    snap = v.commit(STAGES, "cycle", tag=TAG)
    assert snap.pushed is True and snap.push_error is None
    assert objects_in(tmp_path / "team-remote") == cached_objects(ws)
    assert objects_in(tmp_path / "remote") == set()  # the remote `init` named got nothing
    assert (ws / ".dvc/config").read_bytes() == tracked_before
    assert git(ws, "status", "--porcelain", "--", ".dvc") == ""
    assert remote_in_use(ws).url == str(tmp_path / "team-remote")


def test_a_remote_with_a_password_and_an_s3_endpoint_stay_out_of_git(ws: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    v = DvcGitVersioning(ws)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    v.sync_remote("s3://team-bucket/models")
    local = (ws / ".dvc/config.local").read_text()
    assert "url = s3://team-bucket/models" in local and "endpointurl = http://127.0.0.1:9000" in local
    used = remote_in_use(ws)
    assert (used.url, used.endpoint) == ("s3://team-bucket/models", "http://127.0.0.1:9000")
    v.sync_remote("https://ml:s3cret@dvc.example.com/store")
    assert "s3cret" in (ws / ".dvc/config.local").read_text()
    assert "endpointurl" not in (ws / ".dvc/config.local").read_text()  # not an S3 remote
    assert remote_in_use(ws).describe() == "https://ml:***@dvc.example.com/store"
    assert git(ws, "check-ignore", ".dvc/config.local") == ".dvc/config.local"
    assert git(ws, "status", "--porcelain", "--untracked-files=all") == ""
    assert "s3cret" not in (ws / ".dvc/config").read_text()


def test_no_remote_configured_means_no_push(ws: Path, tmp_path: Path) -> None:
    v = DvcGitVersioning(ws)
    v.sync_remote(None)
    assert remote_in_use(ws) is None
    write_outputs(ws, 1)
    assert v.commit(STAGES, "x").pushed is False
    assert objects_in(tmp_path / "remote") == set()


def test_a_failed_push_names_the_remote_and_a_retry_pushes_the_commit(ws: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "team"
    blocker.write_text("a file where the remote's parent folder should be")
    v = DvcGitVersioning(ws)
    v.sync_remote(str(blocker / "remote"))
    write_outputs(ws, 1)
    snap = v.commit(STAGES, "cycle", tag=TAG)
    assert snap.pushed is False
    assert snap.push_error is not None and str(blocker / "remote") in snap.push_error
    assert "versioning: {push: best-effort}" in (snap.push_hint or "")
    assert TAG in v.tags()  # committed: the caller decides whether this fails the cycle
    with pytest.raises(VersioningError) as failed:
        v.push([snap.commit])
    assert str(blocker / "remote") in failed.value.message
    blocker.unlink()  # the remote can be reached again
    v.push([snap.commit, "0" * 40])  # a commit reset away since has nothing to push
    assert objects_in(blocker / "remote") == cached_objects(ws)


def test_a_password_in_a_failed_push_is_redacted(ws: Path) -> None:
    v = DvcGitVersioning(ws)
    v.sync_remote("https://ml:s3cret@127.0.0.1:9/store")  # nothing listens on port 9
    write_outputs(ws, 1)
    snap = v.commit(STAGES, "cycle", tag=TAG)
    assert snap.pushed is False
    assert "https://ml:***@127.0.0.1:9/store" in (snap.push_error or "")
    assert "s3cret" not in (snap.push_error or "") + (snap.push_hint or "")


def test_a_failed_push_to_a_file_where_the_folder_should_be(ws: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the remote folder should be")
    v = DvcGitVersioning(ws)
    v.sync_remote(str(blocker / "remote"))
    write_outputs(ws, 1)
    snap = v.commit(STAGES, "cycle", tag=TAG)
    assert snap.pushed is False and str(blocker / "remote") in (snap.push_error or "")


def test_a_remote_that_refuses_writes_is_a_failed_push_not_a_crash(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dvc.data_cloud import DataCloud

    def refused(self, *args, **kwargs):  # what a read-only share or a full disk raises
        raise PermissionError(13, "Permission denied", "/mnt/share/dvc-remote/files")

    monkeypatch.setattr(DataCloud, "push", refused)
    write_outputs(ws, 1)
    snap = DvcGitVersioning(ws).commit(STAGES, "cycle", tag=TAG)
    assert snap.pushed is False
    assert "Permission denied: /mnt/share/dvc-remote/files" in (snap.push_error or "")


def test_init_keeps_a_remote_url_with_a_password_out_of_git(tmp_path: Path) -> None:
    from modelcycle.versioning.setup import init_workspace_repo

    root = tmp_path / "ws"
    init_workspace_repo(root, "https://ml:s3cret@dvc.example.com/store")
    assert "s3cret" not in (root / ".dvc/config").read_text()
    assert "s3cret" in (root / ".dvc/config.local").read_text()
    assert remote_in_use(root).describe() == "https://ml:***@dvc.example.com/store"
