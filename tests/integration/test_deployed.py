"""Deployed cycles on a real Prefect server, run by `modelcycle worker` (Prefect's process worker
and the data watcher) in its own process: the schedule processes the right window, a second run
of a window is a no-op, a month appended to the source starts its cycle, and an escalation waits
for a human who answers with `approve`, with `reject`, through the API as the UI does, or not at
all (the timeout keeps the champion)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.integration import longlived
from tests.integration.conftest import ROWS

pytestmark = pytest.mark.timeout(600)


def tags(ws: Path) -> list[str]:
    return subprocess.run(["git", "tag", "--list", "modelcycle/*"], cwd=ws, capture_output=True, text=True,
                          check=True).stdout.split()


def commits(ws: Path) -> int:
    return int(subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=ws, capture_output=True, text=True,
                              check=True).stdout)


def registry(ws: Path) -> Any:
    from modelcycle.config import Workspace
    from modelcycle.registry.workspace import open_registry

    return open_registry(Workspace.load(ws))


class Api:
    """The Prefect server's REST API, as the UI calls it."""

    def __init__(self, url: str) -> None:
        self.http = longlived.api_client(url)

    def deployment(self, name: str = "taxifare") -> dict[str, Any]:
        r = self.http.get(f"/deployments/name/modelcycle-cycle/{name}")
        r.raise_for_status()
        return dict(r.json())

    def runs(self, deployment_id: str) -> list[dict[str, Any]]:
        r = self.http.post("/flow_runs/filter", json={"deployments": {"id": {"any_": [deployment_id]}},
                                                      "sort": "EXPECTED_START_TIME_ASC", "limit": 100})
        r.raise_for_status()
        return list(r.json())

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.http.get(f"/flow_runs/{run_id}")
        r.raise_for_status()
        return dict(r.json())

    def start(self, deployment_id: str, window: str) -> str:
        r = self.http.post(f"/deployments/{deployment_id}/create_flow_run", json={"parameters": {"window": window}})
        r.raise_for_status()
        return str(r.json()["id"])

    def logs(self, run_id: str) -> str:
        r = self.http.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200,
                                                 "sort": "TIMESTAMP_ASC"})
        r.raise_for_status()
        return "\n".join(entry["message"] for entry in r.json())

    def history(self, run_id: str) -> str:
        """The run's states as Prefect recorded them, oldest first (for a failure's message)."""
        r = self.http.get("/flow_run_states/", params={"flow_run_id": run_id})
        if r.status_code != 200:
            return f"(its states could not be read: HTTP {r.status_code})"
        return "\n".join(f"  {s['timestamp']} {s['type']} '{s['name']}'" + (f": {s['message']}" if s.get("message") else "")
                         for s in sorted(r.json(), key=lambda s: s["timestamp"]))

    def stuck(self, run: dict[str, Any], what: str) -> str:
        return (f"run {run['name']} {what}; its states:\n{self.history(run['id'])}\n"
                f"its logs:\n{self.logs(run['id'])}")

    def wait(self, run_id: str, states: tuple[str, ...], timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["state_type"] in states:
                return run
            assert run["state_type"] not in ("FAILED", "CRASHED", "CANCELLED"), self.stuck(run, "ended")
            assert time.monotonic() < deadline, self.stuck(run, f"is still {run['state_type']} after {timeout:g} s")
            time.sleep(0.5)

    def paused(self, run_id: str, timeout: float = 60) -> dict[str, str]:
        """Wait until the run is paused and its form can be answered; the keys of its input.
        Prefect's pause records the Paused state first and saves the form's schema just after: a
        resume posted in between is refused ("Run input schema not found", with HTTP 200) and the
        run stays paused. The UI draws its form from that schema, so it never answers sooner."""
        run = self.wait(run_id, ("PAUSED",))
        keyset = run["state"]["state_details"]["run_input_keyset"]
        assert keyset, self.stuck(run, "paused without asking for input")
        deadline = time.monotonic() + timeout
        while self.http.get(f"/flow_runs/{run_id}/input/{keyset['schema']}").status_code != 200:
            assert time.monotonic() < deadline, self.stuck(run, f"has not saved its form within {timeout:g} s")
            time.sleep(0.2)
        return dict(keyset)

    def resume(self, run_id: str, run_input: dict[str, str]) -> None:
        """Answer the paused run's form, as the UI does; Prefect must accept it (it answers HTTP
        200 whether it resumes the run or not)."""
        r = self.http.post(f"/flow_runs/{run_id}/resume", json={"run_input": run_input})
        assert r.status_code in (200, 201), r.text
        assert r.json()["status"] == "ACCEPT", self.stuck(self.run(run_id), f"was not resumed: {r.json()}")


FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def keep_months_until(ws: Path, end: str) -> None:
    """The warehouse as if the months from ``end`` on had not arrived yet."""
    con = duckdb.connect(str(ws / ".modelcycle" / "warehouse.duckdb"))
    try:
        con.execute("DELETE FROM rides WHERE pickup_datetime >= CAST(? AS TIMESTAMP)", [end])
    finally:
        con.close()


def test_schedule_idempotent_runs_and_fresh_data(cli_champion_ws: Path, tmp_path: Path) -> None:
    ws = cli_champion_ws  # 2014-12 processed: v1 is the champion
    keep_months_until(ws, "2015-02-01")  # 2015-01 is complete, 2015-02 has not arrived
    with longlived.prefect_server(tmp_path / "prefect") as url:
        api = Api(url)
        t0 = time.monotonic()
        done = longlived.cli(url, ws, "deploy", "--interval", "20s")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "modelcycle-cycle/taxifare" in done.stdout and "every 20s" in done.stdout
        listed = longlived.cli(url, ws, "deploy", "--list")
        assert "taxifare" in listed.stdout and str(ws) in listed.stdout.replace("\n", "")
        deployment = api.deployment()
        assert deployment["parameters"] == {"workspace": str(ws.resolve())}
        until(lambda: api.runs(deployment["id"]), 60, "the scheduler to schedule a run")
        versions_before = len(registry(ws).list_versions("taxifare"))

        worker = longlived.start_worker(url, ws, "--check-every", "2")
        try:
            # the scheduled runs: the first processes 2015-01, the later ones find nothing to do
            until(lambda: "modelcycle/taxifare/2015-01" in tags(ws), 240, "the scheduled run of 2015-01")
            print(f"{time.monotonic() - t0:.0f} s: 2015-01 processed")
            assert "window: 2015-01" in (ws / "params.yaml").read_text()
            ran = [r for r in api.runs(deployment["id"]) if r["name"] == "2015-01"]
            assert ran and ran[0]["parameters"].get("window") in (None, "2015-01")
            def decided_2015_01() -> list[dict[str, Any]]:
                lines = (ws / ".modelcycle" / "notifications.log").read_text().splitlines()
                return [e for e in map(json.loads, lines) if e["window"] == "2015-01" and e["kind"] == "decision"]

            said = until(decided_2015_01, 60, "the decision on 2015-01 in the decision log")
            assert said[-1]["flow_run_name"] == "2015-01"  # not "next", the name it started with

            # schedules off: fresh data only (the same deployment, updated)
            done = longlived.cli(url, ws, "deploy")
            assert done.returncode == 0 and "fresh data only" in done.stdout, done.stdout + done.stderr
            assert api.deployment()["schedules"] == []
            until(lambda: all(r["state_type"] in FINAL for r in api.runs(deployment["id"])), 180,
                  "the runs that were due to end")
            ended = api.runs(deployment["id"])
            assert {r["state_type"] for r in ended} == {"COMPLETED"}, [(r["name"], r["state_name"]) for r in ended]
            # the runs after the first found 2015-02 missing from the source and did nothing
            # (the watcher announced 2015-01 too: that run found it processed)
            assert all(r["name"] in ("2015-01", "2015-01: nothing to do", "next: nothing to do") for r in ended), \
                [r["name"] for r in ended]
            print(f"{time.monotonic() - t0:.0f} s: {len(ended)} runs ended")

            # a second run of the processed window: a no-op that says so
            state = (tags(ws), commits(ws), len(registry(ws).list_versions("taxifare")))
            assert state[2] == versions_before + 1
            again = api.start(deployment["id"], "2015-01")
            api.wait(again, ("COMPLETED",))
            until(lambda: "2015-01 was processed already" in api.logs(again), 30, "the run's log")
            print(f"{time.monotonic() - t0:.0f} s: the second run of 2015-01 did nothing")
            assert (tags(ws), commits(ws), len(registry(ws).list_versions("taxifare"))) == state

            # fresh data: a month appended to the warehouse starts its cycle by itself
            from modelcycle.examples.taxifare.simulator import append_month

            appended_at = time.monotonic()
            month, rows = append_month(ws / ".modelcycle" / "warehouse.duckdb", rows_per_month=ROWS)
            assert month == "2015-02" and rows == ROWS

            def notified() -> bool:
                log = ws / ".modelcycle" / "notifications.log"
                last = json.loads(log.read_text().splitlines()[-1])
                return bool(last["window"] == "2015-02" and last["kind"] == "decision")

            until(notified, 180, "the decision on the appended month")
            took = time.monotonic() - appended_at
            assert "modelcycle/taxifare/2015-02" in tags(ws)
            print(f"appended -> decided and notified in {took:.1f} s")
            triggered = [r for r in api.runs(deployment["id"]) if r["name"] == "2015-02"]
            assert triggered and triggered[0]["parameters"]["window"] == "2015-02"
        finally:
            code, out = longlived.stop_worker(worker)
        assert code == 0, out
        assert "worker stopped" in out and "2015-02 is complete: announced" in out
        logs = list((ws.resolve() / ".modelcycle" / "workers").glob("*.log"))  # the worker's own log, named after it
        assert len(logs) == 1 and f"(its log: {logs[0]})" in out, (logs, out)
        assert "stopped!" in logs[0].read_text()  # Prefect's worker ended too

        done = longlived.cli(url, ws, "deploy", "--delete")
        assert done.returncode == 0 and "deleted" in done.stdout
        assert "no deployment" in longlived.cli(url, ws, "deploy", "--list").stdout


def _set(ws: Path, key: str, value: str) -> None:
    path = ws / "modelcycle.yaml"
    text, n = re.subn(rf"^(\s+{key}:) .*$", rf"\1 {value}", path.read_text(), count=1, flags=re.M)
    assert n == 1, key
    path.write_text(text)


def test_an_escalation_waits_for_a_human(cli_champion_ws: Path, tmp_path: Path) -> None:
    ws = cli_champion_ws
    _set(ws, "threshold", "0.5")  # no model meets it: every cycle escalates
    text = (ws / "modelcycle.yaml").read_text() + "automation:\n  approval_timeout_minutes: 5\n"
    (ws / "modelcycle.yaml").write_text(text)
    subprocess.run(["git", "commit", "-qam", "an unreachable threshold"], cwd=ws, check=True)
    with longlived.prefect_server(tmp_path / "prefect") as url:
        api = Api(url)
        assert longlived.cli(url, ws, "deploy").returncode == 0
        dep = api.deployment()["id"]
        reg = registry(ws)
        # no watcher: it would start the cycle of the next complete month by itself (2015-03 once
        # 2015-02 is decided), and that run, paused for its human, would hold the workspace
        # while the run this test starts for the same month waits behind it
        worker = longlived.start_worker(url, ws, "--no-watch")
        try:
            # approved on the command line: promoted through the cycle's own transaction
            run = api.start(dep, "2015-01")
            api.paused(run)
            pending = longlived.cli(url, ws, "pending")
            assert "2015-01" in pending.stdout and run in pending.stdout, pending.stdout + pending.stderr
            keys = api.http.post(f"/flow_runs/{run}/input/filter", json={"prefix": "paused-", "limit": 10})
            schema = [k for k in keys.json() if k["key"].endswith("-schema")]  # what the UI draws its form from
            assert schema and "approve the challenger" in schema[0]["value"]
            described = [k for k in keys.json() if k["key"].endswith("-description")]
            assert described and "champion (v1) MAE" in described[0]["value"]
            answered = longlived.cli(url, ws, "approve", "2015-01", "--by", "ana", "-m", "checked the rows")
            assert answered.returncode == 0, answered.stdout + answered.stderr
            api.wait(run, ("COMPLETED",))
            champion = reg.get_alias("taxifare", "champion")
            assert champion is not None and champion.version == "2"
            tagged = reg.get_run(champion.run_id).tags
            assert (tagged["modelcycle.approval"], tagged["modelcycle.approval.by"]) == ("approved", "ana")
            assert tagged["modelcycle.approval.comment"] == "checked the rows"
            events = [json.loads(line) for line in (ws / ".modelcycle/notifications.log").read_text().splitlines()]
            assert [e["kind"] for e in events[-2:]] == ["pending", "decision"]
            assert events[-1]["outcome"] == "promote"
            assert any("approved by ana: checked the rows" in r for r in events[-1]["reasons"])
            from modelcycle.registry import history

            moved = history.last(history.moves(reg, "taxifare"), "champion")
            assert moved is not None and moved.after == "2" and moved.who == "ana"

            # rejected on the command line: the champion stays
            run = api.start(dep, "2015-02")
            api.paused(run)
            assert longlived.cli(url, ws, "reject", "2015-02", "--by", "bo").returncode == 0
            api.wait(run, ("COMPLETED",))
            assert reg.get_alias("taxifare", "champion").version == "2"
            last = json.loads((ws / ".modelcycle/notifications.log").read_text().splitlines()[-1])
            assert last["outcome"] == "keep" and any("rejected by bo" in r for r in last["reasons"])

            # answered through the API, as the Prefect UI's form does
            run = api.start(dep, "2015-03")
            api.paused(run)  # the form is ready, as it is when the UI shows it
            api.resume(run, {"decision": "approve the challenger", "comment": "from the form", "by": "ui user"})
            api.wait(run, ("COMPLETED",))
            promoted = reg.get_alias("taxifare", "champion")
            assert promoted is not None and promoted.version not in ("1", "2")
            assert reg.get_run(promoted.run_id).tags["modelcycle.approval.by"] == "ui user"

            # nobody answers: the timeout keeps the champion
            _set(ws, "approval_timeout_minutes", "0.1")
            run = api.start(dep, "2015-04")
            api.wait(run, ("COMPLETED",), timeout=240)
            assert reg.get_alias("taxifare", "champion").version == promoted.version
            last = json.loads((ws / ".modelcycle/notifications.log").read_text().splitlines()[-1])
            assert last["outcome"] == "keep" and any("no answer within" in r for r in last["reasons"])
            assert "no cycle waits" in longlived.cli(url, ws, "pending").stdout
        finally:
            code, out = longlived.stop_worker(worker)
        assert code == 0, out
