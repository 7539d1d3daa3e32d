"""Fixtures for integration tests: real workspaces (git + DVC + MLflow on SQLite + DuckDB) in tmp.

Building a workspace, and running its first cycle, take seconds: each is done once per run as a
template (by the first xdist worker that needs it, while the others wait for it), and tests get
a private copy of the template."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROWS = 3000  # small months keep real cycles quick; the demo's size is tested by the benchmark

# where MLflow keeps absolute artifact locations (as ``file://`` URIs)
_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "source"),
                     ("model_versions", "storage_location"))


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _shared(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """``<folder>/ws`` built by ``build`` once for the whole run: the xdist workers share the
    parent of their temporary folders; the first to get here builds, the others wait."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / f"template-{name}"
    with _exclusive(base / f"template-{name}.lock"):
        if not (folder / "built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder / "ws")
            (folder / "built").touch()
    return folder / "ws"


def _template(factory: pytest.TempPathFactory, name: str, rows: int | None) -> Path:
    from modelcycle.examples.taxifare.workspace import create

    def build(root: Path) -> None:
        create(root, rows_per_month=rows)

    return _shared(factory, name, build)


def _copy(template: Path, root: Path) -> Path:
    """A private copy of a template. MLflow stores artifact locations as absolute URIs, so the
    copy's database is pointed at the copy's own artifact folder (as if it had been built there:
    the product's own repointing of a copied workspace is tested in test_safety.py)."""
    import sqlite3

    shutil.copytree(template, root, symlinks=True)
    old, new = template.resolve().as_uri() + "/", root.resolve().as_uri() + "/"
    con = sqlite3.connect(root / ".modelcycle" / "mlflow.db")
    with con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in _LOCATION_COLUMNS:
            if table in tables:
                con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))
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


@pytest.fixture(scope="session")
def champion_template(taxi_template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_server) -> Path:
    """The small workspace after its first cycle, `modelcycle run --window 2014-12` in this
    process (on the session's Prefect server): v1 is the champion, tagged and pushed."""
    from modelcycle.cli.main import main

    def build(root: Path) -> None:
        _copy(taxi_template, root)
        with pytest.raises(SystemExit) as done:
            main(["-w", str(root), "run", "--window", "2014-12"])
        assert done.value.code in (0, None)

    return _shared(tmp_path_factory, "champion", build)


@pytest.fixture(scope="session")
def cli_champion_template(taxi_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small workspace after its first cycle run by the `modelcycle` command in its own
    process, as a user's terminal runs it: its own Prefect server and run history in
    .modelcycle/prefect (what tests of real processes start from). Its model has 40 trees
    instead of 150 (committed as the user's own edit): those tests are about processes, locks
    and rollbacks, not about the model, and every cycle they run trains one."""

    def build(root: Path) -> None:
        _copy(taxi_template, root)
        params = root / "params.yaml"
        text = re.sub(r"n_estimators: \d+", "n_estimators: 40", params.read_text())
        assert "n_estimators: 40" in text
        params.write_text(text)
        subprocess.run(["git", "commit", "-q", "-m", "fewer trees", "params.yaml"], cwd=root, check=True)
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env["PREFECT_HOME"] = str(root / ".modelcycle" / "prefect")
        exe = str(Path(sys.executable).with_name("modelcycle"))
        proc = subprocess.run([exe, "-w", str(root), "run", "--window", "2014-12"], env=env, check=False,
                              capture_output=True, text=True, timeout=600, start_new_session=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    return _shared(tmp_path_factory, "cli-champion", build)


@pytest.fixture
def taxi_ws(taxi_template: Path, tmp_path: Path) -> Path:
    return _copy(taxi_template, tmp_path / "ws")


@pytest.fixture
def demo_size_ws(demo_size_template: Path, tmp_path: Path) -> Path:
    return _copy(demo_size_template, tmp_path / "ws")


@pytest.fixture
def champion_ws(champion_template: Path, tmp_path: Path) -> Path:
    """A private copy of the workspace after its first cycle (2014-12 promoted, v1 champion)."""
    return _copy(champion_template, tmp_path / "ws")


@pytest.fixture
def cli_champion_ws(cli_champion_template: Path, tmp_path: Path) -> Path:
    """A private copy of the workspace after its first cycle run by the `modelcycle` command."""
    return _copy(cli_champion_template, tmp_path / "ws")


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database, migrated once; tests copy it (migrations take seconds)."""
    from modelcycle.registry.mlflow import MlflowRegistry

    folder = tmp_path_factory.mktemp("mlflow-template")
    MlflowRegistry(f"sqlite:///{folder / 'mlflow.db'}")
    return folder / "mlflow.db"


@contextlib.contextmanager
def running_mlflow_server(home: Path, **env: str) -> Iterator[tuple[str, Path]]:
    """A real `mlflow server` with served artifacts on a free loopback port, its store and log in
    ``home``: its URL and the folder where it keeps artifacts. ``env`` adds to its environment.

    Its database starts from modelcycle's migrated empty one (MLflow's migrations take seconds),
    and its job runner is off, as `modelcycle up` runs it: GenAI jobs play no part in a model's
    cycle, and the runner's seven processes would each import MLflow (some 30 s of CPU) beside
    the tests."""
    from modelcycle import dbcache
    from tests.team.servers import Proc, wait_http

    artifacts = home / "served-artifacts"
    db = home / "mlflow.db"
    dbcache.seed("mlflow", db)  # migrated already when the cache has it (the server starts sooner)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    environ = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
               **env}
    environ.pop("MLFLOW_TRACKING_URI", None)
    with (home / "server.log").open("wb") as log:
        server = Proc("mlflow", subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(artifacts),
             "--serve-artifacts", "--workers", "1"],
            cwd=home, env=environ, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True),
            home / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(server, f"{url}/health", 120)
        yield url, artifacts
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real `mlflow server` (:func:`running_mlflow_server`) shared by a module's tests."""
    with running_mlflow_server(tmp_path_factory.mktemp("team-mlflow")) as server:
        yield server
