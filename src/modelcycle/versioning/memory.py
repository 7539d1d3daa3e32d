"""An in-memory fake of :class:`~modelcycle.versioning.dvcgit.DvcGitVersioning` for fast tests.

It works on a real workspace folder (the steps write real files there) but keeps git and DVC
in dicts: commits, the branch, tags, the content-addressed cache and the remote. It follows the
same contract as the real adapter:

* :meth:`MemoryVersioning.commit` records the named stages' outputs in ``dvc.lock`` (a
  simplified one) and the cache, writes DVC's ``.gitignore`` entries, makes one commit of
  dvc.yaml / dvc.lock / params files / those ``.gitignore`` files / the ``cache: false`` outputs,
  tags it (an existing tag is a :class:`~modelcycle.errors.VersioningError`) and "pushes";
* :meth:`MemoryVersioning.restore` puts HEAD, tags, the owned files and the outputs back exactly;
* hashes are DVC's: md5 of a file's bytes, ``<md5>.dir`` of the same JSON listing for a folder,
  so the fake and the real adapter agree on the same workspace.

Failure injection for flow tests: ``fail_after="dvc_commit" | "git_commit" | "tag"`` raises a
VersioningError right after that step of the next commits; ``push_fails=True`` makes the push
fail (``Snapshot.pushed`` is False, a warning is logged, as for real).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from modelcycle import tracepoints
from modelcycle.errors import VersioningError
from modelcycle.versioning import tracked as source_files
from modelcycle.versioning.base import PROJECT_FILE, Snapshot, VersionState, pick_stages

log = logging.getLogger(__name__)

FailPoint = Literal["dvc_commit", "git_commit", "tag"]
_LOCK_FILE = "dvc.lock"
_PARAMS_FILE = "params.yaml"
_GITIGNORE = ".gitignore"


@dataclass(frozen=True)
class FakeCommit:
    sha: str
    parent: str | None
    message: str
    tree: dict[str, bytes]  # every file in the commit
    changed: frozenset[str]  # the paths this commit added, changed or deleted


@dataclass
class _Output:
    path: str
    cached: bool = True


@dataclass
class _Stage:
    name: str
    outs: list[_Output] = field(default_factory=list)
    params_files: set[str] = field(default_factory=set)
    deps: list[str] = field(default_factory=list)


def dvc_md5(root: str | os.PathLike[str], rel: str) -> str | None:
    """DVC 3's content hash of a workspace path: md5 of a file, ``<md5>.dir`` for a folder."""
    path = Path(root, rel)
    if path.is_file():
        return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    if path.is_dir():
        return _dir_md5(_dir_listing(path))
    return None


