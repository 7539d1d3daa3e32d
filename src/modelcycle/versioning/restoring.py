"""How the DVC + git adapter puts a workspace back to a recorded :class:`VersionState`: tags,
HEAD, the owned files (from git's objects) and the DVC outputs (from the cache)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.errors import VersioningError

from modelcycle.versioning.base import VersionState
from modelcycle.versioning.gitcmd import _ZERO_SHA, _git, _out, _read, _remove, _write_atomic

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from dvc.repo import Repo


class Restoring:
    """The restore half of :class:`~modelcycle.versioning.dvcgit.DvcGitVersioning`."""

    root: str

    if TYPE_CHECKING:
        def head(self) -> str | None: ...
        def branch(self) -> str | None: ...
        def tags(self, prefix: str = "") -> list[str]: ...
        def _dvc(self, what: str) -> AbstractContextManager[Repo]: ...
        def _hash(self, repo: Repo, rel: str, *, to_cache: bool = False) -> str | None: ...
        def _stages(self, repo: Repo) -> list[Any]: ...
        def _index_entries(self, paths: Sequence[str]) -> dict[str, str]: ...
        def _tree_entries(self, commit: str | None, paths: Sequence[str]) -> dict[str, str | None]: ...

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

    # -- repair: stale locks, data missing from the cache --------------------------------

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


def _rel(root: str, path: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _listing(obj: Any) -> Any:
    """A folder's object (``load`` of a ``.dir`` hash) as the tree it is: iterating it yields
    (key, meta, hash_info) for each file."""
    from dvc_data.hashfile.tree import Tree

    if not isinstance(obj, Tree):
        raise TypeError(f"expected a folder listing, got {type(obj).__name__}")
    return obj
