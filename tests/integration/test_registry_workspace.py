"""Opening a workspace's registry: a copied or moved workspace's store becomes its own."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from modelcycle.config import Workspace
from modelcycle.registry.workspace import open_registry


def _experiment_locations(db: Path) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT name, artifact_location FROM experiments"))
    finally:
        con.close()


def test_a_copied_workspace_writes_into_its_own_artifacts(taxi_template: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(taxi_template, copy, symlinks=True)  # as `cp -a` would: absolute locations stay
    ws = Workspace.load(copy)
    name = ws.config.name
    old_root = f"{taxi_template.resolve().as_uri()}/.modelcycle/mlartifacts"
    assert _experiment_locations(copy / ".modelcycle" / "mlflow.db")[name] == f"{old_root}/{name}"

    with caplog.at_level(logging.WARNING, logger="modelcycle.registry.workspace"):
        registry = open_registry(ws)

    assert registry.relocated == f"{old_root} -> {ws.artifact_location}"
    assert "this workspace was moved or copied" in caplog.text
    assert _experiment_locations(copy / ".modelcycle" / "mlflow.db")[name] == f"{ws.artifact_location}/{name}"
    # the template the copy came from still points at its own folder
    assert _experiment_locations(taxi_template / ".modelcycle" / "mlflow.db")[name] == f"{old_root}/{name}"
    # opening it again finds nothing to move
    assert open_registry(Workspace.load(copy)).relocated is None


def test_a_workspace_in_place_is_left_alone(taxi_ws: Path) -> None:
    ws = Workspace.load(taxi_ws)
    registry = open_registry(ws)
    assert registry.relocated is None
    assert (registry.tracking_uri, registry.registry_uri, registry.artifact_location) == (
        ws.tracking_uri, ws.registry_uri, ws.artifact_location)
