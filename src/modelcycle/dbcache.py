"""Empty, fully migrated SQLite databases of the embedded backends, kept once per machine.

Prefect and MLflow build their SQLite schemas by running their database migrations: about 10 s
for Prefect's and 5 s for MLflow's on a 2-core machine, every time a workspace is created. The
result, before any data is written, is the same for every workspace of one tool version, so
modelcycle keeps one copy per tool version in ``$XDG_CACHE_HOME/modelcycle`` (by default
``~/.cache/modelcycle``) and copies it into new workspaces. The first workspace on a machine
pays for the migrations once. Anything that goes wrong here only means the tool migrates as
usual: the cache is never required.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "modelcycle"


def version(tool: str) -> str | None:
    """The installed version of ``tool`` (a distribution name), or None."""
    try:
        return metadata.version(tool)
    except metadata.PackageNotFoundError:
        return None


def template(tool: str) -> Path | None:
    """Where the empty database of ``tool`` (a distribution name) at its installed version lives."""
    installed = version(tool)
    return None if installed is None else cache_dir() / f"{tool}-{installed}.sqlite"


def seed(tool: str, db: Path) -> bool:
    """Copy the cached empty database into ``db`` if ``db`` does not exist yet."""
    tpl = template(tool)
    if tpl is None or db.exists() or not tpl.is_file():
        return False
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tpl, db)
        return True
    except OSError:
        log.debug("could not copy %s to %s", tpl, db, exc_info=True)
        return False


def remember(tool: str, db: Path) -> None:
    """Keep a consistent copy of ``db`` (just migrated, still empty) as the cached template."""
    tpl = template(tool)
    if tpl is None or tpl.exists() or not db.is_file():
        return
    tmp: str | None = None
    try:
        tpl.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tpl.parent, suffix=".tmp")
        os.close(fd)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as src, sqlite3.connect(tmp) as dst:
            src.backup(dst)
        os.replace(tmp, tpl)
    except (OSError, sqlite3.Error):
        log.debug("could not cache %s", db, exc_info=True)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
