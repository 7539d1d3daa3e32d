"""A source's own files (an image folder, say), versioned as they are.

A source may name files or folders inside the workspace that it reads
(:class:`modelcycle.sources.base.TracksFiles`). They are not a stage's outputs: no stage writes
them, and ``dvc repro`` deletes a stage's outputs before it runs the stage. So each is tracked
the way ``dvc add`` tracks data: a ``<path>.dvc`` file beside it records its content hash
(``<md5>.dir`` for a folder), its content goes into the DVC cache (and the remote, with the
stages' outputs), and git ignores the path itself (an entry in the ``.gitignore`` beside it) and
commits the ``.dvc`` file with the cycle. A snapshot's ``hashes`` hold the path's hash beside the
stage outputs'; a state records it among the ``outputs``, and the ``.dvc`` and ``.gitignore``
files among the owned ``files``, so a restore brings all of them back.

Paths outside the workspace are never tracked (DVC versions only what lies inside its repository);
:func:`modelcycle.sources.base.tracked_paths` leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence

DVC_SUFFIX = ".dvc"
GITIGNORE = ".gitignore"


def dvc_file(rel: str) -> str:
    """The ``.dvc`` file that records ``rel`` (a workspace-relative POSIX path)."""
    return rel + DVC_SUFFIX


def gitignore_of(rel: str) -> str:
    """The ``.gitignore`` where ``rel`` is listed (beside it)."""
    parent = rel.rpartition("/")[0]
    return f"{parent}/{GITIGNORE}" if parent else GITIGNORE


def owned_files(paths: Sequence[str]) -> list[str]:
    """The small files git commits for ``paths``: each one's ``.dvc`` file and ``.gitignore``."""
    return sorted({f for rel in paths for f in (dvc_file(rel), gitignore_of(rel))})
