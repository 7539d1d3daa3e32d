"""git as a subprocess (with the environment a hook or an outer repository would leak removed), and the
small file operations the versioning adapter needs (atomic writes, reads of possibly missing files)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from modelcycle.atomic import write_atomic
from modelcycle.errors import VersioningError

log = logging.getLogger(__name__)


# Variables that would point git somewhere other than the workspace (set inside git hooks).
_ZERO_SHA = "0" * 40
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_OBJECT_DIRECTORY",
                 "GIT_COMMON_DIR", "GIT_NAMESPACE")


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
    """Replace ``path`` with ``data`` in one step, keeping the permissions of the file it replaces."""
    try:
        write_atomic(path, data, keep_mode=True)
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
