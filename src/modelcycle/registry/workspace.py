"""The registry of a workspace: every command and cycle opens it with :func:`open_registry`.

It builds the :class:`~modelcycle.registry.mlflow.MlflowRegistry` from the workspace's
backends (``backends`` in modelcycle.yaml, or the embedded store under ``.modelcycle/``), and
first makes a moved or copied workspace's embedded store its own (:func:`relocate_store`).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from modelcycle.config import Workspace
from modelcycle.config.models import EMBEDDED_ARTIFACTS
from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.registry.stores import sqlite_path

log = logging.getLogger(__name__)


def open_registry(ws: Workspace, *, system_metrics_interval: float = 1.0) -> MlflowRegistry:
    """The registry of ``ws``, with its embedded store made its own first: a copied or moved
    workspace's store still points at the old folder's artifacts, and is pointed at its own
    (what moved is in the registry's ``relocated``, None when nothing did)."""
    moved = own_store(ws, ws.tracking_uri)
    registry = MlflowRegistry(ws.tracking_uri, registry_uri=ws.registry_uri, artifact_location=ws.experiment_artifacts,
                              system_metrics_interval=system_metrics_interval)
    registry.relocated = moved
    return registry


def own_store(ws: Workspace, tracking_uri: str) -> str | None:
    """Point the workspace's embedded SQLite store (``tracking_uri``) at the workspace's own
    artifacts when it was moved or copied; what moved, or None (also for any other store)."""
    db = sqlite_path(tracking_uri)
    moved = None
    artifacts = ws.config.backends.mlflow_artifacts or EMBEDDED_ARTIFACTS
    if db is not None and "://" not in artifacts and not Path(artifacts).is_absolute():
        db = db.expanduser()
        if db.resolve().is_relative_to(Path(ws.root).resolve()):
            marker = "/" + Path(artifacts).as_posix().strip("/").removeprefix("./")
            moved = relocate_store(db, ws.artifact_location.rstrip("/"), marker)
            if moved:
                log.warning("this workspace was moved or copied; its MLflow store now points at its "
                            "own artifacts (%s)", moved)
    return moved


def client_only_experiments(ws: Workspace, registry: MlflowRegistry) -> dict[str, str]:
    """The workspace's experiments (the cycles', the DVC experiments') on a tracking server whose
    artifacts are a ``file://`` folder: only the machine that made them can load their models."""
    if not ws.tracking_server:
        return {}
    names = [ws.config.name, f"{ws.config.name}-experiments"]
    return {n: loc for n, loc in registry.experiment_locations(names).items() if loc.startswith("file:")}


_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "source"),
                     ("model_versions", "storage_location"))


def relocate_store(db: Path, artifact_root: str, marker: str) -> str | None:
    """Point a SQLite store's artifact locations at ``artifact_root`` (a ``file://`` URI) when
    they point into the same folder of another place: the workspace holding the store was
    moved or copied (MLflow stores absolute locations). ``marker`` is the artifact folder as it
    appears in every location (``/.modelcycle/mlartifacts``). Returns what moved, or None.

    Only the five location columns are rewritten, inside one transaction; running it again
    changes nothing."""
    if not db.is_file():
        return None
    con = sqlite3.connect(str(db), timeout=30)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return None
        olds: set[str] = set()
        for (location,) in con.execute("SELECT artifact_location FROM experiments"):
            if not location or location.startswith(artifact_root + "/") or location == artifact_root:
                continue
            cut = location.find(marker + "/")
            if location.startswith("file://") and cut > 0:
                olds.add(location[:cut + len(marker)])
        if not olds:
            return None
        with con:
            for old in sorted(olds):
                for table, column in _LOCATION_COLUMNS:
                    if table in tables:
                        con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608
                                    f"WHERE {column} LIKE ? ESCAPE '\\'",
                                    (artifact_root, len(old) + 1,
                                     old.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"))
        return f"{', '.join(sorted(olds))} -> {artifact_root}"
    finally:
        con.close()

