"""Fixtures for integration tests: real workspaces (git + DVC + MLflow on SQLite + DuckDB) in tmp."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROWS = 3000  # small months keep real cycles quick; the demo's size is tested by the benchmark


@pytest.fixture(scope="session")
def taxi_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One taxifare workspace built once; tests copy it (building takes a few seconds)."""
    from modelcycle.lifecycle.workspace import create_taxifare

    root = tmp_path_factory.mktemp("template") / "ws"
    create_taxifare(root, rows_per_month=ROWS)
    return root


@pytest.fixture
def taxi_ws(taxi_template: Path, tmp_path: Path) -> Path:
    """A private copy of the template. MLflow stores the experiment's artifact location as an
    absolute URI, so the copy's database is pointed at the copy's own artifact folder."""
    import sqlite3

    root = tmp_path / "ws"
    shutil.copytree(taxi_template, root, symlinks=True)
    con = sqlite3.connect(root / ".modelcycle" / "mlflow.db")
    with con:
        con.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                    (taxi_template.resolve().as_uri(), root.resolve().as_uri()))
    con.close()
    return root
