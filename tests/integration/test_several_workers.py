"""Workers on several (simulated) machines against one Prefect server.

Each machine is a set of processes with its own HOME (its own git identity), PREFECT_HOME,
temporary folder and name (MODELCYCLE_HOST), the same PREFECT_API_URL, and the workspaces at
the same paths (a shared filesystem). The machines share this test's kernel, where a file lock
would hold across them; a file lock on a network filesystem is not to be trusted, so each
machine's processes keep the workspace's file lock in a folder of their own
(tests/integration/machines/sitecustomize.py): only the Prefect server's concurrency limit
keeps two machines' cycles of one model apart.

Two workers serve one work pool; cycles of two models run at once; two cycles of one model, a
deployed one and one typed on a third machine, run one after the other."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration import longlived
from tests.integration.conftest import _copy
from tests.integration.test_deployed import Api, registry, tags, until

pytestmark = pytest.mark.timeout(300)

MACHINES = Path(__file__).with_name("machines")


@dataclass
class Machine:
    name: str
    env: dict[str, str]

    @classmethod
    def make(cls, base: Path, name: str, url: str, **extra: str) -> Machine:
        home = base / name / "home"
        for folder in ("home", "prefect", "tmp", "locks"):
            (base / name / folder).mkdir(parents=True)
        (home / ".gitconfig").write_text(f"[user]\n\tname = {name}\n\temail = ops@{name}\n")
        env = longlived.clean_env(
            PREFECT_API_URL=url, HOME=str(home), PREFECT_HOME=str(base / name / "prefect"),
            TMPDIR=str(base / name / "tmp"), MODELCYCLE_HOST=name,
            MODELCYCLE_TEST_MACHINE_LOCKS=str(base / name / "locks"),
            PYTHONPATH=os.pathsep.join(p for p in (str(MACHINES), os.environ.get("PYTHONPATH", "")) if p), **extra)
        return cls(name, env)

    def cli(self, ws: Path, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([longlived.EXE, "-w", str(ws), *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)


def cycles(ws: Path) -> dict[str, dict[str, Any]]:
    """The cycles' MLflow runs of a workspace by window: when each ran (ms), on which host and
    worker, its id."""
    con = sqlite3.connect(ws / ".modelcycle" / "mlflow.db")
    try:
        rows = con.execute(
            "SELECT w.value, r.start_time, r.end_time, h.value, k.value, r.run_uuid FROM runs r "
            "JOIN tags w ON w.run_uuid = r.run_uuid AND w.key = 'modelcycle.window' "
            "LEFT JOIN tags h ON h.run_uuid = r.run_uuid AND h.key = 'modelcycle.host' "
            "LEFT JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'modelcycle.worker'").fetchall()
    finally:
        con.close()
    return {w: {"start": s, "end": e, "host": h, "worker": k, "run": r} for w, s, e, h, k, r in rows}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=True).stdout


def rename(ws: Path, model: str) -> Path:
    """Another model: the workspace as it would be with ``name: <model>`` (no champion yet)."""
    path = ws / "modelcycle.yaml"
    path.write_text(path.read_text().replace("name: taxifare", f"name: {model}", 1))
    git(ws, "commit", "-qam", f"the model is {model}")
    return ws


def test_two_machines_two_models_one_lock(cli_champion_ws: Path, cli_champion_template: Path, tmp_path: Path) -> None:
    taxi = cli_champion_ws
    fares = rename(_copy(cli_champion_template, tmp_path / "ws-fares"), "fares")
    with longlived.prefect_server(tmp_path / "prefect") as url:
        api = Api(url)
        held = tmp_path / "hold-the-deployed-cycle"  # while it exists, a worker's cycle waits once trained
        a, b = (Machine.make(tmp_path / "machines", n, url, MODELCYCLE_TEST_HOLD=f"cycle:trained={held}")
                for n in ("host-a", "host-b"))
        c = Machine.make(tmp_path / "machines", "host-c", url)
        for ws in (taxi, fares):
            done = longlived.cli(url, ws, "deploy")
            assert done.returncode == 0, done.stdout + done.stderr
        deployed = {"taxifare": api.deployment("taxifare")["id"], "fares": api.deployment("fares")["id"]}
        workers = [a.cli(taxi, "worker", "--no-watch"), b.cli(fares, "worker", "--no-watch")]
        try:
            def registered() -> set[str]:
                r = api.http.post("/work_pools/modelcycle/workers/filter", json={})
                return {w["name"] for w in r.json()}

            # both serve the pool, each under its machine's name and its process id
            names = {f"host-a-{workers[0].pid}", f"host-b-{workers[1].pid}"}
            until(lambda: names <= registered(), 60, f"the workers {names} in the pool")

            # two models: their cycles run at once, each on whichever worker took it
            runs = {m: api.start(d, "2015-01") for m, d in deployed.items()}
            ended = {m: api.wait(r, ("COMPLETED",), timeout=150) for m, r in runs.items()}
            starts = [when(r["start_time"]) for r in ended.values()]
            ends = [when(r["end_time"]) for r in ended.values()]
            assert max(starts) < min(ends), ended  # their run intervals overlap
            assert "modelcycle/taxifare/2015-01" in tags(taxi) and "modelcycle/fares/2015-01" in tags(fares)
            for m, run in runs.items():
                log = api.logs(run)
                assert f"the cycle of {m} runs on host-" in log and "(worker host-" in log, log
                assert "waiting for" not in log
            assert {cycles(taxi)["2015-01"]["host"], cycles(fares)["2015-01"]["host"]} <= {"host-a", "host-b"}

            # one model, two machines: a deployed cycle, and one typed on host-c while it runs (the
            # deployed one holds on after training until the typed one has had time to arrive)
            versions = len(registry(taxi).list_versions("taxifare"))
            count = int(git(taxi, "rev-list", "--count", "HEAD"))
            held.touch()
            deployed_run = api.start(deployed["taxifare"], "2015-02")
            until(lambda: "2015-02: training the challenger" in api.logs(deployed_run), 90, "the deployed cycle")
            typed = c.cli(taxi, "run", "--window", "2015-03")

            def typed_log() -> str:
                found = api.http.post("/flow_runs/filter", json={"flow_runs": {"name": {"any_": ["2015-03"]}}}).json()
                return api.logs(found[0]["id"]) if found else ""

            try:
                until(lambda: "the cycle of taxifare runs on host-c" in typed_log(), 90, "the typed cycle's start")
                time.sleep(3)  # time enough to take the slot, had it been free
            finally:
                held.unlink()
            out, _ = typed.communicate(timeout=180)
            assert typed.returncode == 0, out
            api.wait(deployed_run, ("COMPLETED",), timeout=150)
        finally:
            stopped = [longlived.stop_worker(w) for w in workers]
        logs = []
        for (code, said), machine, proc, ws in zip(stopped, (a, b), workers, (taxi, fares), strict=True):
            assert code == 0, said
            assert f"worker {machine.name}-" in said and "serving work pool modelcycle" in said, said
            # each worker writes its own log, named after it, and says where
            log = ws.resolve() / ".modelcycle" / "workers" / f"{machine.name}-{proc.pid}.log"
            assert log.is_file() and log.stat().st_size > 0 and f"(its log: {log})" in said, said
            assert not (ws / ".modelcycle" / "worker.log").exists()
            logs.append(log)
        assert logs[0] != logs[1]

        # one after the other: the cycles (their MLflow runs, the act inside) do not overlap
        got = cycles(taxi)
        first, second = sorted((got["2015-02"], got["2015-03"]), key=lambda r: r["start"])
        print(f"one model: cycles {first['start']}..{first['end']} and {second['start']}..{second['end']} (ms)")
        assert first["end"] <= second["start"], got
        assert got["2015-03"]["host"] == "host-c" and got["2015-02"]["host"] in ("host-a", "host-b")
        # each deployed cycle's run names the worker that started it; the typed one names none
        assert got["2015-03"]["worker"] is None and got["2015-02"]["worker"] in names, got
        assert got["2015-02"]["worker"].startswith(got["2015-02"]["host"] + "-"), got  # the worker of its machine
        assert cycles(fares)["2015-01"]["worker"] in names
        # `history` shows each cycle's move with the host and the worker its run carries
        shown = longlived.cli(url, taxi, "history", "--json")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        where = {c["run"]: (c["host"], c["worker"]) for c in got.values()}
        cycled = [m for m in json.loads(shown.stdout) if m["run_id"] in where]
        assert cycled and all((m["host"], m["worker"]) == where[m["run_id"]] for m in cycled), cycled
        assert {m["host"] for m in cycled} & {"host-a", "host-b", "host-c"}, cycled
        by_window = {m["window"]: m for m in cycled}
        assert by_window["2015-02"]["worker"] in names and by_window["2015-03"]["worker"] is None, cycled
        # the one that waited said for whom, in its Prefect log
        said = typed_log()
        assert re.search(r"2015-03: waiting for 2015-02 on host-[ab] \(worker host-[ab]-\d+\) to finish the cycle "
                         "of taxifare", said), said
        assert "2015-03: waiting for 2015-02 on host-" in out and "ERROR" not in out, out  # the terminal too
        # consistent: two commits, one after the other; two versions in sequence; one champion
        assert int(git(taxi, "rev-list", "--count", "HEAD")) == count + 2
        for window in ("2015-02", "2015-03"):
            git(taxi, "merge-base", "--is-ancestor", f"modelcycle/taxifare/{window}", "HEAD")
        assert git(taxi, "status", "--porcelain", "--untracked-files=no") == ""
        reg = registry(taxi)
        numbers = sorted(int(v.version) for v in reg.list_versions("taxifare"))
        assert numbers == list(range(1, versions + 3))
        champion = reg.get_alias("taxifare", "champion")
        assert champion is not None and int(champion.version) in numbers

