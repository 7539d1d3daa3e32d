"""`modelcycle down` stops exactly the processes `up` recorded: their groups, never a reused pid."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from modelcycle.config import Workspace
from modelcycle.lifecycle import servers
from tests.unit.minimal import CONFIG, no_backend_variables


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    no_backend_variables(monkeypatch)
    (tmp_path / "modelcycle.yaml").write_text(CONFIG)
    (tmp_path / ".modelcycle").mkdir(mode=0o700)
    return Workspace.load(tmp_path)


def _server_like() -> subprocess.Popen:
    """A process in its own session with a child, as a server of `up` is."""
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    leader = psutil.Process(proc.pid)
    deadline = time.monotonic() + 10
    while not leader.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def _write(ws: Workspace, **entries: dict) -> None:
    (ws.state_dir / "servers.json").write_text(json.dumps(entries))


def _entry(pid: int, started: float) -> dict:
    return {"pid": pid, "started": started, "port": 1, "url": "http://127.0.0.1:1", "ui": "http://127.0.0.1:1"}


def test_down_stops_the_whole_group_and_forgets_it(ws):
    proc = _server_like()
    child = psutil.Process(proc.pid).children()[0].pid
    _write(ws, mlflow=_entry(proc.pid, psutil.Process(proc.pid).create_time()))
    assert dict(servers.describe(ws))["mlflow"].startswith("running at http://127.0.0.1:1")
    stopped = servers.down(ws, timeout=10)
    assert [(s.name, s.pid, s.how) for s in stopped] == [("mlflow", proc.pid, "stopped")]
    assert proc.wait(timeout=5) is not None
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert not (ws.state_dir / "servers.json").exists()
    assert servers.down(ws) == []


def test_a_reused_pid_is_never_signalled(ws):
    me = psutil.Process()
    _write(ws, prefect=_entry(os.getpid(), me.create_time() - 3600))  # "this pid" started an hour ago
    assert dict(servers.describe(ws))["prefect"].startswith("stale")
    stopped = servers.down(ws, timeout=1)
    assert [(s.name, s.how) for s in stopped] == [("prefect", "not running")]
    assert me.is_running()  # still here: this test process was not killed
    assert not (ws.state_dir / "servers.json").exists()


def test_a_configured_server_is_not_started(ws, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://team:4200/api")
    assert servers.external_servers(ws) == {"prefect": "http://team:4200/api"}
    (Path(ws.root) / "modelcycle.yaml").write_text(CONFIG + "backends: {mlflow_tracking_uri: 'https://mlflow.team'}\n")
    assert servers.external_servers(Workspace.load(ws.root)) == {"prefect": "http://team:4200/api",
                                                                 "mlflow": "https://mlflow.team"}


def test_a_port_in_use_is_refused_before_anything_starts(ws):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(servers.ServerStartError, match=f"port {port} on 127.0.0.1 is in use") as err:
            servers.up(ws, mlflow_port=port)
    assert "--mlflow-port" in (err.value.hint or "")
    assert not (ws.state_dir / "servers.json").exists()
    assert not (ws.state_dir / "servers").exists()  # no log: nothing was started
