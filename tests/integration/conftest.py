"""Fixtures for integration tests: real workspaces (git + DVC + MLflow on SQLite + DuckDB) in tmp."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROWS = 3000  # small months keep real cycles quick; the demo's size is tested by the benchmark


def _template(factory: pytest.TempPathFactory, name: str, rows: int | None) -> Path:
    from modelcycle.examples.taxifare.workspace import create

    root = factory.mktemp(name) / "ws"
    create(root, rows_per_month=rows)
    return root


def _copy(template: Path, root: Path) -> Path:
    """A private copy of a template. MLflow stores the experiment's artifact location as an
    absolute URI, so the copy's database is pointed at the copy's own artifact folder."""
    import sqlite3

    shutil.copytree(template, root, symlinks=True)
    con = sqlite3.connect(root / ".modelcycle" / "mlflow.db")
    with con:
        con.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                    (template.resolve().as_uri(), root.resolve().as_uri()))
    con.close()
    return root


@pytest.fixture(scope="session")
def taxi_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small taxifare workspace built once; tests copy it (building takes a few seconds)."""
    return _template(tmp_path_factory, "template", ROWS)


@pytest.fixture(scope="session")
def demo_size_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A taxifare workspace at the demo's size (the simulator's default rows per month)."""
    return _template(tmp_path_factory, "demo-size", None)


@pytest.fixture
def taxi_ws(taxi_template: Path, tmp_path: Path) -> Path:
    return _copy(taxi_template, tmp_path / "ws")


@pytest.fixture
def demo_size_ws(demo_size_template: Path, tmp_path: Path) -> Path:
    return _copy(demo_size_template, tmp_path / "ws")


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database, migrated once; tests copy it (migrations take seconds)."""
    from modelcycle.registry.mlflow import MlflowRegistry

    folder = tmp_path_factory.mktemp("mlflow-template")
    MlflowRegistry(f"sqlite:///{folder / 'mlflow.db'}")
    return folder / "mlflow.db"
