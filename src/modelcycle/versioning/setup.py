"""Making a workspace a git + DVC repository (:func:`init_workspace_repo`), and importing DVC's
modules ahead of a cycle that will need them (:func:`prewarm`)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from modelcycle.errors import VersioningError

from modelcycle.versioning.dvcgit import REMOTE_NAME, _quiet_dvc, _translate
from modelcycle.versioning.gitcmd import _git, _out

log = logging.getLogger(__name__)


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
