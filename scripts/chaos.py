"""Kill real cycles at every side-effect boundary and at random times, then check the workspace.

Each trial copies a small workspace that already has a champion, starts ``modelcycle run`` in
its own process group, and stops it with a signal:

* at a named point (the process sends the signal to itself when it reaches the point, through
  ``MODELCYCLE_TRACE_SIGNAL``; SIGINT goes to the whole process group, as a terminal's Ctrl-C);
* or at a random time after the start.

Then it repairs the workspace the way a user would (``modelcycle doctor`` on even trials, the
next ``modelcycle run`` on odd ones) and checks, from outside, with git, DVC and the backends'
databases:

* the champion alias points to a version whose git tag, commit and DVC objects exist;
* git tags and model versions match one to one;
* HEAD is on its branch, at the newest version's commit; ``dvc status`` is clean;
* no lock is held, no journal is left, no MLflow run or Prefect flow run is still RUNNING;
* no process of the stopped command is left;
* the next cycle succeeds.

It prints a table of kill point x trials x consistent per signal, and writes it as JSON.

    .venv/bin/python scripts/chaos.py                     # every point, each signal, + random times
    .venv/bin/python scripts/chaos.py --signals KILL --random 5 --points cycle:trained,did:register
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BIN = Path(sys.executable).parent
MODELCYCLE = str(BIN / "modelcycle")
DVC = str(BIN / "dvc")
NAME = "taxifare"

POINTS = [
    "cycle:started", "cycle:fetched", "cycle:training", "cycle:trained", "cycle:decided",
    "before:commit", "versioning:dvc-committed", "versioning:git-committed", "versioning:tagged",
    "versioning:pushed", "did:commit", "before:register", "registry:registered", "did:register",
    "before:alias:challenger", "did:alias:challenger", "before:alias:champion", "did:alias:champion",
    "after:alias:champion", "cycle:committed", "cycle:tracked", "cycle:notified",
]
WINDOW = "2015-03"  # the fare change: the challenger is promoted, so every side effect happens


def env_for(ws: Path, trace: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MODELCYCLE_TRACE_SIGNAL")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true",
               COLUMNS="200")
    if trace:
        env["MODELCYCLE_TRACE_SIGNAL"] = trace
    return env


def start(ws: Path, *args: str, trace: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([MODELCYCLE, "-w", str(ws), *args], env=env_for(ws, trace), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def run(ws: Path, *args: str, timeout: float = 600) -> tuple[int, str]:
    proc = start(ws, *args)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def git(ws: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=check).stdout.strip()


# -- the template -------------------------------------------------------------------------


def make_template(root: Path, rows: int) -> Path:
    ws = root / "template"
    proc = subprocess.run([MODELCYCLE, "init", str(ws), "--example", "taxifare", "--rows-per-month", str(rows)],
                          env=env_for(ws), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"init failed:\n{proc.stdout}{proc.stderr}")
    params = ws / "params.yaml"
    params.write_text(re.sub(r"n_estimators: \d+", "n_estimators: 60", params.read_text()))
    git(ws, "commit", "-q", "-m", "fewer trees for the chaos trials", "--", "params.yaml")
    code, out = run(ws, "run", "--window", "2014-12")
    if code != 0:
        raise SystemExit(f"the first cycle failed:\n{out}")
    return ws


# -- what a consistent workspace is ------------------------------------------------------------


def versions(ws: Path) -> list[dict]:
    db = sqlite3.connect(ws / ".modelcycle" / "mlflow.db")
    try:
        rows = db.execute("SELECT version FROM model_versions WHERE name = ? AND current_stage != 'Deleted_Internal'",
                          (NAME,)).fetchall()
        out = []
        for (version,) in rows:
            tags = dict(db.execute("SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?",
                                   (NAME, version)).fetchall())
            out.append({"version": int(version), **tags})
        aliases = dict(db.execute("SELECT alias, version FROM registered_model_aliases WHERE name = ?",
                                  (NAME,)).fetchall())
        running = db.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]
    finally:
        db.close()
    return sorted(out, key=lambda v: v["version"]), aliases, running


def flow_runs_open(ws: Path) -> int:
    db = sqlite3.connect(ws / ".modelcycle" / "prefect" / "prefect.db")
    try:
        return db.execute("SELECT count(*) FROM flow_run WHERE state_type IN ('RUNNING', 'PENDING')").fetchone()[0]
    finally:
        db.close()


def cached_outputs(ws: Path, commit: str) -> dict[str, str]:
    """``{path: md5}`` of the DVC-cached outputs ``dvc.lock`` records at ``commit``."""
    import yaml

    spec = yaml.safe_load(git(ws, "show", f"{commit}:dvc.yaml")) or {}
    uncached = {p for st in (spec.get("stages") or {}).values() for key in ("outs", "metrics", "plots")
                for item in st.get(key) or [] if isinstance(item, dict)
                for p, opts in item.items() if (opts or {}).get("cache") is False}
    lock = yaml.safe_load(git(ws, "show", f"{commit}:dvc.lock")) or {}
    return {o["path"]: o["md5"] for st in (lock.get("stages") or {}).values() for o in st.get("outs") or []
            if o.get("md5") and o["path"] not in uncached}


def dvc_objects_exist(ws: Path, commit: str) -> bool:
    cache = ws / ".dvc" / "cache" / "files" / "md5"
    for md5 in cached_outputs(ws, commit).values():
        path = cache / md5[:2] / md5[2:]
        if not path.exists():
            return False
        if md5.endswith(".dir"):
            for entry in json.loads(path.read_text()):
                h = entry["md5"]
                if not (cache / h[:2] / h[2:]).exists():
                    return False
    return True


def lock_free(ws: Path) -> bool:
    path = ws / ".modelcycle" / "lock"
    if not path.exists():
        return True
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
    return True


def leftovers(ws: Path) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            home = proc.environ().get("PREFECT_HOME", "") if "uvicorn" in cmd else ""
            if str(ws) in cmd or (proc.info["cwd"] or "").startswith(str(ws)) or home.startswith(str(ws)):
                found.append(f"{proc.info['pid']}: {cmd[:120]}")
        except psutil.Error:
            continue
    return found


def problems(ws: Path) -> list[str]:
    out: list[str] = []
    vs, aliases, running = versions(ws)
    tags = sorted(t for t in git(ws, "tag").split() if t.startswith(f"modelcycle/{NAME}/"))
    by_tag = [v.get("git_tag") for v in vs]
    if sorted(by_tag) != tags or len(set(by_tag)) != len(by_tag):
        out.append(f"tags and versions differ: tags {tags}, versions' tags {by_tag}")
    champion = aliases.get("champion")
    mv = next((v for v in vs if str(v["version"]) == str(champion)), None)
    if mv is None:
        out.append(f"the champion alias points at {champion}, which is not a live version")
    else:
        tag_commit = git(ws, "rev-parse", "-q", "--verify", f"{mv.get('git_tag')}^{{commit}}", check=False)
        if not tag_commit or tag_commit != mv.get("git_commit"):
            out.append(f"the champion's tag {mv.get('git_tag')} does not point at its commit")
        elif not dvc_objects_exist(ws, tag_commit):
            out.append("the champion's DVC objects are missing from the cache")
    if git(ws, "symbolic-ref", "-q", "HEAD", check=False) == "":
        out.append("HEAD is detached")
    newest = vs[-1] if vs else None
    if newest is not None and git(ws, "rev-parse", "HEAD") != newest.get("git_commit"):
        out.append(f"HEAD is not the newest version's commit (v{newest['version']})")
    status = subprocess.run([DVC, "status"], cwd=ws, capture_output=True, text=True, env=env_for(ws))
    if status.returncode != 0 or "up to date" not in status.stdout.lower():
        out.append("dvc status is not clean: " + " ".join(status.stdout.split())[:200])
    if git(ws, "status", "--porcelain", "--untracked-files=no"):
        out.append("git status is not clean: " + git(ws, "status", "--porcelain", "--untracked-files=no")[:200])
    if not lock_free(ws):
        out.append("the workspace lock is held")
    if (ws / ".modelcycle" / "journal.json").exists():
        out.append("a journal is left")
    if running:
        out.append(f"{running} MLflow run(s) still RUNNING")
    open_runs = flow_runs_open(ws)
    if open_runs:
        out.append(f"{open_runs} Prefect flow run(s) still RUNNING or PENDING")
    return out


# -- one trial -----------------------------------------------------------------------------


def cycle_seconds(template: Path, root: Path) -> float:
    """How long an uninterrupted cycle takes here (random signals fall inside it)."""
    ws = root / "calibrate"
    shutil.copytree(template, ws, symlinks=True)
    started = time.monotonic()
    code, out = run(ws, "run", "--window", WINDOW)
    if code != 0:
        raise SystemExit(f"an uninterrupted cycle failed:\n{out}")
    shutil.rmtree(ws, ignore_errors=True)
    return time.monotonic() - started


def trial(template: Path, root: Path, n: int, sig: str, point: str | None, rng: random.Random,
          span: float) -> dict:
    ws = root / f"trial-{n}"
    shutil.copytree(template, ws, symlinks=True)
    started = time.monotonic()
    if point:
        proc = start(ws, "run", "--window", WINDOW, trace=f"{point}:{sig}")
        out, _ = proc.communicate(timeout=600)
        delay = None
    else:
        proc = start(ws, "run", "--window", WINDOW)
        delay = rng.uniform(0.3, span)
        try:
            out, _ = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            signum = getattr(signal, f"SIG{sig}")
            if signum == signal.SIGINT:
                os.killpg(proc.pid, signum)
            else:
                os.kill(proc.pid, signum)
            out, _ = proc.communicate(timeout=600)
    code = proc.returncode
    deadline = time.monotonic() + 15  # the Prefect server ends when its parent does, shutting down cleanly
    while (left := leftovers(ws)) and time.monotonic() < deadline:
        time.sleep(0.5)
    repair = "doctor" if n % 2 == 0 else "next run"
    found: list[str] = []
    if left:
        found.append(f"leftover processes: {left}")
    if repair == "doctor":
        dcode, dout = run(ws, "doctor")
        if dcode != 0:
            found.append(f"doctor exited {dcode}: {dout[-400:]}")
        found += problems(ws)
    ncode, nout = run(ws, "run", "--window", WINDOW)
    if ncode != 0:
        found.append(f"the next cycle failed ({ncode}): {nout[-600:]}")
    found += problems(ws)
    result = {"trial": n, "signal": sig, "point": point or "random", "delay": delay, "exit": code,
              "repair": repair, "consistent": not found, "problems": found,
              "seconds": round(time.monotonic() - started, 1), "said": out.strip().splitlines()[-1:] if out else []}
    shutil.rmtree(ws, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", default="KILL,INT,TERM", help="signals to send (KILL, INT, TERM)")
    ap.add_argument("--points", default=",".join(POINTS), help="named points, comma-separated")
    ap.add_argument("--per-point", type=int, default=1, help="trials per named point and signal")
    ap.add_argument("--random", type=int, default=8, help="trials at random times per signal")
    ap.add_argument("--rows", type=int, default=1000, help="simulated rides per month")
    ap.add_argument("--span", type=float, default=None,
                    help="random signals fall within this many seconds after the start (default: "
                         "0.9 x an uninterrupted cycle, measured first)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=Path("chaos-results.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="modelcycle-chaos-"))
    print(f"workspaces under {root}", flush=True)
    template = make_template(root, args.rows)
    if args.span is None:
        took = cycle_seconds(template, root)
        span = 0.9 * took  # the last tenth is the notification and the exit: little to stop there
        print(f"an uninterrupted cycle takes {took:.1f} s: random signals fall within its first {span:.1f} s",
              flush=True)
    else:
        span = args.span
    plan = [(sig, point) for sig in args.signals.split(",") for point in args.points.split(",")
            for _ in range(args.per_point)]
    plan += [(sig, None) for sig in args.signals.split(",") for _ in range(args.random)]
    results = []
    for n, (sig, point) in enumerate(plan):
        r = trial(template, root, n, sig, point, rng, span)
        results.append(r)
        mark = "ok" if r["consistent"] else "INCONSISTENT"
        print(f"[{n + 1}/{len(plan)}] SIG{sig:<4} {r['point']:<26} exit {r['exit']:>4}  {r['repair']:<8} "
              f"{mark} ({r['seconds']} s)" + ("" if r["consistent"] else f"\n    {r['problems']}"), flush=True)
    table: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r in results:
        table[(r["signal"], r["point"])].append(r["consistent"])
    print("\nsignal  kill point                 trials  consistent")
    print("-" * 52)
    for (sig, point), oks in table.items():
        print(f"SIG{sig:<4} {point:<26} {len(oks):>6}  {sum(oks):>10}")
    total, good = len(results), sum(r["consistent"] for r in results)
    print("-" * 52)
    for sig in args.signals.split(","):
        mine = [r for r in results if r["signal"] == sig]
        print(f"SIG{sig}: {sum(r['consistent'] for r in mine)}/{len(mine)} consistent")
    print(f"all: {good}/{total} consistent ({good / total:.0%})   goal 100%   {'ok' if good == total else 'MISSED'}")
    args.json.write_text(json.dumps(results, indent=1))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
