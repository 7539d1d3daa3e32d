"""The DVC + git adapter against real git and DVC repositories in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelcycle.errors import VersioningError
from modelcycle.versioning.base import VersionState
from modelcycle.versioning.dvcgit import DvcGitVersioning
from modelcycle.versioning.setup import init_workspace_repo
from modelcycle.versioning.memory import MemoryVersioning

from tests.pipeline_fixture import CACHED, DVC_YAML, OWNED_COMMIT, REPORTS, STAGES, TAG

PARAMS = "window: '2015-01'\ndata: {table: rides}\nsplit: {holdout: 0.2}\nmodel: {kind: lgbm}\nseed: 0\n"


# ---------------------------------------------------------------------------------- helpers

def git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def write_outputs(root: Path, seed: int, size: int = 20_000) -> None:
    """What the lifecycle's steps write: data snapshots, a model folder, reports."""
    rnd = hashlib.sha256(str(seed).encode()).digest()
    blob = (rnd * (size // len(rnd) + 1))[:size]
    for rel in CACHED[:4]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode() + blob)
    model = root / "models/challenger"
    if model.exists():
        shutil.rmtree(model)
    (model / "sub").mkdir(parents=True)
    (model / "model.bin").write_bytes(blob[::-1])
    (model / "MLmodel").write_text(f"seed: {seed}\n")
    (model / "sub" / f"extra-{seed}.txt").write_text(str(seed))
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports/validation.json").write_text(f'{{"rows": {seed}}}')
    (root / "reports/metrics.json").write_text(f'{{"mae": {seed}.5}}')
    (root / "reports/predictions.csv").write_text(f"actual,challenger,champion\n{seed},{seed}.5,\n")


def snapshot_tree(root: Path, rels: list[str]) -> dict[str, bytes | dict[str, bytes] | None]:
    """Exact content of workspace paths (folders as {relpath: bytes})."""
    out: dict[str, bytes | dict[str, bytes] | None] = {}
    for rel in rels:
        p = root / rel
        if p.is_dir():
            out[rel] = {f.relative_to(p).as_posix(): f.read_bytes()
                        for f in sorted(p.rglob("*")) if f.is_file()}
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = None
    return out


ALL_PATHS = ["dvc.yaml", "dvc.lock", "params.yaml", ".gitignore", "data/.gitignore",
             "models/.gitignore", *CACHED, *REPORTS]


def full_picture(root: Path) -> dict[str, object]:
    """Everything restore promises to put back, in comparable form."""
    return {
        "head": git(root, "rev-parse", "-q", "--verify", "HEAD", check=False),
        "symbolic": git(root, "symbolic-ref", "-q", "HEAD", check=False),
        "branch_ref": git(root, "for-each-ref", "refs/heads"),
        "tags": git(root, "tag", "-l"),
        "index": git(root, "ls-files", "-s"),
        "status": git(root, "status", "--porcelain", "--untracked-files=all"),
        "files": snapshot_tree(root, ALL_PATHS),
    }


def dvc_status(root: Path) -> dict:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.status()


def commit_files(root: Path, rev: str = "HEAD") -> set[str]:
    out = git(root, "show", "--name-only", "--format=", rev)
    return set(out.splitlines())


# ---------------------------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global git identity or hooks from the machine: init_workspace_repo must set its own."""
    home = tmp_path_factory.mktemp("home")
    (home / "gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)


def _new_workspace(tmp_path: Path, *, commit_init: bool = True) -> Path:
    root = tmp_path / "ws"
    init_workspace_repo(root, str(tmp_path / "remote"))
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(PARAMS)
    (root / "modelcycle.yaml").write_text("name: taxifare\n")
    (root / "README.md").write_text("# my model\n")
    git(root, "add", ".")
    if commit_init:
        git(root, "commit", "-q", "-m", "init workspace")
    return root


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with one commit (the files `modelcycle init` writes), no outputs yet."""
    return _new_workspace(tmp_path)


@pytest.fixture
def cycled(ws: Path) -> Path:
    """A workspace after one successful cycle (2015-02)."""
    write_outputs(ws, 2)
    DvcGitVersioning(ws).commit(STAGES, "cycle 2015-02", tag="modelcycle/taxifare/2015-02")
    return ws


# ---------------------------------------------------------------------------------- init

def test_init_workspace_repo_creates_git_dvc_remote_identity(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    init_workspace_repo(root, ".modelcycle/dvc-remote")
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(root, "rev-parse", "-q", "--verify", "HEAD", check=False) == ""  # no commit made
    assert (root / ".dvc/config").is_file()
    assert (root / ".modelcycle/dvc-remote").is_dir()
    config = (root / ".dvc/config").read_text()
    assert "analytics = False" in config
    assert "remote = modelcycle" in config
    assert "url = ../.modelcycle/dvc-remote" in config  # inside the workspace: stored relative
    assert git(root, "config", "--local", "user.name") == "modelcycle"
    assert git(root, "config", "--local", "user.email") == "modelcycle@localhost"
    staged = set(git(root, "diff", "--cached", "--name-only").splitlines())
    assert staged == {".dvc/config", ".dvc/.gitignore", ".dvcignore"}
    assert git(root, "diff", "--name-only") == ""  # what dvc init staged is what is on disk

    before = {p: p.read_bytes() for p in (root / ".dvc").glob("config*")}
    init_workspace_repo(root, ".modelcycle/dvc-remote")  # again: changes nothing
    assert {p: p.read_bytes() for p in (root / ".dvc").glob("config*")} == before


def test_init_workspace_repo_keeps_an_existing_identity_and_takes_s3(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    git(root, "init", "-q", "-b", "trunk")
    git(root, "config", "user.name", "Ada")
    git(root, "config", "user.email", "ada@example.org")
    init_workspace_repo(root, "s3://bucket/models")
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/trunk"  # existing repo kept
    assert git(root, "config", "user.name") == "Ada"
    assert "url = s3://bucket/models" in (root / ".dvc/config").read_text()


# ---------------------------------------------------------------------------------- commit

def test_commit_records_outputs_commits_owned_files_tags_and_pushes(ws: Path, tmp_path: Path) -> None:
    v = DvcGitVersioning(ws)
    init_head = v.head()
    write_outputs(ws, 3)
    params = (ws / "params.yaml").read_text().replace("2015-01", "2015-03")
    (ws / "params.yaml").write_text(params)

    snap = v.commit(STAGES, "cycle 2015-03", tag=TAG)

    # one new commit on the branch, tagged, touching only the owned files
    assert snap.commit == v.head() == git(ws, "rev-parse", "HEAD")
    assert git(ws, "rev-parse", "HEAD~1") == init_head
    assert git(ws, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(ws, "rev-parse", f"{TAG}^{{commit}}") == snap.commit
    assert git(ws, "cat-file", "-t", TAG) == "tag"  # annotated
    assert v.tags("modelcycle/") == [TAG]
    touched = commit_files(ws)
    assert touched <= OWNED_COMMIT
    assert {"dvc.lock", "params.yaml", "data/.gitignore", "models/.gitignore"} <= touched
    assert git(ws, "log", "-1", "--format=%s") == "cycle 2015-03"

    # dvc.lock and the cache record the outputs; hashes are DVC's
    lock = (ws / "dvc.lock").read_text()
    assert set(snap.hashes) == set(CACHED) | set(REPORTS)
    for value in snap.hashes.values():
        assert value in lock
    assert snap.hashes == v.hashes(list(snap.hashes))
    assert snap.hashes["models/challenger"].endswith(".dir")
    raw = snap.hashes["data/raw.parquet"]
    assert raw == hashlib.md5((ws / "data/raw.parquet").read_bytes()).hexdigest()
    assert (ws / ".dvc/cache/files/md5" / raw[:2] / raw[2:]).is_file()
    assert "/raw.parquet" in (ws / "data/.gitignore").read_text()

    # the pipeline is up to date: `dvc repro` would do nothing
    assert dvc_status(ws) == {}
    assert git(ws, "status", "--porcelain") == ""  # outputs ignored, owned files committed

    # the remote received every object: the files, the folder listing and its entries
    assert snap.pushed is True
    remote = tmp_path / "remote" / "files" / "md5"
    for rel in CACHED:
        value = snap.hashes[rel]
        assert (remote / value[:2] / value[2:]).is_file(), rel
    for f in (ws / "models/challenger").rglob("*"):
        if f.is_file():
            h = hashlib.md5(f.read_bytes()).hexdigest()
            assert (remote / h[:2] / h[2:]).is_file(), f


def test_dvc_cli_sees_the_pipeline_up_to_date(cycled: Path) -> None:
    dvc = Path(sys.executable).with_name("dvc")
    if not dvc.exists():
        pytest.skip("no dvc executable next to the interpreter")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run([str(dvc), "status"], cwd=cycled, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    proc = subprocess.run([str(dvc), "repro", "--dry"], cwd=cycled, capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Running stage" not in proc.stdout


def test_second_cycle_commits_again_and_first_tag_stays(cycled: Path) -> None:
    v = DvcGitVersioning(cycled)
    first = v.head()
    write_outputs(cycled, 3)
    snap = v.commit(STAGES, "cycle 2015-03", tag=TAG)
    assert git(cycled, "rev-parse", "HEAD~1") == first
    assert v.tags() == ["modelcycle/taxifare/2015-02", TAG]
    assert dvc_status(cycled) == {}
    assert commit_files(cycled) <= OWNED_COMMIT
    assert snap.hashes["models/challenger"] != DvcGitVersioning(cycled).hashes(["x"])["x"]


def test_commit_without_tag_and_without_changes_still_commits(cycled: Path) -> None:
    v = DvcGitVersioning(cycled)
    before = v.head()
    snap = v.commit(STAGES, "nothing new", tag=None)
    assert snap.tag is None and snap.commit != before
    assert git(cycled, "rev-parse", "HEAD~1") == before
    assert commit_files(cycled) == set()


# ---------------------------------------------------------------------------------- rollback

@pytest.mark.parametrize("fail_on", ["never-called", None, "add", "commit", "tag"],
                         ids=["before-dvc-commit", "after-tag", "after-dvc-commit", "after-git-add",
                              "after-git-commit"])
def test_rollback_puts_everything_back_exactly(cycled: Path, fail_on: str | None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's mistakes, not repeated: HEAD reset (no detached checkout), tag deleted,
    dvc.lock / params.yaml / outputs restored byte for byte, at any point of the commit."""
    v = DvcGitVersioning(cycled)
    before = full_picture(cycled)
    before_hashes = v.hashes(CACHED)
    state = v.state()
    assert state.head == before["head"] and state.branch == "refs/heads/main"

    write_outputs(cycled, 3)
    (cycled / "params.yaml").write_text(PARAMS.replace("2015-01", "2015-03"))
    if fail_on == "never-called":
        pass  # the cycle failed after writing its outputs, before act
    elif fail_on is None:
        v.commit(STAGES, "cycle 2015-03", tag=TAG)
        assert v.head() != state.head and TAG in v.tags()
    else:
        import modelcycle.versioning.dvcgit as dvcgit

        real_git = dvcgit._git

        def failing_git(root, *args, **kw):  # type: ignore[no-untyped-def]
            if args and args[0] == fail_on:
                raise VersioningError(f"simulated failure of git {fail_on}")
            return real_git(root, *args, **kw)

        monkeypatch.setattr(dvcgit, "_git", failing_git)
        with pytest.raises(VersioningError, match="simulated"):
            v.commit(STAGES, "cycle 2015-03", tag=TAG)
        monkeypatch.setattr(dvcgit, "_git", real_git)
        assert (cycled / "dvc.lock").read_bytes() != before["files"]["dvc.lock"]  # DVC did commit

    v.restore(state)

    after = full_picture(cycled)
    assert after == before
    assert after["symbolic"] == "refs/heads/main"  # not detached
    assert v.hashes(CACHED) == before_hashes
    assert TAG not in v.tags()
    assert dvc_status(cycled) == {}
    assert v.state() == state

    v.restore(state)  # idempotent
    assert full_picture(cycled) == before


@pytest.mark.parametrize("fail_on", [None, "commit"], ids=["after-tag", "after-git-add"])
def test_rollback_from_a_state_with_only_head_tags_files_outputs(
        cycled: Path, fail_on: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state rebuilt from a journal without ``branch``/``index`` still restores exactly."""
    v = DvcGitVersioning(cycled)
    before = full_picture(cycled)
    full = v.state()
    state = VersionState(head=full.head, tags=full.tags, files=full.files, outputs=full.outputs)
    write_outputs(cycled, 3)
    if fail_on is None:
        v.commit(STAGES, "cycle 2015-03", tag=TAG)
    else:
        import modelcycle.versioning.dvcgit as dvcgit

        real_git = dvcgit._git
        monkeypatch.setattr(dvcgit, "_git", lambda root, *args, **kw: (
            (_ for _ in ()).throw(VersioningError("simulated")) if args[0] == fail_on
            else real_git(root, *args, **kw)))
        with pytest.raises(VersioningError, match="simulated"):
            v.commit(STAGES, "cycle 2015-03", tag=TAG)
        monkeypatch.setattr(dvcgit, "_git", real_git)
    v.restore(state)
    assert full_picture(cycled) == before


def test_rollback_of_first_cycle_after_the_init_commit(ws: Path) -> None:
    v = DvcGitVersioning(ws)
    before = full_picture(ws)
    state = v.state()
    assert state.outputs == dict.fromkeys(CACHED + REPORTS)
    write_outputs(ws, 1)
    v.commit(STAGES, "first cycle", tag=TAG)
    v.restore(state)
    assert full_picture(ws) == before
    for rel in CACHED + REPORTS + ["data/.gitignore", "models/.gitignore", "dvc.lock"]:
        assert not (ws / rel).exists(), rel


def test_rollback_in_a_repository_without_commits(tmp_path: Path) -> None:
    ws = _new_workspace(tmp_path, commit_init=False)  # everything staged, nothing committed
    v = DvcGitVersioning(ws)
    before = full_picture(ws)
    state = v.state()
    assert state.head is None and v.head() is None
    write_outputs(ws, 1)
    snap = v.commit(STAGES, "first cycle", tag=TAG)
    # --only: the user's staged files are not in the cycle's commit, and stay staged; the
    # config the stages read (modelcycle.yaml) is committed as the cycle used it
    assert commit_files(ws, snap.commit) <= OWNED_COMMIT
    assert "README.md" not in commit_files(ws, snap.commit)
    assert "A  README.md" in git(ws, "status", "--porcelain")
    assert "modelcycle.yaml" in commit_files(ws, snap.commit)
    v.restore(state)
    after = full_picture(ws)
    assert after == before
    assert v.head() is None
    assert git(ws, "symbolic-ref", "HEAD") == "refs/heads/main"  # unborn again, not detached
    assert git(ws, "for-each-ref", "refs/heads") == ""
    v.restore(state)
    assert full_picture(ws) == before


def test_restore_brings_back_outputs_that_were_never_committed(cycled: Path) -> None:
    """Dirty outputs at state() time (e.g. a crashed earlier cycle) are saved to the cache."""
    v = DvcGitVersioning(cycled)
    write_outputs(cycled, 7)
    dirty = snapshot_tree(cycled, CACHED + REPORTS)
    state = v.state()
    write_outputs(cycled, 8)
    v.commit(STAGES, "cycle 8", tag=TAG)
    v.restore(state)
    assert snapshot_tree(cycled, CACHED + REPORTS) == dirty


# ---------------------------------------------------------------------------------- user's work

def test_users_unrelated_work_survives_commit_and_restore(cycled: Path) -> None:
    v = DvcGitVersioning(cycled)
    (cycled / "README.md").write_text("# my model\n# staged edit\n")
    git(cycled, "add", "README.md")
    (cycled / "README.md").write_text("# my model\n# staged edit\n# and unstaged\n")
    (cycled / "notes.txt").write_text("untracked\n")
    (cycled / "data" / "scratch.csv").write_text("a,b\n")  # untracked, next to outputs
    user_files = ["README.md", "notes.txt", "data/scratch.csv"]
    user_bytes = snapshot_tree(cycled, user_files)
    status = git(cycled, "status", "--porcelain", "--untracked-files=all")
    staged_blob = git(cycled, "ls-files", "-s", "README.md")

    state = v.state()
    write_outputs(cycled, 3)
    snap = v.commit(STAGES, "cycle 2015-03", tag=TAG)
    assert commit_files(cycled, snap.commit) <= OWNED_COMMIT
    assert not set(user_files) & commit_files(cycled, snap.commit)
    assert git(cycled, "status", "--porcelain", "--untracked-files=all") == status
    assert git(cycled, "ls-files", "-s", "README.md") == staged_blob
    assert snapshot_tree(cycled, user_files) == user_bytes

    v.restore(state)
    assert git(cycled, "status", "--porcelain", "--untracked-files=all") == status
    assert git(cycled, "ls-files", "-s", "README.md") == staged_blob
    assert snapshot_tree(cycled, user_files) == user_bytes


def test_the_config_a_cycle_used_is_committed_with_it_and_restored_on_rollback(cycled: Path) -> None:
    """dvc.lock records modelcycle.yaml's hash: the tag must hold the config the cycle read, or
    it does not reproduce. A rollback puts the user's staged and unstaged edits back as they were."""
    v = DvcGitVersioning(cycled)
    (cycled / "modelcycle.yaml").write_text("name: taxifare\n# staged edit\n")
    git(cycled, "add", "modelcycle.yaml")
    used = "name: taxifare\n# staged edit\n# and unstaged\n"
    (cycled / "modelcycle.yaml").write_text(used)
    status = git(cycled, "status", "--porcelain", "--untracked-files=all")
    staged_blob = git(cycled, "ls-files", "-s", "modelcycle.yaml")

    state = v.state()
    assert state.dirty == ("modelcycle.yaml",)
    write_outputs(cycled, 3)
    snap = v.commit(STAGES, "cycle 2015-03", tag=TAG)
    assert git(cycled, "show", f"{TAG}:modelcycle.yaml") == used.strip()
    assert "modelcycle.yaml" not in git(cycled, "status", "--porcelain")  # clean: committed as used
    assert snap.commit == git(cycled, "rev-parse", "HEAD")

    v.restore(state)
    assert git(cycled, "status", "--porcelain", "--untracked-files=all") == status
    assert git(cycled, "ls-files", "-s", "modelcycle.yaml") == staged_blob
    assert (cycled / "modelcycle.yaml").read_text() == used


# ---------------------------------------------------------------------------------- errors

def test_existing_tag_is_an_error_before_any_side_effect(cycled: Path) -> None:
    v = DvcGitVersioning(cycled)
    before = full_picture(cycled)
    write_outputs(cycled, 3)
    lock = (cycled / "dvc.lock").read_bytes()
    with pytest.raises(VersioningError, match="already exists") as err:
        v.commit(STAGES, "again", tag="modelcycle/taxifare/2015-02")
    assert "git tag -d" in (err.value.hint or "")
    assert v.head() == before["head"]
    assert (cycled / "dvc.lock").read_bytes() == lock


@pytest.mark.parametrize("tag", ["bad tag", "ends/", "a..b"])
def test_invalid_tag_name_is_an_error(cycled: Path, tag: str) -> None:
    with pytest.raises(VersioningError, match="check-ref-format"):
        DvcGitVersioning(cycled).commit(STAGES, "x", tag=tag)


def test_not_a_repository_is_a_helpful_error(tmp_path: Path) -> None:
    v = DvcGitVersioning(tmp_path)
    with pytest.raises(VersioningError) as err:
        v.state()
    assert "git" in err.value.message and err.value.hint
    git(tmp_path, "init", "-q")
    with pytest.raises(VersioningError, match="not a DVC repository") as err:
        v.state()
    assert "modelcycle init" in (err.value.hint or "")


def test_broken_dvc_yaml_is_a_helpful_error(ws: Path) -> None:
    (ws / "dvc.yaml").write_text("stages:\n  fetch: {cmd: [unclosed\n")
    with pytest.raises(VersioningError) as err:
        DvcGitVersioning(ws).state()
    assert "dvc.yaml" in str(err.value)
    assert err.value.__cause__ is not None  # the DVC error is chained, not raised


def test_missing_output_and_unknown_stage_are_helpful_errors(ws: Path) -> None:
    v = DvcGitVersioning(ws)
    with pytest.raises(VersioningError, match="no stage 'trian'"):
        v.commit(["trian"], "x")
    write_outputs(ws, 1)
    shutil.rmtree(ws / "models/challenger")
    state = v.state()
    with pytest.raises(VersioningError, match="models/challenger") as err:
        v.commit(STAGES, "x", tag=TAG)
    assert "did not run" in (err.value.hint or "")
    v.restore(state)
    assert TAG not in v.tags() and not (ws / "dvc.lock").exists()


def edit_dvc_config(root: Path, fn) -> None:  # type: ignore[no-untyped-def]
    from dvc.repo import Repo

    with Repo(str(root)) as repo, repo.config.edit() as conf:
        fn(conf)


def test_push_failure_is_reported_not_raised(ws: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the remote folder should be")
    edit_dvc_config(ws, lambda conf: conf["remote"]["modelcycle"].update(url=str(blocker)))
    write_outputs(ws, 1)
    snap = DvcGitVersioning(ws).commit(STAGES, "x", tag=TAG)
    assert snap.pushed is False
    assert TAG in DvcGitVersioning(ws).tags()  # the caller decides (versioning.push)
    assert f"could not be pushed to the DVC remote {blocker}" in (snap.push_error or "")


def test_no_remote_means_not_pushed(ws: Path) -> None:
    edit_dvc_config(ws, lambda conf: conf["core"].pop("remote"))
    write_outputs(ws, 1)
    assert DvcGitVersioning(ws).commit(STAGES, "x").pushed is False


def test_restore_reports_what_it_could_not_do_but_does_the_rest(cycled: Path) -> None:
    v = DvcGitVersioning(cycled)
    state = v.state()
    bogus = VersionState(head=state.head, tags=state.tags, files=state.files,
                         outputs={**state.outputs, "data/raw.parquet": "0" * 32},
                         branch=state.branch, index=state.index)
    write_outputs(cycled, 4)
    v.commit(STAGES, "c", tag=TAG)
    with pytest.raises(VersioningError, match="data/raw.parquet") as err:
        v.restore(bogus)
    assert "dvc pull" in (err.value.hint or "")
    assert TAG not in v.tags() and v.head() == state.head  # the rest was restored
    assert v.hashes(["data/clean.parquet"]) == {"data/clean.parquet": state.outputs["data/clean.parquet"]}


# ---------------------------------------------------------------------------------- the fake agrees

def test_prewarm_imports_dvc_in_the_background() -> None:
    """In a fresh process: what a cycle's first state, commit and partition write import is
    absent before the prewarm and present after it."""
    wanted = ["dvc.repo", "dvc.scm", "dvc.lock", "ruamel.yaml", "pyarrow.parquet"]
    code = ("import json, sys\n"
            "from modelcycle.versioning.setup import prewarm\n"
            f"wanted = {wanted!r}\n"
            "before = [m for m in wanted if m in sys.modules]\n"
            "thread = prewarm()\n"
            "thread.join(timeout=120)\n"
            "print(json.dumps([before, thread.is_alive(), [m for m in wanted if m in sys.modules]]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, alive, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert before == [] and not alive and after == wanted


def test_fake_computes_the_same_hashes_as_dvc(cycled: Path) -> None:
    paths = CACHED + REPORTS + ["missing.bin"]
    assert MemoryVersioning(cycled).hashes(paths) == DvcGitVersioning(cycled).hashes(paths)


# ---------------------------------------------------------------------------------- timings

def test_timings_with_5mb_of_outputs(cycled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Measure state / commit / restore on ~5 MB of parquet + model (printed with -s)."""
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    v = DvcGitVersioning(cycled)
    v.state()  # warm imports
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20_000, 8)), columns=list("abcdefgh"))
    t0 = time.perf_counter()
    state = v.state()
    t1 = time.perf_counter()
    frame.to_parquet(cycled / "data/raw.parquet")
    frame.to_parquet(cycled / "data/clean.parquet")
    frame.iloc[:4_000].to_parquet(cycled / "data/holdout.parquet")
    frame.iloc[4_000:].to_parquet(cycled / "data/train.parquet")
    (cycled / "models/challenger/model.bin").write_bytes(rng.bytes(1_000_000))
    size = sum(f.stat().st_size for rel in CACHED for f in
               ([cycled / rel] if (cycled / rel).is_file() else (cycled / rel).rglob("*")) if f.is_file())
    t2 = time.perf_counter()
    v.commit(STAGES, "timed", tag=TAG)
    t3 = time.perf_counter()
    v.restore(state)
    t4 = time.perf_counter()
    with capsys.disabled():
        print(f"\n[versioning timings, {size / 1e6:.1f} MB of outputs] state {t1 - t0:.3f}s  "
              f"commit {t3 - t2:.3f}s  restore {t4 - t3:.3f}s")
    assert size > 4e6
    # generous bounds: catch a regression by an order of magnitude, not a slow CI machine
    assert t1 - t0 < 3 and t3 - t2 < 6 and t4 - t3 < 4
