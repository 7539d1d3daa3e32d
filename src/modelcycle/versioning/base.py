"""The versioning interface the lifecycle talks to.

A cycle writes the outputs of the workspace's ``dvc.yaml`` stages (data window snapshots, the
challenger model directory, reports) and then calls :meth:`Versioning.commit` to record them:
DVC hashes them into its cache and ``dvc.lock``, git commits the small files that describe them
and tags the commit. :meth:`Versioning.state` taken before the cycle and
:meth:`Versioning.restore` on failure put everything back exactly: git HEAD (a reset, never a
detached checkout), the tags, the bytes of the files the cycle rewrote, and the DVC-tracked
outputs in the workspace.

Implementations: :mod:`modelcycle.versioning.dvcgit` (real git + DVC) and
:mod:`modelcycle.versioning.memory` (a fake for fast tests). Every method raises
:class:`modelcycle.errors.VersioningError`, never a DVC or git exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from modelcycle.errors import VersioningError

PROJECT_FILE = "dvc.yaml"
_S = TypeVar("_S")


def pick_stages(known: Mapping[str, _S], names: Sequence[str], root: object) -> list[_S]:
    """The stages ``names`` of ``known`` (a workspace's dvc.yaml), each once, in order; a name it
    lacks is an error that lists the stages there are."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise VersioningError(
            f"{PROJECT_FILE} in {root} has no stage {', '.join(map(repr, unknown))}",
            f"stages are: {', '.join(known) or 'none'}; check dvc.yaml")
    return [known[n] for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class VersionState:
    """What :meth:`Versioning.restore` needs to put the workspace back as it was.

    ``files`` maps each file the cycle may rewrite (relative path) to its bytes, or None if
    it did not exist. ``outputs`` maps each DVC stage output (relative path) to its content
    hash, or None if it did not exist. ``branch`` is the branch HEAD was on (None if detached
    or unknown); ``index`` maps each owned file, and each file the stages read that no stage
    writes (committed with the cycle, never rewritten: ``modelcycle.yaml``...), to its git index
    entry (``"<mode> <blob>"``, None if not in the index), so a restore puts the staging area
    back too. ``dirty`` lists those files that differ from HEAD when the state is taken (the
    user's uncommitted edits, which a cycle's commit then includes).
    """

    head: str | None
    tags: frozenset[str]
    files: dict[str, bytes | None] = field(default_factory=dict)
    outputs: dict[str, str | None] = field(default_factory=dict)
    branch: str | None = None
    index: dict[str, str | None] = field(default_factory=dict)
    dirty: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The result of :meth:`Versioning.commit`."""

    commit: str
    tag: str | None
    hashes: dict[str, str]  # output path -> DVC content hash (md5)
    pushed: bool = False
    push_error: str | None = None  # why the push failed (naming the remote), when it did
    push_hint: str | None = None   # and what to do


class Versioning(Protocol):
    root: str

    def state(self, tracked: Sequence[str] = ()) -> VersionState:
        """Capture HEAD, tags, the owned files' bytes and the outputs' hashes; ``tracked``
        (workspace-relative paths a source reads, see :mod:`modelcycle.versioning.tracked`)
        count as outputs, their ``.dvc`` and ``.gitignore`` files as owned files."""
        ...

    def commit(self, stages: list[str], message: str, tag: str | None = None, *,
               tracked: Sequence[str] = ()) -> Snapshot:
        """``dvc commit`` the named stages' outputs, git-commit dvc.lock / params.yaml /
        .gitignore changes (and nothing else of the user's), tag the commit, push the DVC
        cache to the configured remote (a failed push is not raised: the snapshot says
        ``pushed=False`` and why, in ``push_error``). A tag that already exists is an error. ``tracked``
        paths are versioned as they are (``dvc add``: a ``.dvc`` file each, committed too) and
        their hashes join the snapshot's."""
        ...

    def restore(self, state: VersionState) -> None:
        """Put HEAD, tags, owned files and stage outputs back to ``state``."""
        ...

    def sync_remote(self, url: str | None) -> None:
        """Make the workspace's own DVC config name ``url`` as its default remote (None: no
        remote), in a file git does not track; a cycle calls it before it pushes."""
        ...

    def push(self, commits: Sequence[str]) -> None:
        """Push the DVC-tracked outputs of ``commits`` (whose push failed) to the remote now;
        raises a VersioningError naming the remote when it cannot."""
        ...

    def head(self) -> str | None: ...

    def branch(self) -> str | None:
        """The branch HEAD is on (``refs/heads/main``), None when HEAD is detached."""
        ...

    def tags(self, prefix: str = "") -> list[str]: ...

    def clear_stale_locks(self) -> list[str]:
        """Remove lock files a killed git left (``.git/index.lock``...) when no git process works
        in the workspace; returns the files removed."""
        ...

    def missing_data(self) -> dict[str, list[str]]:
        """Outputs ``dvc.lock`` records whose content is missing from the DVC cache
        (``"cache"``) and from the remote (``"remote"``)."""
        ...

    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        """Current DVC content hash of each workspace path (None if absent)."""
        ...
