"""The real versioning adapter: DVC's Python API in-process, plain ``git`` subprocesses.

One :class:`DvcGitVersioning` per workspace. Every git call's exit status is checked and every
DVC call runs inside :meth:`DvcGitVersioning._dvc`, so what escapes is a
:class:`~modelcycle.errors.VersioningError` naming the command or file and what to do next,
never a ``DvcException``, ``CalledProcessError`` or scmrepo error.

What a cycle owns (and :meth:`DvcGitVersioning.restore` puts back byte for byte):

* ``dvc.yaml``, ``dvc.lock``, ``params.yaml`` (and any other params file a stage reads),
  the root ``.gitignore`` and the ``.gitignore`` next to every cached output (DVC writes
  those), and every output with ``cache: false`` (metrics/reports; git tracks those);
* the cached stage outputs in the workspace (restored from the DVC cache; :meth:`state`
  makes sure their current content is in the cache first);
* HEAD (moved back with ``git reset --soft``, or the branch made unborn again), the tags
  created since, and the git index entries of the owned files.

Nothing else of the user's is read, staged, committed or restored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle import tracepoints
from modelcycle.errors import VersioningError, disk_cause
from modelcycle.versioning import tracked as source_files
from modelcycle.versioning.base import PROJECT_FILE, Snapshot, VersionState, pick_stages

if TYPE_CHECKING:
    from dvc.repo import Repo

log = logging.getLogger(__name__)

LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"
GITIGNORE = ".gitignore"
REMOTE_NAME = "modelcycle"
_ZERO_SHA = "0" * 40
# Variables that would point git somewhere other than the workspace (set inside git hooks).
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY",
                 "GIT_COMMON_DIR", "GIT_NAMESPACE")


# --------------------------------------------------------------------------------------------
# git
# --------------------------------------------------------------------------------------------

def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env["LC_ALL"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_EDITOR", "true")
    return env


def _git(root: str | os.PathLike[str], *args: str, input: bytes | None = None,
         ok: Sequence[int] = (0,), hint: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``git <args>`` in ``root``; a return code outside ``ok`` is a VersioningError."""
    try:
        proc = subprocess.run(["git", *args], cwd=os.fspath(root), input=input,
                              capture_output=True, env=_git_env(), check=False)
    except FileNotFoundError as exc:
        raise VersioningError(
            "git is not installed or not on PATH",
            "install git (https://git-scm.com) and make sure `git --version` works",
        ) from exc
    except OSError as exc:  # e.g. the workspace folder does not exist
        raise VersioningError(f"could not run `git {' '.join(args)}` in {root}: {exc}",
                              hint or "check that the workspace folder exists") from exc
    if proc.returncode not in ok:
        err = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise VersioningError(
            f"`git {_show_args(args)}` failed in {root} (exit {proc.returncode}): "
            f"{err or 'no message'}",
            hint or "run the same command in the workspace to see the problem, "
                    "fix it (see `git status`) and run the cycle again",
        )
    return proc


def _show_args(args: Sequence[str]) -> str:
    shown = " ".join(args)
    return shown if len(shown) <= 200 else shown[:200] + " ..."


