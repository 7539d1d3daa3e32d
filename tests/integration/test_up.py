"""`modelcycle up` / `down` with real processes: the workspace's Prefect and MLflow servers
start, answer with their UIs, are used by `modelcycle run`, and stop without leaving a process.

One up/down cycle serves the main scenario (starting the servers takes 5-10 s)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import _copy

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("modelcycle"))


def _env() -> dict[str, str]:
    drop = ("PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    return {k: v for k, v in os.environ.items() if k not in drop}


def mc(ws: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "-w", str(ws), *args], env=_env(), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True, check=False)


def _get(url: str, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read().decode()


def _record(ws: Path) -> dict:
    return json.loads((ws / ".modelcycle" / "servers.json").read_text())


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _workspace_processes(ws: Path) -> list[psutil.Process]:
    """Processes started for ``ws`` (a server's command line or its PREFECT_HOME names it)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(ws) in " ".join(proc.info["cmdline"] or []) or \
                    proc.environ().get("PREFECT_HOME", "").startswith(str(ws)):
                found.append(proc)
    return found


@contextlib.contextmanager
def _cleanup(ws: Path):
    """Whatever happens in the test, no server outlives it."""
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError):
            for entry in _record(ws).values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(entry["pid"]), signal.SIGKILL)
        for proc in _workspace_processes(ws):
            with contextlib.suppress(psutil.Error):
                proc.kill()


def test_up_serves_both_dashboards_and_the_cycles_use_them(cli_champion_template, tmp_path):
    ws = _copy(cli_champion_template, tmp_path / "ws").resolve()
    with _cleanup(ws):
        t0 = time.monotonic()
        started = mc(ws, "up")
        elapsed = time.monotonic() - t0
        assert started.returncode == 0, started.stdout + started.stderr
        assert "started Prefect and MLflow in" in started.stdout
        rec = _record(ws)
        prefect, mlflow = rec["prefect"], rec["mlflow"]
        print(f"up took {elapsed:.1f} s")
        assert prefect["url"] in started.stdout and mlflow["ui"] in started.stdout
        assert prefect["url"].startswith("http://127.0.0.1:") and mlflow["url"].startswith("http://127.0.0.1:")

        # both answer, with their UIs; Prefect's UI calls this server's API
        assert _get(prefect["url"] + "/health")[0] == 200
        assert _get(mlflow["url"] + "/health")[0] == 200
        assert "<html" in _get(prefect["ui"] + "/")[1].lower()
        assert json.loads(_get(prefect["ui"] + "/ui-settings")[1])["api_url"] == prefect["url"]
        assert "<html" in _get(mlflow["ui"] + "/")[1].lower()
        # the history of the earlier run (the template's first cycle) is in the servers
        earlier = json.loads(_get(prefect["url"] + "/flow_runs/filter", {})[1])
        assert [r["name"] for r in earlier] == ["2014-12"]

        # a second `up` reuses them
        again = mc(ws, "up")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout and prefect["url"] in again.stdout
        assert _record(ws) == rec

        status = mc(ws, "status")
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("(from modelcycle up)") == 2
        assert f"running at {prefect['ui']}" in status.stdout and f"running at {mlflow['ui']}" in status.stdout

        # a cycle uses them: its flow run is in this Prefect server, its MLflow run in this MLflow server
        run = mc(ws, "run", "--window", "2015-01")
        assert run.returncode == 0, run.stdout + run.stderr
        flow_runs = json.loads(_get(prefect["url"] + "/flow_runs/filter", {})[1])
        assert {(r["name"], r["state_type"]) for r in flow_runs} == {("2014-12", "COMPLETED"), ("2015-01", "COMPLETED")}
        experiment = json.loads(_get(mlflow["url"] + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=taxifare")[1])
        runs = json.loads(_get(mlflow["url"] + "/api/2.0/mlflow/runs/search",
                               {"experiment_ids": [experiment["experiment"]["experiment_id"]],
                                "filter": "attributes.run_name = 'cycle 2015-01'"})[1])["runs"]
        assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED"
        assert runs[0]["info"]["artifact_uri"].startswith((ws / ".modelcycle" / "mlartifacts").as_uri())

        # down stops exactly those processes, their whole groups
        pids = [prefect["pid"], mlflow["pid"]]
        children = [c.pid for pid in pids for c in psutil.Process(pid).children(recursive=True)]
        down = mc(ws, "down")
        assert down.returncode == 0, down.stderr
        assert "Prefect: stopped" in down.stdout and "MLflow: stopped" in down.stdout
        assert not (ws / ".modelcycle" / "servers.json").exists()
        assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
                   for p in pids + children)
        assert all(_group_gone(p) for p in pids)
        assert _workspace_processes(ws) == []
        again = mc(ws, "down")
        assert again.returncode == 0 and "no servers running" in again.stdout

        # the commands are back on the embedded backends
        status = mc(ws, "status")
        assert "(from modelcycle up)" not in status.stdout and "not running" in status.stdout

        # a stale servers.json (its processes ended) is shown as such and replaced by `up`
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        stale = {name: {**entry, "pid": dead.pid} for name, entry in rec.items()}
        (ws / ".modelcycle" / "servers.json").write_text(json.dumps(stale))
        status = mc(ws, "status")
        assert status.stdout.count("stale") == 2 and "(from modelcycle up)" not in status.stdout
        t0 = time.monotonic()
        restarted = mc(ws, "up")
        print(f"second up took {time.monotonic() - t0:.1f} s")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        new = _record(ws)
        assert {e["pid"] for e in new.values()}.isdisjoint({dead.pid}) and psutil.pid_exists(new["mlflow"]["pid"])
        assert _get(new["mlflow"]["url"] + "/health")[0] == 200
        assert mc(ws, "down").returncode == 0
        assert all(_group_gone(e["pid"]) for e in new.values())
        assert _workspace_processes(ws) == []


def test_a_server_that_does_not_start_stops_the_other_and_says_why(taxi_template, tmp_path):
    ws = _copy(taxi_template, tmp_path / "ws").resolve()
    with _cleanup(ws):
        # a port in use: said before anything starts
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            taken = mc(ws, "up", "--prefect-port", str(port))
        assert taken.returncode == 2
        assert f"port {port} on 127.0.0.1 is in use" in taken.stderr and "--prefect-port" in taken.stderr
        assert "Traceback" not in taken.stderr

        # an MLflow store from a newer MLflow: its server exits; Prefect's is stopped again
        with sqlite3.connect(ws / ".modelcycle" / "mlflow.db") as con:
            con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
        con.close()
        failed = mc(ws, "up")
        assert failed.returncode == 2, failed.stdout + failed.stderr
        assert "the MLflow server did not start" in failed.stderr
        assert "out-of-date database schema" in failed.stderr  # the tail of its log
        assert "mlflow.log" in failed.stderr and "Traceback" not in failed.stderr.split("ends with:")[0]
        assert not (ws / ".modelcycle" / "servers.json").exists()
        assert _workspace_processes(ws) == []
