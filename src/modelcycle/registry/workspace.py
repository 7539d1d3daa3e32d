"""The registry of a workspace: every command and cycle opens it here.

:func:`for_workspace` builds the :class:`~modelcycle.registry.mlflow.MlflowRegistry` from the
workspace's backends, and first makes a moved or copied workspace's embedded store its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from modelcycle.config import Workspace
from modelcycle.registry.mlflow import MlflowRegistry, relocate_store, sqlite_path

log = logging.getLogger(__name__)


def for_workspace(ws: Workspace) -> MlflowRegistry:
    """The registry of ``ws``, with its embedded store made its own first: a copied or moved
    workspace's store still points at the old folder's artifacts, and is pointed at its own
    (see :func:`~modelcycle.registry.mlflow.relocate_store`; what moved is in ``.relocated``)."""
    db = sqlite_path(ws.tracking_uri)
    moved = None
    artifacts = ws.config.backends.mlflow_artifacts
    if db is not None and "://" not in artifacts and not Path(artifacts).is_absolute():
        db = db.expanduser()
        if db.resolve().is_relative_to(Path(ws.root).resolve()):
            marker = "/" + Path(artifacts).as_posix().strip("/").removeprefix("./")
            moved = relocate_store(db, ws.artifact_location.rstrip("/"), marker)
            if moved:
                log.warning("this workspace was moved or copied; its MLflow store now points at its "
                            "own artifacts (%s)", moved)
    registry = MlflowRegistry(ws.tracking_uri, registry_uri=ws.registry_uri, artifact_location=ws.artifact_location)
    registry.relocated = moved
    return registry