def _out(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode(errors="surrogateescape").strip()


# --------------------------------------------------------------------------------------------
# DVC
# --------------------------------------------------------------------------------------------

_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved = logging.NOTSET


@contextmanager
def _quiet_dvc() -> Iterator[None]:
    """Silence DVC's info-level chatter (``Initialized DVC repository.`` ...) during calls.

    Depth-counted under a lock, so overlapping calls from several threads put the level back
    once, when the last one ends.
    """
    global _quiet_depth, _quiet_saved
    import dvc.logger  # noqa: F401 - importing dvc sets its logger's level; set ours after

    dvc_logger = logging.getLogger("dvc")
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = dvc_logger.level
            if _quiet_saved < logging.WARNING:
                dvc_logger.setLevel(logging.WARNING)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                dvc_logger.setLevel(_quiet_saved)


def _translate(exc: BaseException, what: str, root: str) -> VersioningError:
    """One DVC/scmrepo/OS error -> one VersioningError with a next step."""
    name = type(exc).__name__
    text = str(exc).strip() or name
    hint = f"run `dvc status` in {root} to see the problem, fix it and run the cycle again"
    if name == "NotDvcRepoError":
        return VersioningError(
            f"{root} is not a DVC repository ({what})",
            "create the workspace with `modelcycle init`, or run `dvc init` in it")
    if name in {"LockError"} or "Unable to acquire lock" in text:
        return VersioningError(
            f"DVC {what} failed: another DVC command holds the lock of {root} ({text})",
            "wait for the other `dvc` command (or modelcycle run) to finish; if none is running, "
            "delete .dvc/tmp/lock and try again")
    if name in {"OutputDoesNotExistError", "StageCommitError", "MissingDataSource"}:
        hint = "the step that writes this output did not run or failed; run the cycle again"
    elif name == "OutputAlreadyTrackedError":
        hint = ("the output is committed to git; `git rm -r --cached <path>` and commit, "
                "so DVC can track it")
    elif name in {"YAMLFileCorruptedError", "YAMLSyntaxError", "StageFileFormatError",
                  "ParseError", "ResolveError"}:
        hint = "fix dvc.yaml / dvc.lock / params.yaml (or restore it with `git checkout -- <file>`)"
    elif name in {"CheckoutError", "FileNotFoundError"}:
        hint = "the data is not in the DVC cache; `dvc pull` it from the remote and try again"
    return VersioningError(f"DVC {what} failed in {root}: {name}: {text}", hint)


@dataclass(frozen=True)
class _Out:
    """A stage output as the adapter needs it."""

    path: str  # relative to the root, posix
    cached: bool
    stage: str


def _rel(root: str, path: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


# --------------------------------------------------------------------------------------------
# the adapter
# --------------------------------------------------------------------------------------------

class DvcGitVersioning:
    """:class:`~modelcycle.versioning.base.Versioning` on a git + DVC workspace at ``root``.

    A DVC ``Repo`` is opened per call (50-70 ms with its state db) and held under DVC's lock
    for the call, so nothing is stale between calls and a concurrent ``dvc`` command is told to
    wait. DVC itself is imported on first use (1.2-2 s cold); :func:`prewarm` does that in the
    background while the cycle's first steps run.
    """

    def __init__(self, root: str | os.PathLike[str], *, tag_prefix: str = "modelcycle/") -> None:
        self.root = str(Path(root).resolve())
        self.tag_prefix = tag_prefix

    def __repr__(self) -> str:
        return f"DvcGitVersioning({self.root!r})"

    # -- small git queries ------------------------------------------------------------------

    def head(self) -> str | None:
        """The commit HEAD points at, or None if the current branch has no commits yet."""
        proc = _git(self.root, "rev-parse", "-q", "--verify", "HEAD^{commit}", ok=(0, 1),
                    hint=f"{self.root} must be a git repository; create it with `modelcycle init`")
        if proc.returncode == 1:
            # Unborn branch -- or not a repository at all (rev-parse says so with 128, but be sure).
            _git(self.root, "rev-parse", "--git-dir",
                 hint=f"{self.root} must be a git repository; create it with `modelcycle init`")
            return None
        return _out(proc)

    def branch(self) -> str | None:
        proc = _git(self.root, "symbolic-ref", "-q", "HEAD", ok=(0, 1))
        return _out(proc) if proc.returncode == 0 else None

    def tags(self, prefix: str = "") -> list[str]:
        pattern = "refs/tags/"
        proc = _git(self.root, "for-each-ref", "--format=%(refname)", pattern)
        names = [line[len(pattern):] for line in _out(proc).splitlines() if line]
        return sorted(n for n in names if n.startswith(prefix))

    def _index_entries(self, paths: Sequence[str]) -> dict[str, str]:
        if not paths:
            return {}
        proc = _git(self.root, "ls-files", "-s", "-z", "--", *paths)
        entries: dict[str, str] = {}
        for record in proc.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, sha, stage = meta.decode().split(" ")
            if stage == "0":
                entries[name.decode(errors="surrogateescape")] = f"{mode} {sha}"
        return entries

    def _tree_entries(self, commit: str | None, paths: Sequence[str]) -> dict[str, str | None]:
        """``{path: "<mode> <blob>" or None}`` of ``paths`` in ``commit`` (all None if no commit)."""
        entries: dict[str, str | None] = dict.fromkeys(paths)
        if commit is None or not paths:
            return entries
        proc = _git(self.root, "ls-tree", "-r", "-z", commit, "--", *paths)
        for record in proc.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, _type, sha = meta.decode().split(" ")
            entries[name.decode(errors="surrogateescape")] = f"{mode} {sha}"
        return entries

    # -- DVC access ---------------------------------------------------------------------------

    @contextmanager
    def _dvc(self, what: str) -> Iterator[Repo]:
        """Open the DVC repo, take its lock, translate every error raised inside."""
        try:
            with _quiet_dvc():
                from dvc.repo import Repo, lock_repo

                repo = Repo(self.root, uninitialized=False)
                try:
                    with lock_repo(repo):
                        yield repo
                finally:
                    repo.close()
        except VersioningError:
            raise
        except Exception as exc:
            disk = disk_cause(exc)
            if disk is not None:  # a full or read-only disk: said as such, with the file, by the CLI
                raise disk from exc
            raise _translate(exc, what, self.root) from exc

    def _stages(self, repo: Repo) -> list[Any]:
        if not os.path.exists(os.path.join(self.root, PROJECT_FILE)):
            return []
        return list(repo.stage.load_file(os.path.join(self.root, PROJECT_FILE)))

    def _outs(self, stages: Sequence[Any]) -> list[_Out]:
        return [_Out(_rel(self.root, out.fs_path), bool(out.use_cache), stage.name)
                for stage in stages for out in stage.outs if out.is_in_repo]

    def _params_files(self, stages: Sequence[Any]) -> list[str]:
        from dvc.dependency.param import ParamsDependency

        files = {PARAMS_FILE}
        for stage in stages:
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    files.add(_rel(self.root, dep.fs_path))
        return sorted(files)

    def _owned_files(self, stages: Sequence[Any], outs: Sequence[_Out]) -> list[str]:
        """The files a cycle rewrites: dvc.yaml, dvc.lock, the params files, the ``.gitignore``
        beside each cached output, and the ``cache: false`` outputs."""
        owned = {PROJECT_FILE, LOCK_FILE, *self._params_files(stages)}
        for out in outs:
            if out.cached:
                owned.add(_posix_join(_posix_dirname(out.path), GITIGNORE))
            else:
                owned.add(out.path)
        return sorted(owned)

    def _config_deps(self, stages: Sequence[Any], outs: Sequence[_Out]) -> list[str]:
        """The files the stages read that no stage writes (``modelcycle.yaml``, a feature
        module...): the cycle commits them as they were when it ran, so its tag reproduces
        (``dvc.lock`` records their hashes). It never rewrites them."""
        from dvc.dependency.param import ParamsDependency

        produced = {o.path for o in outs}
        found: set[str] = set()
        for stage in stages:
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency) or not dep.is_in_repo:
                    continue
                rel = _rel(self.root, dep.fs_path)
                if rel not in produced and os.path.isfile(os.path.join(self.root, rel)):
                    found.add(rel)
        return sorted(found)

    def _hash(self, repo: Repo, rel: str, *, to_cache: bool = False) -> str | None:
        """DVC's md5 of a workspace path (``<md5>.dir`` for folders), None if absent.

        With ``to_cache`` the content is also put into the DVC cache (objects already there are
        skipped), so that :meth:`restore` can bring it back.
        """
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.transfer import transfer

        path = os.path.join(self.root, rel)
        if not os.path.lexists(path):
            return None
        odb = repo.cache.repo
        staging, _meta, obj = build(odb, path, repo.fs, "md5", ignore=repo.dvcignore,
                                    dry_run=not to_cache)
        if to_cache:
            transfer(staging, odb, {obj.hash_info}, shallow=False, hardlink=False)
        return str(obj.hash_info.value)

    # -- the interface ------------------------------------------------------------------------

    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        with self._dvc("hashing") as repo:
            return {p: self._hash(repo, _rel(self.root, os.path.join(self.root, p))) for p in paths}

    def state(self, tracked: Sequence[str] = ()) -> VersionState:
        head = self.head()
        branch = self.branch()
        tags = frozenset(self.tags())
        with self._dvc("state capture") as repo:
            stages = self._stages(repo)
            outs = self._outs(stages)
            owned = sorted({*self._owned_files(stages, outs), *source_files.owned_files(tracked)})
            deps = self._config_deps(stages, outs)
            files = {p: _read(self.root, p) for p in owned}
            outputs = {o.path: self._hash(repo, o.path, to_cache=o.cached) for o in outs}
            outputs.update({p: self._hash(repo, p, to_cache=True) for p in tracked})
        index: dict[str, str | None] = dict.fromkeys([*owned, *deps])
        index.update(self._index_entries([*owned, *deps]))
        return VersionState(head=head, tags=tags, files=files, outputs=outputs, branch=branch,
                            index=index, dirty=tuple(self._dirty([*owned, *deps])))

    def _dirty(self, paths: Sequence[str]) -> list[str]:
        """Those of ``paths`` that differ from HEAD (staged, unstaged or untracked)."""
        if not paths:
            return []
        proc = _git(self.root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths)
        found = []
        for record in proc.stdout.split(b"\0"):
            if len(record) > 3 and record[2:3] == b" ":
                found.append(record[3:].decode(errors="surrogateescape"))
        return sorted(p for p in found if p in paths)

    def commit(self, stages: list[str], message: str, tag: str | None = None, *,
               tracked: Sequence[str] = ()) -> Snapshot:
        if not stages:
            raise VersioningError("nothing to commit: no stages named",
                                  "pass the dvc.yaml stages whose outputs the cycle wrote")
        if tag is not None:
            self._check_new_tag(tag)
        with self._dvc("commit") as repo:
            committed = pick_stages({s.name: s for s in self._stages(repo)}, stages, self.root)
            self._dvc_commit(committed)
            hashes = {_rel(self.root, o.fs_path): str(o.hash_info.value)
                      for s in committed for o in s.outs if o.is_in_repo and o.hash_info}
            objects = self._objects(repo, [o.hash_info for s in committed for o in s.outs
                                           if o.is_in_repo and o.use_cache and o.hash_info])
            added = self._add(repo, tracked)
            hashes.update({p: str(hi.value) for p, hi in added.items()})
            objects += self._objects(repo, list(added.values()))
            outs = self._outs(committed)
            paths = [*self._owned_files(committed, outs), *self._config_deps(committed, outs),
                     *source_files.owned_files(tracked)]
            remote = repo.config["core"].get("remote")
        tracepoints.reach("versioning:dvc-committed")

        paths = self._stageable(paths)
        _git(self.root, "add", "-A", "--", *paths,
             hint="check the files named above (permissions, .gitignore) and run the cycle again")
        _git(self.root, "commit", "-q", "--no-verify", "--allow-empty", "-m", message, "--", *paths,
             hint="check `git status`; a commit needs a git identity (`git config user.name`)")
        commit = self.head()
        if commit is None:
            raise VersioningError(f"`git commit` in {self.root} reported success but HEAD has no "
                                  "commit", "check `git status` and `git log` in the workspace")
        tracepoints.reach("versioning:git-committed")
        if tag is not None:
            _git(self.root, "tag", "-a", "-m", message, tag, commit,
                 hint=f"check the tag name {tag!r} (`git check-ref-format`)")
            tracepoints.reach("versioning:tagged")

        pushed = False
        if remote:
            pushed = self._push(stages, objects, remote, tracked)
            tracepoints.reach("versioning:pushed")
        return Snapshot(commit=commit, tag=tag, hashes=hashes, pushed=pushed)

    def restore(self, state: VersionState) -> None:
        problems: list[str] = []
        hints: list[str] = []

        def attempt(what: str, fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except VersioningError as exc:
                problems.append(f"{what}: {exc.message}")
                if exc.hint:
                    hints.append(exc.hint)

        attempt("tags", self._restore_tags, state)
        attempt("HEAD", self._restore_head, state)
        attempt("files", self._restore_files, state)
        attempt("outputs", self._restore_outputs, state)
        if problems:
            raise VersioningError(
                f"could not put {self.root} fully back: " + "; ".join(problems),
                "; ".join([*hints, "then run the restore again (it is safe to repeat); "
                           "`git status` and `dvc status` show what is left"]))

    def clear_stale_locks(self) -> list[str]:
        """Remove ``index.lock``, ``HEAD.lock``, ``packed-refs.lock`` and ref locks left by a
        git that was killed, if no git process works in this workspace and they are older than
        a few seconds (a live git holds its lock for milliseconds)."""
        import time

        import psutil

        git_dir = Path(_out(_git(self.root, "rev-parse", "--absolute-git-dir")))
        found = [p for p in (git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / "packed-refs.lock")
                 if p.exists()]
        refs = git_dir / "refs"
        if refs.is_dir():
            found += list(refs.rglob("*.lock"))
        found = [p for p in found if time.time() - p.stat().st_mtime > 5]
        if not found:
            return []
        for proc in psutil.process_iter(["name", "cwd"]):
            try:
                if (proc.info["name"] or "").startswith("git") and proc.info["cwd"] == self.root:
                    return []  # a git is still at work here
            except (psutil.Error, KeyError):
                continue
        removed = []
        for path in found:
            try:
                path.unlink()
                removed.append(str(path.relative_to(Path(self.root))) if path.is_relative_to(self.root) else str(path))
            except OSError:
                continue
        return removed

    def missing_data(self) -> dict[str, list[str]]:
        """The outputs ``dvc.lock`` records whose content is missing from the DVC cache
        (``"cache"``) and from the default remote (``"remote"``; empty without a remote)."""
        missing: dict[str, list[str]] = {"cache": [], "remote": []}
        with self._dvc("data check") as repo:
            odb = repo.cache.repo
            name = repo.config["core"].get("remote")
            remote = None
            if name:
                conf = repo.config["remote"].get(name, {})
                if not (conf.get("version_aware") or conf.get("worktree")):
                    remote = repo.cloud.get_remote_odb(name)
            for stage in self._stages(repo):
                for out in stage.outs:
                    if not (out.is_in_repo and out.use_cache and out.hash_info and out.hash_info.value):
                        continue
                    rel = _rel(self.root, out.fs_path)
                    oids = self._oids(repo, out.hash_info, [odb, remote])
                    if any(not odb.exists(oid) for oid in oids):
                        missing["cache"].append(rel)
                    if remote is not None and any(not remote.exists(oid) for oid in oids):
                        missing["remote"].append(rel)
        return missing

    @staticmethod
    def _oids(repo: Repo, hash_info: Any, dbs: Sequence[Any]) -> list[str]:
        """The object ids behind an output: a folder's listing (read from whichever database
        has it) and its files, or the file's own id."""
        from dvc_data.hashfile import load

        oids = [str(hash_info.value)]
        if hash_info.isdir:
            for db in dbs:
                if db is None:
                    continue
                try:
                    tree = load(db, hash_info)
                except Exception:  # noqa: BLE001 - this database lacks the listing too
                    continue
                oids.extend(str(oid.value) for _key, _meta, oid in _listing(tree))
                break
        return oids

    # -- commit helpers -----------------------------------------------------------------------

    def _add(self, repo: Repo, tracked: Sequence[str]) -> dict[str, Any]:
        """``dvc add`` the ``tracked`` paths (see :mod:`modelcycle.versioning.tracked`): their
        content into the cache, a ``.dvc`` file and a ``.gitignore`` entry each; their hashes."""
        if not tracked:
            return {}
        added = repo.add([os.path.join(self.root, p) for p in tracked])
        return {_rel(self.root, out.fs_path): out.hash_info for stage in added for out in stage.outs}

    @staticmethod
    def _dvc_commit(stages: Sequence[Any]) -> None:
        """``dvc commit --force`` of ``stages``, in one pass and one write of dvc.lock.

        This is the loop of ``Repo.commit`` without its run-cache entry: DVC's run cache builds
        a stage from the cwd-relative path ``dvc.yaml`` and fails unless the process's current
        directory is the workspace (we never ``chdir``: the lifecycle is multi-threaded).
        ``relink=False``: the workspace files already are the outputs; re-linking only costs time.
        ``Output.save`` also writes the outputs' ``.gitignore`` entries (as ``dvc commit`` does).
        """
        for stage in stages:
            stage.save(allow_missing=False, run_cache=False)
            stage.commit(allow_missing=False, relink=False)
        by_file: dict[str, list[Any]] = {}
        for stage in stages:
            by_file.setdefault(stage.dvcfile.path, []).append(stage)
        for group in by_file.values():
            group[0].dvcfile.dump_stages(group, update_pipeline=False)

    def _check_new_tag(self, tag: str) -> None:
        _git(self.root, "check-ref-format", f"refs/tags/{tag}",
             hint="use letters, digits, '-', '_', '.' and '/' in the tag name")
        proc = _git(self.root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}", ok=(0, 1))
        if proc.returncode == 0:
            raise VersioningError(
                f"tag {tag!r} already exists in {self.root} (at {_out(proc)[:12]})",
                "a cycle's tag is never overwritten: use another tag name, or delete the old one "
                f"with `git tag -d {tag}` if it is a leftover")

    def _stageable(self, paths: Sequence[str]) -> list[str]:
        """Paths git can stage: existing and not ignored, or already in the index."""
        tracked = set(self._index_entries(paths))
        present = [p for p in paths if p in tracked or os.path.lexists(os.path.join(self.root, p))]
        candidates = [p for p in present if p not in tracked]
        ignored: set[str] = set()
        if candidates:
            proc = _git(self.root, "check-ignore", "-z", "--stdin", ok=(0, 1),
                        input=b"".join(p.encode() + b"\0" for p in candidates))
            ignored = {p.decode() for p in proc.stdout.split(b"\0") if p}
        return [p for p in present if p not in ignored]

    @staticmethod
    def _objects(repo: Repo, hash_infos: Sequence[Any]) -> list[Any]:
        """The cache objects behind outputs: a folder's listing (``.dir``) and its files."""
        from dvc_data.hashfile import load

        objects = []
        for hi in hash_infos:
            objects.append(hi)
            if hi.isdir:
                tree = load(repo.cache.repo, hi)
                objects.extend(oid for _key, _meta, oid in _listing(tree))
        return objects

    def _push(self, stages: Sequence[str], objects: Sequence[Any], remote: str,
              tracked: Sequence[str] = ()) -> bool:
        """Push the committed outputs' cache objects to the default remote; never raises.

        A content-addressed remote gets exactly the committed objects (``DataCloud.push``, what
        ``dvc push`` sends for these outputs, without re-reading dvc.yaml once per stage); a
        cloud-versioned (``version_aware`` / ``worktree``) remote goes through ``Repo.push``,
        which also records the object versions in dvc.lock.
        """
        dvcyaml = os.path.join(self.root, PROJECT_FILE)
        try:
            with self._dvc(f"push to remote {remote!r}") as repo:
                conf = repo.config["remote"].get(remote, {})
                if conf.get("version_aware") or conf.get("worktree"):
                    repo.push(targets=[*(f"{dvcyaml}:{s}" for s in stages),
                                       *(os.path.join(self.root, source_files.dvc_file(p)) for p in tracked)],
                              remote=remote)
                else:
                    result = repo.cloud.push(objects, remote=remote)
                    if result.failed:
                        raise VersioningError(f"{len(result.failed)} object(s) failed to upload")
            return True
        except VersioningError as exc:
            log.warning("the data and model were committed but not pushed to the DVC remote %r: %s "
                        "(run `dvc push` in %s later)", remote, exc.message, self.root)
            return False

    # -- restore helpers ----------------------------------------------------------------------

    def _restore_tags(self, state: VersionState) -> None:
        extra = [t for t in self.tags() if t not in state.tags]
        if extra:
            _git(self.root, "tag", "-d", *extra)

    def _restore_head(self, state: VersionState) -> None:
        current = self.head()
        if current == state.head:
            return
        if state.head is None:
            # The repository had no commit: make the branch unborn again.
            branch = state.branch or self.branch()
            if branch is None:
                raise VersioningError(
                    "HEAD is detached and the state had no commit; cannot make a branch unborn",
                    "check out the branch the cycle ran on and run the restore again")
            _git(self.root, "update-ref", "-d", branch)
            if self.branch() != branch:
                _git(self.root, "symbolic-ref", "HEAD", branch)
            return
        _git(self.root, "cat-file", "-e", f"{state.head}^{{commit}}",
             hint="the commit to go back to is gone; check `git reflog`")
        if state.branch and self.branch() != state.branch:
            # HEAD moved to another branch meanwhile: move the cycle's branch, leave HEAD alone.
            _git(self.root, "update-ref", state.branch, state.head)
            return
        # --soft: move the branch (or a detached HEAD) only; the index and the user's files stay.
        _git(self.root, "reset", "-q", "--soft", state.head)

    def _restore_files(self, state: VersionState) -> None:
        for rel, data in state.files.items():
            path = os.path.join(self.root, rel)
            if data is None:
                if os.path.isdir(path) and not os.path.islink(path):
                    continue  # never remove a folder in place of a file that did not exist
                _remove(path)
            elif _read(self.root, rel) != data:
                _write_atomic(path, data)
        # A state without index entries (e.g. rebuilt from a journal that kept only head, tags,
        # files and outputs): the owned files' entries go back to what the old HEAD has.
        index = state.index or self._tree_entries(state.head, list(state.files))
        if not index:
            return
        current = self._index_entries(list(index))
        lines = []
        for rel, entry in index.items():
            if current.get(rel) == entry:
                continue
            if entry is None:
                lines.append(f"0 {_ZERO_SHA}\t{rel}")
            else:
                lines.append(f"{entry}\t{rel}")
        if lines:
            _git(self.root, "update-index", "-z", "--index-info",
                 input="".join(line + "\0" for line in lines).encode())
            # Refresh the stat data of the rewritten entries so `git status` is quick and clean.
            _git(self.root, "update-index", "-q", "--refresh", ok=(0, 1))

    def _restore_outputs(self, state: VersionState) -> None:
        todo = {p: h for p, h in state.outputs.items() if p not in state.files}
        if not todo:
            return
        failed: list[str] = []
        with self._dvc("restore of outputs") as repo:
            for rel, old in todo.items():
                path = os.path.join(self.root, rel)
                if self._hash(repo, rel) == old:
                    continue
                if old is None:
                    _remove(path)
                    continue
                try:
                    self._checkout(repo, path, old)
                except Exception as exc:
                    log.debug("checkout of %s failed", rel, exc_info=True)
                    failed.append(f"{rel} ({type(exc).__name__}: {exc})")
        if failed:
            raise VersioningError(
                f"could not bring back {', '.join(failed)} from the DVC cache",
                "`dvc pull` the missing data (or `dvc checkout`) and run the restore again")

    def _checkout(self, repo: Repo, path: str, hash_value: str) -> None:
        from dvc_data.hashfile import load
        from dvc_data.hashfile.checkout import checkout
        from dvc_data.hashfile.hash_info import HashInfo

        odb = repo.cache.repo
        obj = load(odb, HashInfo("md5", hash_value))
        is_dir = hash_value.endswith(".dir")
        if os.path.lexists(path) and (os.path.isdir(path) and not os.path.islink(path)) != is_dir:
            _remove(path)  # a file where a folder was, or the other way round
        checkout(path, repo.fs, obj, odb, force=True, relink=False, state=repo.state,
                 ignore=repo.dvcignore)


def prewarm() -> threading.Thread:
    """Import DVC in a daemon thread, so the first versioning call does not wait for it.

    Importing ``dvc.repo`` and the ``dvc_data`` modules the adapter uses costs 1.2-2 s in a cold
    process; start this when a cycle starts and it is done before ``act`` needs it.
    """

    def _import() -> None:
        try:
            import dvc.dependency.param
            import dvc.repo  # noqa: F401
            import dvc_data.hashfile.build
            import dvc_data.hashfile.checkout
            import dvc_data.hashfile.transfer  # noqa: F401
        except Exception:
            log.debug("prewarming DVC failed", exc_info=True)

    thread = threading.Thread(target=_import, name="modelcycle-dvc-prewarm", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------------------------
# workspace creation
# --------------------------------------------------------------------------------------------

def init_workspace_repo(root: str | os.PathLike[str], remote_url: str | None) -> None:
    """Make ``root`` a git repository with DVC initialised and a default remote.

    ``git init -b main`` unless ``root`` already is a repository's top level; ``dvc init`` unless
    ``.dvc/`` exists (its files are staged, as ``dvc init`` does); ``core.analytics false``;
    remote ``modelcycle`` = ``remote_url`` made the default (a local folder is created; one
    inside the workspace is stored relative, so the workspace can move); a repo-local git
    identity if none is configured. Safe to run again; creates no commit.
    """
    path = Path(root).resolve()
    path.mkdir(parents=True, exist_ok=True)
    top = _git(path, "rev-parse", "--show-toplevel", ok=(0, 128))
    if top.returncode != 0 or Path(_out(top)).resolve() != path:
        _git(path, "init", "-q", "-b", "main", ".")
    for key, default in (("user.name", "modelcycle"), ("user.email", "modelcycle@localhost")):
        if not _out(_git(path, "config", "--get", key, ok=(0, 1))):
            _git(path, "config", "--local", key, default)

    from_init = not (path / ".dvc").is_dir()
    try:
        with _quiet_dvc():
            from dvc.config_schema import RelPath
            from dvc.repo import Repo

            repo = Repo.init(str(path)) if from_init else Repo(str(path))
            try:
                with repo.config.edit("repo") as conf:
                    conf["core"]["analytics"] = False
                    if remote_url:
                        url: str = remote_url
                        if "://" not in remote_url:
                            local = Path(remote_url).expanduser()
                            local = local if local.is_absolute() else path / local
                            local = local.resolve()
                            local.mkdir(parents=True, exist_ok=True)
                            url = RelPath(local) if local.is_relative_to(path) else str(local)
                        conf["remote"][REMOTE_NAME] = {"url": url}
                        conf["core"]["remote"] = REMOTE_NAME
            finally:
                repo.close()
    except VersioningError:
        raise
    except Exception as exc:
        raise _translate(exc, "init", str(path)) from exc
    if from_init:
        _git(path, "add", "--", ".dvc/config")


def commit_paths(root: str | os.PathLike[str], paths: Sequence[str], message: str) -> str:
    """Stage ``paths`` (those that exist) and commit them alone; returns the new commit.

    For the workspace's first commit (modelcycle.yaml, params.yaml, dvc.yaml, .gitignore,
    .dvc/): nothing else the user has staged is included.
    """
    path = Path(root).resolve()
    present = [p for p in paths if (path / p).exists()]
    if not present:
        raise VersioningError(f"nothing to commit in {path}: none of {', '.join(paths)} exists")
    _git(path, "add", "--", *present)
    _git(path, "commit", "-q", "--no-verify", "-m", message, "--", *present)
    return _out(_git(path, "rev-parse", "HEAD"))


# --------------------------------------------------------------------------------------------
# small file helpers
# --------------------------------------------------------------------------------------------

def _posix_join(a: str, b: str) -> str:
    return b if a in ("", ".") else f"{a}/{b}"


def _posix_dirname(p: str) -> str:
    return p.rpartition("/")[0]


def _read(root: str, rel: str) -> bytes | None:
    try:
        with open(os.path.join(root, rel), "rb") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        raise VersioningError(f"cannot read {rel} in {root}: {exc}",
                              "check the file's permissions") from exc


def _write_atomic(path: str, data: bytes) -> None:
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".modelcycle-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if os.path.exists(path):
                shutil.copymode(path, tmp)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
    except OSError as exc:
        raise VersioningError(f"cannot write {path}: {exc}",
                              "check the folder's permissions") from exc


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise VersioningError(f"cannot remove {path}: {exc}",
                              "check the file's permissions") from exc


__all__ = ["DvcGitVersioning", "init_workspace_repo", "prewarm"]


def _listing(obj: Any) -> Any:
    """A folder's object (``load`` of a ``.dir`` hash) as the tree it is: iterating it yields
    (key, meta, hash_info) for each file."""
    from dvc_data.hashfile.tree import Tree

    if not isinstance(obj, Tree):
        raise TypeError(f"expected a folder listing, got {type(obj).__name__}")
    return obj
