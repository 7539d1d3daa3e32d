"""Where a workspace's backends come from while `modelcycle up` runs its servers: the
environment, then a server named in modelcycle.yaml, then a live .modelcycle/servers.json,
then the embedded default."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from modelcycle.config import Workspace
from modelcycle.config.live import is_alive, live_servers, read_servers
from tests.unit.minimal import CONFIG, no_backend_variables


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    no_backend_variables(monkeypatch)
    (tmp_path / "modelcycle.yaml").write_text(CONFIG)
    (tmp_path / ".modelcycle").mkdir(mode=0o700)
    return tmp_path


def _me() -> tuple[int, float]:
    return os.getpid(), psutil.Process().create_time()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def record(root: Path, pid: int, started: float, *, store: str | None = None, home: str | None = None) -> None:
    state = root.resolve() / ".modelcycle"
    data = {
        "prefect": {"pid": pid, "started": started, "port": 4200, "url": "http://127.0.0.1:4200/api",
                    "ui": "http://127.0.0.1:4200", "home": home or str(state / "prefect")},
        "mlflow": {"pid": pid, "started": started, "port": 5000, "url": "http://127.0.0.1:5000",
                   "ui": "http://127.0.0.1:5000", "store": store or f"sqlite:///{state / 'mlflow.db'}"},
    }
    (state / "servers.json").write_text(json.dumps(data))


def test_without_servers_the_embedded_backends_are_used(root):
    ws = Workspace.load(root)
    assert ws.tracking_uri == f"sqlite:///{root.resolve() / '.modelcycle/mlflow.db'}"
    assert ws.registry_uri == ws.tracking_uri
    assert ws.prefect_api_url is None
    assert ws.backend_origins() == {"mlflow": "modelcycle.yaml", "prefect": "modelcycle.yaml", "dvc": "modelcycle.yaml"}


def test_live_servers_are_used_and_named_as_the_origin(root):
    record(root, *_me())
    ws = Workspace.load(root)
    assert ws.tracking_uri == "http://127.0.0.1:5000"
    assert ws.registry_uri == "http://127.0.0.1:5000"
    assert ws.prefect_api_url == "http://127.0.0.1:4200/api"
    origins = ws.backend_origins()
    assert origins["mlflow"] == "modelcycle up" and origins["prefect"] == "modelcycle up"
    assert ws.local_tracking_uri == f"sqlite:///{root.resolve() / '.modelcycle/mlflow.db'}"


def test_environment_wins_over_live_servers(root, monkeypatch):
    record(root, *_me())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    monkeypatch.setenv("PREFECT_API_URL", "http://team:4200/api")
    ws = Workspace.load(root)
    assert ws.tracking_uri == "http://team:5000"
    assert ws.prefect_api_url == "http://team:4200/api"
    assert ws.backend_origins()["mlflow"] == "$MLFLOW_TRACKING_URI"
    assert ws.backend_origins()["prefect"] == "$PREFECT_API_URL"


def test_a_server_named_in_the_config_wins_over_live_servers(root):
    record(root, *_me())
    (root / "modelcycle.yaml").write_text(CONFIG + "backends:\n  mlflow_tracking_uri: http://team:5000\n"
                                          "  prefect_api_url: http://team:4200/api\n")
    ws = Workspace.load(root)
    assert ws.tracking_uri == "http://team:5000"
    assert ws.prefect_api_url == "http://team:4200/api"
    assert set(ws.backend_origins().values()) == {"modelcycle.yaml"}


def test_a_dead_process_is_ignored(root):
    record(root, _dead_pid(), psutil.Process().create_time())
    ws = Workspace.load(root)
    assert ws.tracking_uri.startswith("sqlite:///")
    assert ws.prefect_api_url is None
    assert live_servers(root / ".modelcycle") == {}
    assert set(read_servers(root / ".modelcycle")) == {"prefect", "mlflow"}  # recorded, but stale


def test_a_reused_pid_is_not_the_server(root):
    pid, started = _me()
    record(root, pid, started - 3600)  # this pid belonged to a process started an hour earlier
    ws = Workspace.load(root)
    assert ws.tracking_uri.startswith("sqlite:///")
    assert ws.prefect_api_url is None
    assert not is_alive({"pid": pid, "started": started - 3600})
    assert is_alive({"pid": pid, "started": started})


def test_a_copied_workspace_does_not_use_the_original_servers(root, tmp_path):
    """A servers.json copied with the workspace names the original's store and Prefect home."""
    record(root, *_me(), store="sqlite:////elsewhere/.modelcycle/mlflow.db", home="/elsewhere/.modelcycle/prefect")
    ws = Workspace.load(root)
    assert ws.tracking_uri.startswith(f"sqlite:///{root.resolve()}")
    assert ws.prefect_api_url is None
    assert set(ws.backend_origins().values()) == {"modelcycle.yaml"}


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"mlflow": {"pid": "x"}}', '{"other": {"pid": 1}}'])
def test_a_damaged_servers_file_means_no_servers(root, text):
    (root / ".modelcycle" / "servers.json").write_text(text)
    ws = Workspace.load(root)
    assert ws.tracking_uri.startswith("sqlite:///") and ws.prefect_api_url is None
