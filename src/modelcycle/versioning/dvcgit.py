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

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle import tracepoints
from modelcycle.errors import VersioningError, disk_cause
from modelcycle.versioning import tracked as source_files
from modelcycle.versioning.base import PROJECT_FILE, Snapshot, VersionState, pick_stages
from modelcycle.config.secrets import redact
from modelcycle.versioning.dvcerrors import _quiet_dvc, _translate
from modelcycle.versioning.remote import REMOTE_NAME, push_failed, remote_in_use, sync_remote
from modelcycle.versioning.restoring import Restoring, _listing, _rel
from modelcycle.versioning.gitcmd import (
    _git,
    _out,
    _posix_dirname,
    _posix_join,
    _read,
    commit_paths,
)

if TYPE_CHECKING:
    from dvc.repo import Repo

log = logging.getLogger(__name__)

LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"
GITIGNORE = ".gitignore"


# --------------------------------------------------------------------------------------------
# git
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# DVC
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Out:
    """A stage output as the adapter needs it."""

    path: str  # relative to the root, posix
    cached: bool
    stage: str


# --------------------------------------------------------------------------------------------
# the adapter
# --------------------------------------------------------------------------------------------

class DvcGitVersioning(Restoring):
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

        pushed, failure = False, None
        if remote:
            failure = self._push(stages, objects, remote, tracked)
            pushed = failure is None
            tracepoints.reach("versioning:pushed")
        return Snapshot(commit=commit, tag=tag, hashes=hashes, pushed=pushed,
                        push_error=failure.message if failure else None, push_hint=failure.hint if failure else None)

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
              tracked: Sequence[str] = ()) -> VersioningError | None:
        """Push the committed outputs' cache objects to the default remote; the error (naming
        the remote, saying what to do) if that failed, never raised: the caller decides.

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
            return None
        except (VersioningError, OSError) as exc:  # OSError: the remote's disk is full, read-only...
            detail = _detail(exc)
            log.debug("the data and model were committed but not pushed to the DVC remote %r: %s",
                      remote, redact(detail))
            return push_failed(remote_in_use(self.root), detail, self.root)

    # -- the remote ---------------------------------------------------------------------------

    def sync_remote(self, url: str | None) -> None:
        """DVC's own remote config (``.dvc/config.local``) made to name ``url``: see
        :func:`modelcycle.versioning.remote.sync_remote`."""
        sync_remote(self.root, url)

    def push(self, commits: Sequence[str]) -> None:
        """Push the DVC-tracked outputs of ``commits`` (a cycle's commit each, whose push failed)
        from the cache to the default remote: ``dvc push --rev``. Raises the error of
        :func:`~modelcycle.versioning.remote.push_failed` when it fails. A commit git no longer
        has (the user reset it away) has nothing left to push and is skipped."""
        commits = [c for c in commits if _git(self.root, "cat-file", "-e", f"{c}^{{commit}}",
                                              ok=(0, 1, 128)).returncode == 0]
        if not commits:
            return
        remote = remote_in_use(self.root)
        if remote is None:
            raise VersioningError(f"{self.root} has no DVC remote to push to",
                                  "set backends.dvc_remote in modelcycle.yaml (or MODELCYCLE_DVC_REMOTE)")
        try:
            with self._dvc(f"push to remote {remote.name!r}") as repo:
                repo.push(revs=list(commits), workspace=False, remote=remote.name)
        except (VersioningError, OSError) as exc:
            raise push_failed(remote, _detail(exc), self.root) from exc


    # -- restore helpers ----------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# workspace creation
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# small file helpers
# --------------------------------------------------------------------------------------------


def _detail(exc: VersioningError | OSError) -> str:
    """What went wrong in a push, in words."""
    if isinstance(exc, VersioningError):
        return exc.message
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


__all__ = ["REMOTE_NAME", "DvcGitVersioning", "commit_paths"]