def _dir_listing(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            full = Path(dirpath, name)
            out[full.relative_to(path).as_posix()] = hashlib.md5(
                full.read_bytes(), usedforsecurity=False).hexdigest()
    return out


def _dir_md5(listing: Mapping[str, str]) -> str:
    entries = sorted(({"md5": h, "relpath": rel} for rel, h in listing.items()),
                     key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8"),
                       usedforsecurity=False).hexdigest() + ".dir"


class MemoryVersioning:
    """The fake. ``stages`` maps stage name -> output paths (``"!path"`` = ``cache: false``);
    without it the workspace's ``dvc.yaml`` is read. ``remote=False``: no remote configured."""

    def __init__(self, root: str | os.PathLike[str], *, tag_prefix: str = "modelcycle/",
                 stages: Mapping[str, Sequence[str]] | None = None, remote: bool = True,
                 fail_after: FailPoint | None = None, push_fails: bool = False,
                 branch: str = "main") -> None:
        self.root = str(Path(root).resolve())
        self.tag_prefix = tag_prefix
        self._stage_spec = stages
        self.fail_after = fail_after
        self.push_fails = push_fails
        self.remote_url: str | None = None  # what sync_remote was last told
        self._objects_of: dict[str, list[str]] = {}  # commit -> the cached objects it versioned
        self.commits: dict[str, FakeCommit] = {}
        self.branch_name: str | None = branch  # None: HEAD is detached
        self._head: str | None = None
        self._tags: dict[str, str] = {}
        self.cache: dict[str, bytes | dict[str, str]] = {}
        self.remote: dict[str, bytes | dict[str, str]] | None = {} if remote else None
        self.calls: list[str] = []  # "state", "commit", "restore": for flow tests

    # -- queries --------------------------------------------------------------------------------

    def head(self) -> str | None:
        return self._head

    def branch(self) -> str | None:
        return f"refs/heads/{self.branch_name}" if self.branch_name else None

    def tags(self, prefix: str = "") -> list[str]:
        return sorted(t for t in self._tags if t.startswith(prefix))

    def tag_target(self, tag: str) -> str:
        return self._tags[tag]

    def log(self) -> list[FakeCommit]:
        """Commits from HEAD back to the first."""
        out, sha = [], self._head
        while sha is not None:
            out.append(self.commits[sha])
            sha = self.commits[sha].parent
        return out

    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        return {p: dvc_md5(self.root, p) for p in paths}

    def clear_stale_locks(self) -> list[str]:
        return []

    def missing_data(self) -> dict[str, list[str]]:
        missing: dict[str, list[str]] = {"cache": [], "remote": []}
        lock = Path(self.root, _LOCK_FILE)
        if not lock.exists():
            return missing
        recorded = yaml.safe_load(lock.read_text()) or {}
        for stage in (recorded.get("stages") or {}).values():
            for out in stage.get("outs") or []:
                value = out.get("md5")
                if not value or out.get("cache") is False:
                    continue
                for where, store in (("cache", self.cache), ("remote", self.remote)):
                    if store is None:
                        continue
                    obj = store.get(value)
                    if obj is None or (isinstance(obj, dict) and any(h not in store for h in obj.values())):
                        missing[where].append(out["path"])
        return missing

    # -- the interface --------------------------------------------------------------------------

    def state(self, tracked: Sequence[str] = ()) -> VersionState:
        self.calls.append("state")
        stages = self._stages()
        owned = sorted({*self._owned(stages), *source_files.owned_files(tracked)})
        outputs: dict[str, str | None] = {}
        for stage in stages:
            for out in stage.outs:
                outputs[out.path] = self._save_to_cache(out.path) if out.cached else dvc_md5(
                    self.root, out.path)
        outputs.update({p: self._save_to_cache(p) for p in tracked})
        tree = self.commits[self._head].tree if self._head else {}
        deps = self._deps(stages)
        dirty = sorted(p for p in [*owned, *deps] if self._read(p) != tree.get(p))
        return VersionState(head=self._head, tags=frozenset(self._tags),
                            files={p: self._read(p) for p in owned}, outputs=outputs,
                            branch=self.branch(), dirty=tuple(dirty))

    def commit(self, stages: list[str], message: str, tag: str | None = None, *,
               tracked: Sequence[str] = ()) -> Snapshot:
        self.calls.append("commit")
        if not stages:
            raise VersioningError("nothing to commit: no stages named",
                                  "pass the dvc.yaml stages whose outputs the cycle wrote")
        if tag is not None:
            if not tag or tag.endswith("/") or ".." in tag or " " in tag:
                raise VersioningError(f"`git check-ref-format refs/tags/{tag}` failed",
                                      "use letters, digits, '-', '_', '.' and '/' in the tag name")
            if tag in self._tags:
                raise VersioningError(
                    f"tag {tag!r} already exists in {self.root} (at {self._tags[tag][:12]})",
                    "a cycle's tag is never overwritten: use another tag name, or delete the old "
                    f"one with `git tag -d {tag}` if it is a leftover")
        chosen = pick_stages({s.name: s for s in self._stages()}, stages, self.root)

        # "dvc commit": outputs into the cache, dvc.lock, .gitignore entries
        hashes: dict[str, str] = {}
        for stage in chosen:
            for out in stage.outs:
                if not os.path.lexists(os.path.join(self.root, out.path)):
                    raise VersioningError(
                        f"DVC commit failed in {self.root}: OutputDoesNotExistError: output "
                        f"'{out.path}' does not exist",
                        "the step that writes this output did not run or failed; "
                        "run the cycle again")
            for out in stage.outs:
                value = (self._save_to_cache(out.path) if out.cached
                         else dvc_md5(self.root, out.path))
                assert value is not None
                hashes[out.path] = value
                if out.cached:
                    self._ignore(out.path)
        self._write_lock(chosen, hashes)
        added = {p: self._add(p) for p in tracked}  # "dvc add"
        hashes.update(added)
        self._maybe_fail("dvc_commit")
        tracepoints.reach("versioning:dvc-committed")

        # "git commit" of the owned paths only
        paths = {PROJECT_FILE, _LOCK_FILE, *self._deps(chosen), *source_files.owned_files(tracked)}
        for stage in chosen:
            paths |= stage.params_files
            for out in stage.outs:
                paths.add(_join(_dirname(out.path), _GITIGNORE) if out.cached else out.path)
        parent = self._head
        tree = dict(self.commits[parent].tree) if parent else {}
        changed = set()
        for p in sorted(paths):
            data = self._read(p)
            if data is None:
                if tree.pop(p, None) is not None:
                    changed.add(p)
            elif tree.get(p) != data:
                tree[p] = data
                changed.add(p)
        digest = sorted((k, hashlib.md5(v, usedforsecurity=False).hexdigest())
                        for k, v in tree.items())
        sha = hashlib.sha1(json.dumps([parent, message, len(self.commits), digest]).encode(),
                           usedforsecurity=False).hexdigest()
        self.commits[sha] = FakeCommit(sha, parent, message, tree, frozenset(changed))
        self._head = sha
        self._maybe_fail("git_commit")
        tracepoints.reach("versioning:git-committed")

        if tag is not None:
            self._tags[tag] = sha
            tracepoints.reach("versioning:tagged")
        self._maybe_fail("tag")

        self._objects_of[sha] = [*(hashes[o.path] for st in chosen for o in st.outs if o.cached),
                                 *added.values()]
        pushed, failure = False, None
        if self.remote is not None:
            if self.push_fails:
                log.warning("the data and model were committed but not pushed to the DVC remote "
                            "'modelcycle': simulated failure (run `dvc push` in %s later)",
                            self.root)
                failure = self._push_error()
            else:
                for stage in chosen:
                    for out in stage.outs:
                        if out.cached:
                            self._push(hashes[out.path])
                for value in added.values():
                    self._push(value)
                pushed = True
        return Snapshot(commit=sha, tag=tag, hashes=hashes, pushed=pushed,
                        push_error=failure.message if failure else None, push_hint=failure.hint if failure else None)

    def sync_remote(self, url: str | None) -> None:
        self.remote_url = url
        self.calls.append("sync_remote")

    def push(self, commits: Sequence[str]) -> None:
        """Push the cached outputs of ``commits`` (their hashes as recorded) to the remote."""
        self.calls.append("push")
        if not commits:
            return
        if self.remote is None:
            raise VersioningError(f"{self.root} has no DVC remote to push to", "set backends.dvc_remote")
        if self.push_fails:
            raise self._push_error()
        for sha in commits:
            for value in self._objects_of.get(sha, []):
                self._push(value)

    def _push_error(self) -> VersioningError:
        from modelcycle.versioning.remote import RemoteInUse, push_failed

        where = RemoteInUse("modelcycle", self.remote_url) if self.remote_url else None
        return push_failed(where, "simulated failure", self.root)

    def restore(self, state: VersionState) -> None:
        self.calls.append("restore")
        for t in [t for t in self._tags if t not in state.tags]:
            del self._tags[t]
        if state.head is not None and state.head not in self.commits:
            raise VersioningError(f"commit {state.head} is unknown", "check `git reflog`")
        self._head = state.head
        for rel, data in state.files.items():
            path = os.path.join(self.root, rel)
            if data is None:
                if os.path.isfile(path) or os.path.islink(path):
                    os.remove(path)
            elif self._read(rel) != data:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                Path(path).write_bytes(data)
        missing = []
        for rel, old in state.outputs.items():
            if rel in state.files or dvc_md5(self.root, rel) == old:
                continue
            path = os.path.join(self.root, rel)
            if old is None:
                _remove(path)
            elif old not in self.cache:
                missing.append(rel)
            else:
                _remove(path)
                self._checkout(path, old)
        if missing:
            raise VersioningError(f"could not bring back {', '.join(missing)} from the DVC cache",
                                  "`dvc pull` the missing data and run the restore again")

    # -- helpers --------------------------------------------------------------------------------

    def _maybe_fail(self, point: FailPoint) -> None:
        if self.fail_after == point:
            raise VersioningError(f"simulated failure after {point}", "this is a test")

    def _stages(self) -> list[_Stage]:
        if self._stage_spec is not None:
            return [_Stage(name, [_Output(p.lstrip("!"), not p.startswith("!")) for p in outs],
                           {_PARAMS_FILE})
                    for name, outs in self._stage_spec.items()]
        path = Path(self.root, PROJECT_FILE)
        if not path.exists():
            return []
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise VersioningError(f"cannot read {path}: {exc}", "fix dvc.yaml") from exc
        stages = []
        for name, spec in (doc.get("stages") or {}).items():
            stage = _Stage(name)
            for key in ("outs", "metrics", "plots"):
                for item in spec.get(key) or []:
                    if isinstance(item, str):
                        stage.outs.append(_Output(item))
                    else:
                        for p, opts in item.items():
                            stage.outs.append(_Output(p, bool((opts or {}).get("cache", True))))
            stage.deps = [d for d in spec.get("deps") or [] if isinstance(d, str)]
            for item in spec.get("params") or []:
                if isinstance(item, str):
                    stage.params_files.add(_PARAMS_FILE)
                else:
                    stage.params_files.update(item)
            stages.append(stage)
        return stages

    def _owned(self, stages: Sequence[_Stage]) -> list[str]:
        owned = {PROJECT_FILE, _LOCK_FILE, _PARAMS_FILE}
        for stage in stages:
            owned |= stage.params_files
            for out in stage.outs:
                owned.add(_join(_dirname(out.path), _GITIGNORE) if out.cached else out.path)
        return sorted(owned)

    def _deps(self, stages: Sequence[_Stage]) -> list[str]:
        """Files the stages read that no stage writes (committed with the cycle, never rewritten)."""
        produced = {o.path for st in self._stages() for o in st.outs}
        return sorted({d for st in stages for d in st.deps
                       if d not in produced and os.path.isfile(os.path.join(self.root, d))})

    def _read(self, rel: str) -> bytes | None:
        try:
            return Path(self.root, rel).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def _save_to_cache(self, rel: str) -> str | None:
        path = Path(self.root, rel)
        if path.is_file():
            data = path.read_bytes()
            value = hashlib.md5(data, usedforsecurity=False).hexdigest()
            self.cache.setdefault(value, data)
            return value
        if path.is_dir():
            listing = _dir_listing(path)
            for name, h in listing.items():
                self.cache.setdefault(h, (path / name).read_bytes())
            value = _dir_md5(listing)
            self.cache.setdefault(value, listing)
            return value
        return None

    def _checkout(self, path: str, value: str) -> None:
        obj = self.cache[value]
        if isinstance(obj, bytes):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Path(path).write_bytes(obj)
            return
        os.makedirs(path, exist_ok=True)
        for name, h in obj.items():
            target = Path(path, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            data = self.cache[h]
            assert isinstance(data, bytes)
            target.write_bytes(data)

    def _push(self, value: str) -> None:
        assert self.remote is not None
        obj = self.cache[value]
        self.remote[value] = obj
        if isinstance(obj, dict):
            for h in obj.values():
                self.remote[h] = self.cache[h]

    def _add(self, rel: str) -> str:
        """What ``dvc add`` does: the content into the cache, ``<rel>.dvc``, a .gitignore entry."""
        value = self._save_to_cache(rel)
        if value is None:
            raise VersioningError(f"DVC add failed in {self.root}: '{rel}' does not exist",
                                  "the source names a file or folder that is not there")
        name = rel.rpartition("/")[2]
        Path(self.root, source_files.dvc_file(rel)).write_text(
            yaml.safe_dump({"outs": [{"md5": value, "path": name, "hash": "md5"}]}, sort_keys=False))
        self._ignore(rel)
        return value

    def _ignore(self, rel: str) -> None:
        entry = "/" + rel.rpartition("/")[2]
        gitignore = Path(self.root, _join(_dirname(rel), _GITIGNORE))
        lines = gitignore.read_text().splitlines() if gitignore.exists() else []
        if entry not in lines:
            with gitignore.open("a") as fh:
                fh.write(entry + "\n")

    def _write_lock(self, stages: Sequence[_Stage], hashes: Mapping[str, str]) -> None:
        path = Path(self.root, _LOCK_FILE)
        doc = yaml.safe_load(path.read_text()) if path.exists() else None
        doc = doc or {"schema": "2.0", "stages": {}}
        for stage in stages:
            doc["stages"][stage.name] = {
                "outs": [{"path": o.path, "md5": hashes[o.path], **({} if o.cached else {"cache": False})}
                         for o in stage.outs]}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _join(a: str, b: str) -> str:
    return b if a in ("", ".") else f"{a}/{b}"


def _dirname(p: str) -> str:
    return p.rpartition("/")[0]


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


__all__ = ["FakeCommit", "MemoryVersioning", "dvc_md5"]
