"""What a deployed cycle costs beside `modelcycle run`, and how soon fresh data is decided.

Two copies of one demo-size taxifare workspace (its first champion trained on 2014), one Prefect
server (`prefect server start`, every service on) for both:

* copy A runs each window with `modelcycle run --window W` (a new process, as a user types it);
* copy B has the cycle deployed and `modelcycle worker` running; each window is started as a
  flow run of the deployment through the API, and timed until the server says it completed.

Both process the same windows, alternately (A's W, then B's W), so the machine's speed drifts
alike on both. Then fresh data: B's warehouse loses the months after the last window, and each
month appended back is timed from the append to its decision in the decision log, with the
watcher's default check interval.

    python scripts/bench_deployed.py [--windows 2015-01 2015-02 2015-03] [--arrivals 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import duckdb
import httpx

EXE = str(Path(sys.executable).with_name("modelcycle"))


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_SERVICES_")}
    out.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true", **extra)
    return out


def modelcycle(ws: Path, *args: str, url: str | None = None) -> float:
    started = time.perf_counter()
    extra = {"PREFECT_API_URL": url} if url else {}
    subprocess.run([EXE, "-w", str(ws), *args], env=env(**extra), check=True, capture_output=True, text=True)
    return time.perf_counter() - started


@contextlib.contextmanager
def server(home: Path):
    from modelcycle import dbcache

    home.mkdir(parents=True)
    dbcache.seed("prefect", home / "prefect.db")
    port = free_port()
    log = open(home / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=env(PREFECT_HOME=str(home), PREFECT_SERVER_API_PORT=str(port),
                                                 PREFECT_UI_ENABLED="false"),
                            stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2):
                break
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()


def trim(ws: Path, end: str) -> None:
    con = duckdb.connect(str(ws / ".modelcycle" / "warehouse.duckdb"))
    try:
        con.execute("DELETE FROM rides WHERE pickup_datetime >= CAST(? AS TIMESTAMP)", [end])
    finally:
        con.close()


def last_decision(ws: Path) -> dict:
    lines = (ws / ".modelcycle" / "notifications.log").read_text().splitlines()
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", nargs="+", default=["2015-01", "2015-02", "2015-03"])
    ap.add_argument("--arrivals", type=int, default=3, help="months appended one at a time after the windows")
    ap.add_argument("--rows-per-month", type=int, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-deployed-"))
    a, b = tmp / "a", tmp / "b"
    try:
        init = ["init", str(a), "--example", "taxifare"]
        if args.rows_per_month:
            init += ["--rows-per-month", str(args.rows_per_month)]
        subprocess.run([EXE, *init], env=env(), check=True, capture_output=True)
        modelcycle(a, "run", "--window", "2014-12")
        shutil.copytree(a, b, symlinks=True)  # the copy's MLflow store is repointed at its own artifacts
        with server(tmp / "prefect") as url:
            modelcycle(b, "deploy", url=url)
            def start_worker(*extra: str) -> subprocess.Popen[bytes]:
                return subprocess.Popen([EXE, "-w", str(b), "worker", *extra], env=env(PREFECT_API_URL=url),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

            # the windows are started by hand: the watcher must not run ahead of them
            worker = start_worker("--no-watch")
            api = httpx.Client(base_url=url, timeout=30)
            dep = api.get("/deployments/name/modelcycle-cycle/taxifare").json()["id"]
            rows = []
            try:
                time.sleep(5)  # the worker's first poll
                for w in args.windows:
                    run_s = modelcycle(a, "run", "--window", w, url=url)
                    started = time.perf_counter()
                    run_id = api.post(f"/deployments/{dep}/create_flow_run", json={"parameters": {"window": w}}).json()["id"]
                    while (state := api.get(f"/flow_runs/{run_id}").json())["state_type"] not in (
                            "COMPLETED", "FAILED", "CRASHED"):
                        time.sleep(0.2)
                    deployed_s = time.perf_counter() - started
                    assert state["state_type"] == "COMPLETED", state["state"]
                    in_flow = float(state["total_run_time"])
                    rows.append((w, run_s, deployed_s, in_flow))
                    print(f"{w}: modelcycle run {run_s:6.1f} s | deployed run {deployed_s:6.1f} s "
                          f"(of which Running {in_flow:5.1f} s) | overhead {deployed_s - run_s:+5.1f} s", flush=True)
                # fresh data: the months after the last window leave, then come back one by one
                after = args.windows[-1]
                y, m = map(int, after.split("-"))
                nxt = f"{y + (m // 12):04d}-{m % 12 + 1:02d}-01"
                trim(b, nxt)
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
                worker = start_worker()  # the default check interval
                from modelcycle.config import Workspace
                from modelcycle.examples.taxifare.workspace import append

                latencies = []
                for _ in range(args.arrivals):
                    time.sleep(3)
                    appended = time.perf_counter()
                    month, _n = append(Workspace.load(b))
                    while not (d := last_decision(b)) or d.get("window") != month or d.get("kind") == "approval":
                        time.sleep(0.2)
                        if time.perf_counter() - appended > 300:
                            raise SystemExit(f"{month}: no decision within 300 s")
                    latencies.append(time.perf_counter() - appended)
                    said = "needs a decision" if d["kind"] == "pending" else d["outcome"]
                    print(f"{month} appended -> {said} notified in {latencies[-1]:.1f} s", flush=True)
                    if d["kind"] == "pending":  # a human's turn: answer, so the next month can run
                        modelcycle(b, "reject", month, "--by", "bench", url=url)
                        while last_decision(b).get("kind") == "pending":
                            time.sleep(0.2)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
        overhead = [d - r for _, r, d, _ in rows]
        print(f"\nmean: modelcycle run {sum(r for _, r, _, _ in rows) / len(rows):.1f} s, deployed run "
              f"{sum(d for _, _, d, _ in rows) / len(rows):.1f} s, overhead {sum(overhead) / len(overhead):+.1f} s "
              f"per cycle; fresh data decided in {min(latencies):.1f}-{max(latencies):.1f} s "
              f"(mean {sum(latencies) / len(latencies):.1f} s) with the default 15 s check")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
