"""What flow-run heartbeats cost a flow run on a Prefect server, side by side in one run.

Starts `prefect server start` on a free loopback port (its own home in a temporary folder) and
times a one-task flow, alternately: without heartbeats, with Prefect engine's heartbeats
(a thread joined at the flow run's end), with modelcycle's (lifecycle/heartbeat.py).

    python scripts/bench_flow_heartbeat.py [--runs 10] [--team]

``--team`` runs the flows on the team servers the tests start instead (``tests/team/servers.py``:
``prefect server`` on PostgreSQL 15), to compare a SQLite-backed server with a PostgreSQL one.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--team", action="store_true", help="a prefect server on PostgreSQL (the tests' team servers)")
    args = parser.parse_args()
    if args.team:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.team.servers import TeamServers

        with TeamServers() as team:
            measure(args.runs, team.prefect_api_url, Path(tempfile.mkdtemp(prefix="bench-heartbeat-")))
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="bench-heartbeat-"))
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "0"}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        measure(args.runs, url, home)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def measure(runs: int, url: str, home: Path) -> None:
    """Time the one-task flow on the Prefect server at ``url``, each kind of heartbeat in turn."""
    os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="ERROR")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from modelcycle.lifecycle import runtime

    runtime.configure(prefect_home=None, api_url=url)
    from prefect import flow, task
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from modelcycle.lifecycle import flows, heartbeat

    STOPS: list[float] = []

    @task
    def step(x: int) -> int:
        return x + 1

    @flow(name="bench-heartbeat")
    def one(ours: bool) -> int:
        if ours:
            with heartbeat.beating("bench-heartbeat"):
                out = step(1)
                STOPS.append(time.perf_counter())
            STOPS[-1] = time.perf_counter() - STOPS[-1]
            return out
        return step(1)

    def timed(setup: object, ours: bool) -> float:
        started = time.perf_counter()
        with setup:  # type: ignore[attr-defined]
            one(ours)
        return time.perf_counter() - started

    one(False)  # warm up
    kinds = {"none": lambda: (temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), False),
             "prefect engine": lambda: (temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}), False),
             "modelcycle": lambda: (flows._run_settings(), True)}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(runs):
        for kind, make in kinds.items():
            setup, ours = make()
            times[kind].append(timed(setup, ours))
    print(f"{'heartbeats':<16}{'median s':>10}{'mean s':>9}{'max s':>8}  (one-task flow, {runs} runs each)")
    for kind, ts in times.items():
        print(f"{kind:<16}{statistics.median(ts):>10.3f}{statistics.mean(ts):>9.3f}{max(ts):>8.3f}  "
              + " ".join(f"{t:.2f}" for t in ts))
    print("modelcycle heartbeat stop s: " + " ".join(f"{t:.3f}" for t in STOPS))


if __name__ == "__main__":
    main()
