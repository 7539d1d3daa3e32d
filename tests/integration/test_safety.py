"""Real commands in real processes: two cycles at once, a doctor during a live cycle, kills and
interrupts at side-effect boundaries. Each command is `modelcycle` in its own process group with
its own Prefect server, as a user's terminal would run it."""

from __future__ import annotations

import json
import shutil
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelcycle.lifecycle import lock

pytestmark = [pytest.mark.slow]

EXE = str(Path(sys.executable).with_name("modelcycle"))
DVC = str(Path(sys.executable).with_name("dvc"))


def start(ws: Path, *args: str, trace: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(ws / ".modelcycle" / "prefect")
    if trace:
        env["MODELCYCLE_TRACE_SIGNAL"] = trace
    return subprocess.Popen([EXE, "-w", str(ws), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def cli(ws: Path, *args: str, trace: str | None = None) -> tuple[int, str]:
    return finish(start(ws, *args, trace=trace))


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=True).stdout.strip()


def wait_for_lock(ws: Path, timeout: float = 120) -> lock.Holder:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = lock.holder(ws)
        if holder is not None:
            return holder
        time.sleep(0.1)
    raise AssertionError("the first command never took the workspace lock")


def picture(ws: Path) -> dict:
    """What a consistent workspace looks like from outside: git, the registry, the runs."""
    db = sqlite3.connect(ws / ".modelcycle" / "mlflow.db")
    versions = sorted(r[0] for r in db.execute(  # MLflow's SQL store deletes a version by marking it
        "SELECT version FROM model_versions WHERE current_stage != 'Deleted_Internal'"))
    aliases = dict(db.execute("SELECT alias, version FROM registered_model_aliases").fetchall())
    running = db.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]
    db.close()
    return {"head": git(ws, "rev-parse", "HEAD"), "branch": git(ws, "symbolic-ref", "--short", "HEAD"),
            "tags": sorted(git(ws, "tag").split()), "versions": versions, "aliases": aliases,
            "running": running, "journal": (ws / ".modelcycle/journal.json").exists(),
            "dirty": git(ws, "status", "--porcelain", "--untracked-files=no")}


def flow_runs(ws: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(ws / ".modelcycle" / "prefect" / "prefect.db")
    try:
        return db.execute("SELECT name, state_type FROM flow_run ORDER BY created").fetchall()
    finally:
        db.close()


def dvc_clean(ws: Path) -> bool:
    proc = subprocess.run([DVC, "status"], cwd=ws, capture_output=True, text=True)
    return proc.returncode == 0 and "up to date" in proc.stdout.lower()


@pytest.fixture
def with_champion(cli_champion_ws: Path) -> Path:
    """A workspace whose first cycle (2014-12) `modelcycle run` ran in its own process (built
    once per test run, copied for each test: see tests/integration/conftest.py)."""
    return cli_champion_ws


def test_two_runs_at_once_wait_for_each_other_and_keep_their_own_windows(with_champion: Path) -> None:
    ws = with_champion
    first = start(ws, "run", "--window", "2015-01")
    holder = wait_for_lock(ws)
    assert holder.pid == first.pid and "run --window 2015-01" in holder.command

    code, out = cli(ws, "run", "--window", "2015-02", "--no-wait")
    assert code == 2 and "is busy" in out and f"pid {first.pid}" in out and "2015-01" in out, out

    code, out = cli(ws, "doctor", "--no-wait")  # a doctor never touches a live cycle
    assert code == 2 and "is busy" in out, out

    second = start(ws, "run", "--window", "2015-02")
    code1, out1 = finish(first)
    code2, out2 = finish(second)
    assert code1 == 0, out1
    assert code2 == 0, out2
    assert "waiting:" in out2 and "2015-01" in out2
    for window in ("2015-01", "2015-02"):
        params = git(ws, "show", f"modelcycle/taxifare/{window}:params.yaml")
        assert f"window: {window}" in params, params
    p = picture(ws)
    assert p["running"] == 0 and not p["journal"] and p["dirty"] == ""


def test_a_finished_command_leaves_every_task_run_and_state_in_prefects_history(with_champion: Path) -> None:
    """The local server holds task runs, their states and events until it stops: the command's
    exit must wait for them to be written."""
    db = sqlite3.connect(with_champion / ".modelcycle" / "prefect" / "prefect.db")
    try:
        (cycle_run,) = db.execute("SELECT id FROM flow_run WHERE name = '2014-12'").fetchone()
        runs = dict(db.execute("SELECT id, name FROM task_run WHERE flow_run_id = ?", (cycle_run,)).fetchall())
        states: dict[str, set[str]] = {}
        for task_run_id, state_type in db.execute("SELECT task_run_id, type FROM task_run_state"):
            states.setdefault(task_run_id, set()).add(state_type)
        completed = db.execute("SELECT count(*) FROM events WHERE event = 'prefect.task-run.Completed' "
                               "AND resource_id IN (SELECT 'prefect.task-run.' || id FROM task_run "
                               "WHERE flow_run_id = ?)", (cycle_run,)).fetchone()[0]
    finally:
        db.close()
    names = {name.rsplit("-", 1)[0] for name in runs.values()}
    assert {"fetch", "validate", "prepare", "train-challenger", "evaluate-challenger", "decide",
            "version-data-and-model", "register-challenger", "move-champion-alias"} <= names, names
    missing = {runs[r]: sorted(states.get(r, ())) for r in runs
               if not {"PENDING", "RUNNING", "COMPLETED"} <= states.get(r, set())}
    assert not missing, missing
    assert completed == len(runs)


def test_sigkill_right_after_the_registry_answered_leaves_no_orphan_version(with_champion: Path) -> None:
    ws = with_champion
    before = picture(ws)
    code, out = cli(ws, "run", "--window", "2015-03", trace="registry:registered:KILL")
    assert code == -signal.SIGKILL, out
    half = picture(ws)
    assert half["journal"] and len(half["versions"]) == len(before["versions"]) + 1  # the orphan
    assert ("2015-03", "RUNNING") in flow_runs(ws)

    code, out = cli(ws, "doctor")
    assert code == 0, out
    assert "rolled back" in out and "model version" in out, out
    assert picture(ws) == before
    assert dvc_clean(ws)
    assert ("2015-03", "CRASHED") in flow_runs(ws)
    assert not [r for r in flow_runs(ws) if r[1] in ("RUNNING", "PENDING")]

    code, out = cli(ws, "run", "--window", "2015-03")
    assert code == 0, out
    after = picture(ws)
    assert after["tags"] == sorted([*before["tags"], "modelcycle/taxifare/2015-03"])
    assert len(after["versions"]) == len(before["versions"]) + 1  # one version per tag


@pytest.mark.parametrize("trace,code,word", [
    ("cycle:training:INT", 130, "interrupted (Ctrl-C)"),
    ("before:register:TERM", 143, "terminated (SIGTERM)"),
])
def test_an_interrupt_rolls_back_and_says_so(with_champion: Path, trace: str, code: int, word: str) -> None:
    ws = with_champion
    before = picture(ws)
    got, out = cli(ws, "run", "--window", "2015-03", trace=trace)
    assert got == code, out
    assert word in out and "rolled back" in out, out
    assert "Traceback" not in out and "unexpected error" not in out, out
    assert picture(ws) == before
    assert dvc_clean(ws)
    assert not [r for r in flow_runs(ws) if r[1] in ("RUNNING", "PENDING")], flow_runs(ws)
    log = [json.loads(x) for x in (ws / ".modelcycle/notifications.log").read_text().splitlines()]
    assert log[-1]["window"] == "2014-12"  # an interrupt is not announced as a decision


def test_a_copied_workspace_is_its_own_and_survives_the_original(with_champion: Path, tmp_path: Path) -> None:
    """MLflow stores absolute artifact locations: a copy used to write into the original, and to
    fail to load its models once the original was gone. The copy now repoints its own store."""
    copy = tmp_path / "elsewhere" / "ws2"
    shutil.copytree(with_champion, copy, symlinks=True)
    shutil.rmtree(with_champion)
    rides = copy / "rides.csv"

    from modelcycle.config import Workspace
    from modelcycle.lifecycle import datasets

    holdout = datasets.rows(Workspace.load(copy), "holdout")
    holdout.head(5).drop(columns=["fare_amount"]).to_csv(rides, index=False)
    code, out = cli(copy, "predict", str(rides))
    assert code == 0, out
    assert len([line for line in out.splitlines() if line.count(",") >= 6]) >= 6, out
    code, out = cli(copy, "run", "--window", "2015-01")
    assert code == 0, out
    db = sqlite3.connect(copy / ".modelcycle" / "mlflow.db")
    locations = [r[0] for r in db.execute("SELECT artifact_location FROM experiments WHERE name = 'taxifare'")]
    sources = [r[0] for r in db.execute("SELECT source FROM model_versions")]
    db.close()
    own = (copy / ".modelcycle" / "mlartifacts").resolve().as_uri()
    assert all(loc.startswith(own) for loc in locations), locations
    assert all(src.startswith(own) for src in sources), sources
    code, out = cli(copy, "doctor")
    assert code == 0, out


def test_runs_a_killed_process_left_open_are_closed_by_the_next_run(with_champion: Path) -> None:
    """Killed after its journal ended (the cycle committed and was announced), the process still
    leaves its Prefect flow run RUNNING: the next run closes it by the process tag it carries."""
    ws = with_champion
    code, out = cli(ws, "run", "--window", "2015-01", trace="cycle:notified:KILL")
    assert code == -signal.SIGKILL, out
    assert ("2015-01", "RUNNING") in flow_runs(ws)
    assert not (ws / ".modelcycle/journal.json").exists()
    code, out = cli(ws, "run", "--window", "2015-02")
    assert code == 0, out
    assert ("2015-01", "CRASHED") in flow_runs(ws)
    assert not [r for r in flow_runs(ws) if r[1] in ("RUNNING", "PENDING")], flow_runs(ws)
    assert picture(ws)["running"] == 0
