"""Feed modelcycle every bad input users have reported, and check what it says back.

Each case copies a small workspace (or builds the input it needs), runs the real command line
as a subprocess in its own process group, and judges the answer:

* **clear**: the command stopped (exit code neither 0 nor 70), printed no traceback and no
  "unexpected error", its message names what is wrong (the key, column, file, URL or value the
  case says it must name), and, where the case says so, the workspace is as it was (git HEAD,
  branch, tags, tracked files' status, the registry's aliases);
* **accepted**: the input is one modelcycle is meant to take (a bad cell in one row is dropped
  and counted, a warning is printed, an uncommitted edit is committed with the cycle ...): the
  command exited 0 and the case's check of what it reported passed;
* **MISREPORTED**: anything else (the notes say what was wrong);
* **skipped**: the case needs what this machine does not give (root, to mount a file system).

Some cases accept either answer (``either``): a clear refusal, or exit 0 with the case's check.

The workspaces:

* ``base``: ``modelcycle init base --example taxifare --rows-per-month 1000`` with
  ``n_estimators: 40`` committed, and one cycle (2014-12), so a champion (v1) exists;
* ``own``: CSV files of house sales (``sold_at, size_m2, rooms, district, price``, 2024-01 to
  2024-06, 200 rows a month) in ``own/data/``, and ``modelcycle init own/ws --source 'data/*.csv'``;
* ``fresh``: a new ``init --example taxifare`` with no cycle;
* ``none``: no workspace (``init`` itself, or a folder outside any workspace).

Each case works on its own copy (``shutil.copytree``), so cases do not see each other.

    .venv/bin/python scripts/bad_inputs.py                        # every case (about 8 minutes on 2 cores)
    .venv/bin/python scripts/bad_inputs.py --only cfg-misspelt-key,data-text-one-day --keep
    .venv/bin/python scripts/bad_inputs.py --json bad-inputs.json
"""

from __future__ import annotations

import argparse
import json
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
MODELCYCLE = str(BIN / "modelcycle")
PYTHON = sys.executable
SRC = Path(__file__).resolve().parents[1] / "src"
NAME = "taxifare"
PASSWORD = "Hunter2Secret"  # a literal password some cases write into URLs: it must never be echoed
TIMEOUT = 600.0


# -- running the command line ------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    drop = {"PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MODELCYCLE_DVC_REMOTE",
            "MODELCYCLE_TRACE_SIGNAL", "MODELCYCLE_SOURCE_PASSWORD", "WAREHOUSE_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + path if path and str(SRC) not in path.split(os.pathsep) else "")
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true",
               COLUMNS="200", NO_COLOR="1", TERM="dumb")
    env.update(extra or {})
    return env


@dataclass
class Res:
    code: int | str  # the exit code, or "timeout"
    out: str
    err: str
    argv: list[str]
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return self.out + "\n" + self.err


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([MODELCYCLE, *args], cwd=cwd, env=child_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def finish(proc: subprocess.Popen[str], args: list[str], started: float, timeout: float = TIMEOUT) -> Res:
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        code = "timeout"
    _kill_group(proc.pid)  # whatever it left in its group (a local Prefect server)
    return Res(code, out or "", err or "", ["modelcycle", *args], round(time.monotonic() - started, 1))


def mc(args: list[str], cwd: Path, timeout: float = TIMEOUT) -> Res:
    started = time.monotonic()
    return finish(start(args, cwd), args, started, timeout)


def git(ws: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=check).stdout.strip()


_HEADS = ("error:", "unexpected error:", "interrupted", "terminated", "usage:")


def message_of(res: Res, where: str = "stderr") -> str:
    """The message the words must be in: stderr from its first error line on (progress lines
    before it do not count), or, with ``where="all"``, stdout and stderr (doctor reports on stdout)."""
    if where == "all":
        return res.text
    lines = res.err.splitlines()
    for i, ln in enumerate(lines):
        if ln.strip().lower().startswith(_HEADS):
            return "\n".join(lines[i:])
    return res.err


def first_error_line(res: Res, headline: str | None = None) -> str:
    """The first line starting with "error:" (or the first line of a usage error's box, or the
    first non-empty line) of stderr, else of stdout; with ``headline``, the first line of either
    matching that regular expression."""
    if headline:
        for stream, label in ((res.err, ""), (res.out, "(stdout) ")):
            for ln in stream.splitlines():
                if re.search(headline, ln):
                    return label + ln.strip()
    for stream, label in ((res.err, ""), (res.out, "(stdout) ")):
        lines = [ln.strip() for ln in stream.splitlines() if ln.strip()]
        for ln in lines:
            if ln.lower().startswith(_HEADS[:4]):
                return label + ln
        for i, ln in enumerate(lines[:-1]):
            if ln.startswith("╭─ Error"):
                return label + lines[i + 1].strip("│ ")
        if lines:
            return label + lines[0]
    return ""


# -- what a workspace looks like from outside ------------------------------------------------------


def snapshot(ws: Path) -> dict:
    if not (ws / ".git").exists():
        return {}
    snap = {
        "head": git(ws, "rev-parse", "-q", "--verify", "HEAD", check=False),
        "branch": git(ws, "symbolic-ref", "-q", "HEAD", check=False),
        "tags": sorted(git(ws, "tag").split()),
        "status": git(ws, "status", "--porcelain", "--untracked-files=no", check=False),
    }
    db = ws / ".modelcycle" / "mlflow.db"
    if db.exists():
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                snap["aliases"] = sorted(con.execute(
                    "SELECT name, alias, version FROM registered_model_aliases").fetchall())
                snap["versions"] = sorted(con.execute(
                    "SELECT name, version FROM model_versions WHERE current_stage != 'Deleted_Internal'").fetchall())
            finally:
                con.close()
        except sqlite3.Error as exc:
            snap["aliases"] = f"unreadable: {exc}"
    return snap


def diff_snapshots(before: dict, after: dict) -> list[str]:
    out = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            out.append(f"workspace changed: {key} {before.get(key)!r} -> {after.get(key)!r}"[:300])
    return out


def champion(ws: Path) -> str | None:
    con = sqlite3.connect(f"file:{ws / '.modelcycle' / 'mlflow.db'}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT version FROM registered_model_aliases WHERE alias = 'champion'").fetchone()
    finally:
        con.close()
    return None if row is None else str(row[0])


def last_decision(ws: Path) -> dict:
    path = ws / ".modelcycle" / "notifications.log"
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    return json.loads(lines[-1]) if lines else {}


def validation(ws: Path) -> dict:
    path = ws / "reports" / "validation.json"
    return json.loads(path.read_text()) if path.exists() else {}


# -- the cases -------------------------------------------------------------------------------


class SetupError(Exception):
    pass


@dataclass
class Ctx:
    root: Path  # the run's temporary folder
    dir: Path  # this case's folder
    ws: Path  # this case's workspace (may not exist yet)
    state: dict = field(default_factory=dict)


Words = tuple  # each item: a word, or a tuple of alternatives; all items must be in the message


@dataclass
class Case:
    name: str
    group: str
    what: str  # the bad input, in words
    args: list[str]  # modelcycle's arguments; {ws} {dir} {root} are filled in
    expect: str  # "error" | "ok" | "either"
    words: Words = ()  # what an error message must name
    base: str = "base"  # base | own | fresh | none
    setup: Callable[[Ctx], None] | None = None
    check: Callable[[Ctx, Res], list[str]] | None = None  # problems, whatever the answer
    ok_check: Callable[[Ctx, Res], list[str]] | None = None  # problems when it exited 0
    exits: tuple[int, ...] | None = None  # the exit codes an error must have (default: any but 0/70)
    unchanged: bool = True  # an error leaves git HEAD/branch/tags/status and the aliases as they were
    runner: Callable[[Ctx, Case], Res] | None = None  # runs the command(s) itself
    teardown: Callable[[Ctx], None] | None = None
    cwd: str = "dir"  # dir | ws
    message_in: str = "stderr"  # stderr | all: where the words must appear (doctor reports on stdout)
    headline: str | None = None  # a regular expression picking the line shown in the table
    needs_root: bool = False
    expects: str = ""  # the expectation in words (for the table)

    def describe(self) -> str:
        if self.expects:
            return self.expects
        if self.expect == "error":
            return "error" + (f" (exit {'/'.join(map(str, self.exits))})" if self.exits else "")
        return "exit 0" if self.expect == "ok" else "error or exit 0"


def fill(arg: str, ctx: Ctx) -> str:
    return arg.replace("{ws}", str(ctx.ws)).replace("{dir}", str(ctx.dir)).replace("{root}", str(ctx.root))


# -- setup helpers -----------------------------------------------------------------------------------


def sub(path: Path, old: str, new: str, *, regex: bool = False) -> None:
    text = path.read_text()
    if regex:
        new_text, n = re.subn(old, new, text, count=1, flags=re.M)
    else:
        n = text.count(old)
        new_text = text.replace(old, new, 1)
    if not n:
        raise SetupError(f"{path.name}: {old!r} not found")
    path.write_text(new_text)


def yaml_sub(old: str, new: str, *, regex: bool = False, file: str = "modelcycle.yaml") -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        sub(ctx.ws / file, old, new, regex=regex)
    return setup


def warehouse(ctx: Ctx, *statements: str) -> None:
    import duckdb

    con = duckdb.connect(str(ctx.ws / ".modelcycle" / "warehouse.duckdb"))
    try:
        for stmt in statements:
            con.execute(stmt)
    finally:
        con.close()


def in_month(month: str) -> str:
    y, m = map(int, month.split("-"))
    nxt = f"{y + (m == 12)}-{m % 12 + 1:02d}"
    return f"pickup_datetime >= TIMESTAMP '{month}-01' AND pickup_datetime < TIMESTAMP '{nxt}-01'"


def count_rows(ctx: Ctx, where: str) -> int:
    import duckdb

    con = duckdb.connect(str(ctx.ws / ".modelcycle" / "warehouse.duckdb"), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM rides WHERE {where}").fetchone()[0])
    finally:
        con.close()


def make_sales(folder: Path, *, months: range = range(1, 7), rows: int = 200, seed: int = 0) -> None:
    """House sales, one CSV a month: sold_at, size_m2, rooms, district, price."""
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for m in months:
        start_ = pd.Timestamp(f"2024-{m:02d}-01")
        end = start_ + pd.offsets.MonthBegin(1)
        ts = start_ + pd.to_timedelta(np.sort(rng.uniform(0, (end - start_).total_seconds(), rows)), unit="s")
        size = rng.uniform(30, 150, rows).round(1)
        rooms = rng.integers(1, 6, rows)
        district = rng.choice(["north", "south", "east", "west"], rows)
        price = (3000 * size + 10000 * rooms + np.select([district == "north", district == "south"], [40000, -20000], 0)
                 + rng.normal(0, 15000, rows)).round(0)
        pd.DataFrame({"sold_at": ts.strftime("%Y-%m-%d %H:%M:%S"), "size_m2": size, "rooms": rooms,
                      "district": district, "price": price}).to_csv(folder / f"sales-2024-{m:02d}.csv", index=False)


def csv_edit(ctx: Ctx, month: str, fn: Callable) -> None:
    """Rewrite ``data/sales-<month>.csv`` of the own-data case with ``fn(frame) -> frame`` (all text)."""
    import pandas as pd

    path = ctx.dir / "data" / f"sales-{month}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(frame).to_csv(path, index=False)


def mount(ctx: Ctx, target: Path, options: str, *, fill_from: list[Path] = (), readonly_after: bool = False) -> None:
    """Mount a tmpfs over ``target`` (as root), optionally copy files into it and make it read-only."""
    if os.geteuid() != 0:
        raise SetupError("skipped (needs root)")
    stash = ctx.dir / f"stash-{target.name}"  # the tmpfs hides what the folder held: copy it first
    stash.mkdir()
    for src in fill_from:
        if src.is_dir():
            shutil.copytree(src, stash / src.name, symlinks=True)
        else:
            shutil.copy2(src, stash / src.name)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"skipped (needs root; mount failed: {proc.stderr.strip()[:120]})")
    ctx.state.setdefault("mounts", []).append(target)
    for src in stash.iterdir():
        if src.is_dir():
            shutil.copytree(src, target / src.name, symlinks=True)
        else:
            shutil.copy2(src, target / src.name)
    if readonly_after:
        proc = subprocess.run(["mount", "-o", "remount,ro", str(target)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"skipped (remount read-only failed: {proc.stderr.strip()[:120]})")


def unmount_all(ctx: Ctx) -> None:
    for target in reversed(ctx.state.get("mounts", [])):
        for _ in range(10):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode == 0:
                break
            time.sleep(1)
        else:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
    ctx.state["mounts"] = []


# -- checks -----------------------------------------------------------------------------------------


def no_folder(ctx: Ctx, res: Res) -> list[str]:
    return [f"init left {ctx.ws} behind: {sorted(p.name for p in ctx.ws.iterdir())[:8]}"] if ctx.ws.exists() else []


def password_not_shown(ctx: Ctx, res: Res) -> list[str]:
    return [f"the password '{PASSWORD}' is printed"] if PASSWORD in res.text else []


def not_shown(secret: str) -> Callable[[Ctx, Res], list[str]]:
    def check(ctx: Ctx, res: Res) -> list[str]:
        return [f"the password in '{secret}' is printed"] if secret in res.text else []
    return check


def both(*checks: Callable[[Ctx, Res], list[str]]) -> Callable[[Ctx, Res], list[str]]:
    def check(ctx: Ctx, res: Res) -> list[str]:
        return [p for c in checks for p in c(ctx, res)]
    return check


def dropped_in_report(label_word: str, at_least: Callable[[Ctx], int]) -> Callable[[Ctx, Res], list[str]]:
    """reports/validation.json counts at least N dropped window rows under a rule naming ``label_word``."""
    def check(ctx: Ctx, res: Res) -> list[str]:
        v = validation(ctx.ws)
        if not v:
            return ["no reports/validation.json"]
        n = at_least(ctx)
        rules = {k: c for k, c in (v.get("dropped") or {}).items() if label_word in k}
        lost = v.get("window_rows_in", 0) - v.get("window_rows_out", 0)
        problems = []
        if not rules:
            problems.append(f"validation.json has no drop rule naming '{label_word}': {v.get('dropped')}")
        elif sum(rules.values()) < n:
            problems.append(f"validation.json counts {sum(rules.values())} rows under {list(rules)}, expected >= {n}")
        if lost < n:
            problems.append(f"the window lost {lost} rows in validation.json, expected >= {n}")
        return problems
    return check


# -- the base workspaces ------------------------------------------------------------------------------


def build_base(root: Path) -> Path:
    ws = root / "base"
    res = mc(["init", str(ws), "--example", NAME, "--rows-per-month", "1000"], root)
    if res.code != 0:
        raise SystemExit(f"init failed:\n{res.out}{res.err}")
    sub(ws / "params.yaml", r"^(\s*)n_estimators: \d+", r"\1n_estimators: 40", regex=True)
    git(ws, "commit", "-q", "-m", "fewer trees for the bad-input cases", "--", "params.yaml")
    res = mc(["-w", str(ws), "run", "--window", "2014-12"], root)
    if res.code != 0:
        raise SystemExit(f"the first cycle failed:\n{res.out}{res.err}")
    # records to predict, from the warehouse (without the target)
    import duckdb

    con = duckdb.connect(str(ws / ".modelcycle" / "warehouse.duckdb"), read_only=True)
    try:
        rides = con.execute(f"SELECT * FROM rides WHERE {in_month('2015-01')} ORDER BY pickup_datetime LIMIT 20").df()
    finally:
        con.close()
    rides = rides.drop(columns=["fare_amount"])
    rides.to_csv(root / "rides.csv", index=False)
    rides.drop(columns=["passenger_count"]).to_csv(root / "rides-no-passenger_count.csv", index=False)
    return ws


def build_own(root: Path) -> Path:
    own = root / "own"
    make_sales(own / "data")
    res = mc(["init", str(own / "ws"), "--source", "data/*.csv", "--timestamp", "sold_at", "--target", "price",
              "--threshold", "60000"], own)
    if res.code != 0:
        raise SystemExit(f"init of the own-data workspace failed:\n{res.out}{res.err}")
    return own


# -- custom runners ----------------------------------------------------------------------------------


def run_lock(ctx: Ctx, case: Case) -> Res:
    """A cycle holds the lock; a second `run --no-wait` must stop at once naming the holder."""
    first_args = ["-w", str(ctx.ws), "run", "--window", "2015-01"]
    started = time.monotonic()
    first = start(first_args, ctx.dir)
    holder = ctx.ws / ".modelcycle" / "lock.json"
    deadline = time.monotonic() + 120
    while not holder.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if not holder.exists():
        res1 = finish(first, first_args, started)
        raise SetupError(f"the first run never wrote lock.json (exit {res1.code}: {first_error_line(res1)})")
    second = mc(case_args(case, ctx), ctx.dir, timeout=120)
    ctx.state["holder_pid"] = first.pid
    ctx.state["second_still_first_running"] = first.poll() is None
    res1 = finish(first, first_args, started)
    ctx.state["first"] = res1
    return second


def check_lock(ctx: Ctx, res: Res) -> list[str]:
    problems = []
    first: Res = ctx.state["first"]
    if first.code != 0:
        problems.append(f"the run holding the lock failed: exit {first.code}: {first_error_line(first)}")
    if str(ctx.state["holder_pid"]) not in res.err:
        problems.append(f"the message does not name the holder's pid {ctx.state['holder_pid']}")
    if res.seconds > 20:
        problems.append(f"--no-wait took {res.seconds} s to answer")
    return problems


def run_sigint(ctx: Ctx, case: Case) -> Res:
    """SIGINT to the run's process group, as Ctrl-C in a terminal, while the challenger trains:
    1.5 s after the cycle wrote its journal (it does so before it touches anything)."""
    args = case_args(case, ctx)
    started = time.monotonic()
    proc = start(args, ctx.dir)
    journal = ctx.ws / ".modelcycle" / "journal.json"
    deadline = time.monotonic() + 180
    while not journal.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ctx.state["journal_seen_after"] = round(time.monotonic() - started, 1) if journal.exists() else None
    try:
        proc.wait(timeout=1.5)
        ctx.state["ended_before_signal"] = True
    except subprocess.TimeoutExpired:
        ctx.state["signal_at"] = round(time.monotonic() - started, 1)
        os.killpg(proc.pid, signal.SIGINT)
    res = finish(proc, args, started)
    time.sleep(1.0)
    return res


def check_sigint(ctx: Ctx, res: Res) -> list[str]:
    problems = []
    if ctx.state.get("ended_before_signal"):
        problems.append("the run ended before the signal was sent")
    if ctx.state.get("journal_seen_after") is None:
        problems.append("the cycle never wrote its journal: the signal came before the cycle began")
    said = [ln for ln in res.err.splitlines() if ln.lower().startswith(("interrupted", "terminated"))]
    if len(said) != 1:
        problems.append(f"expected one line saying what was rolled back, found {len(said)}")
    if (ctx.ws / ".modelcycle" / "lock.json").exists():
        problems.append("lock.json is left behind")
    if (ctx.ws / ".modelcycle" / "journal.json").exists() and "doctor" not in res.err and "next run" not in res.err:
        problems.append("a journal is left and the message does not say that doctor or the next run repairs it")
    return problems


def run_copied(ctx: Ctx, case: Case) -> Res:
    """cp -a the workspace, delete the original, then predict and run in the copy."""
    moved = ctx.dir / "moved"
    subprocess.run(["cp", "-a", str(ctx.ws), str(moved)], check=True)
    shutil.rmtree(ctx.ws)
    ctx.state["moved"] = moved
    return in_turn(ctx, [("predict", ["-w", str(moved), "predict", str(ctx.root / "rides.csv")]),
                         ("run", ["-w", str(moved), "run", "--window", "2015-01"])],
                   "modelcycle predict ... && modelcycle run --window 2015-01 (in the copy)")


def in_turn(ctx: Ctx, steps: list[tuple[str, list[str]]], said: str) -> Res:
    """Run commands one after the other (each kept in ``ctx.state`` under its key); the result's
    exit code is the first that is not 0, its output all of theirs."""
    done = []
    for key, args in steps:
        ctx.state[key] = mc(args, ctx.dir)
        shown = args[2:] if args[:1] == ["-w"] else args
        done.append((" ".join(a if "/" not in a else Path(a).name for a in shown), ctx.state[key]))
    code = next((r.code for _, r in done if r.code != 0), 0)
    return Res(code, "\n".join(f"$ {k}\n{r.out}" for k, r in done), "\n".join(f"$ {k}\n{r.err}" for k, r in done),
               [said], sum(r.seconds for _, r in done))


def check_copied(ctx: Ctx, res: Res) -> list[str]:
    problems = []
    p: Res = ctx.state["predict"]
    if p.code != 0:
        problems.append(f"predict in the copy: exit {p.code}: {first_error_line(p)}")
    elif "prediction" not in (p.out.splitlines() or [""])[0]:
        problems.append("predict in the copy wrote no prediction column")
    moved = ctx.state["moved"]
    if f"modelcycle/{NAME}/2015-01" not in git(moved, "tag").split():
        problems.append("the run in the copy made no 2015-01 tag")
    if str(ctx.ws) in (moved / ".modelcycle" / "mlflow.db").read_bytes().decode("latin-1"):
        con = sqlite3.connect(f"file:{moved / '.modelcycle' / 'mlflow.db'}?mode=ro", uri=True)
        try:
            stale = con.execute("SELECT count(*) FROM model_versions WHERE source LIKE ?",
                                (f"%{ctx.ws}/%",)).fetchone()[0]
        finally:
            con.close()
        if stale:
            problems.append(f"{stale} model version(s) of the copy still point into the deleted original")
    return problems


def run_two_windows(ctx: Ctx, case: Case) -> Res:
    """The bad cell lies in 2024-06: a window without it must be fine, then 2024-06 drops its row."""
    return in_turn(ctx, [("a", ["-w", str(ctx.ws), "run", "--window", "2024-03"]),
                         ("b", ["-w", str(ctx.ws), "run", "--window", "2024-06"])],
                   "modelcycle run --window 2024-03 && modelcycle run --window 2024-06")


def check_two_windows(ctx: Ctx, res: Res) -> list[str]:
    problems = []
    a: Res = ctx.state["a"]
    if a.code != 0:
        problems.append(f"window 2024-03 (no bad cell) failed: exit {a.code}: {first_error_line(a)}")
        return problems
    b: Res = ctx.state["b"]
    if b.code != 0:
        problems.append(f"window 2024-06 (one bad cell) failed: exit {b.code}: {first_error_line(b)}")
        return problems
    problems += dropped_in_report("size_m2", lambda c: 1)(ctx, res)
    if "big" not in json.dumps(validation(ctx.ws).get("examples")):
        problems.append("validation.json does not show the bad value 'big' as an example")
    return problems


def case_args(case: Case, ctx: Ctx) -> list[str]:
    return [fill(a, ctx) for a in case.args]


# -- the list ----------------------------------------------------------------------------------------

W = "2015-01"  # the window most taxifare cases run (a champion, v1, exists from 2014-12)
RUN = ["-w", "{ws}", "run", "--window", W]


def _remove_gate(ctx: Ctx) -> None:
    sub(ctx.ws / "modelcycle.yaml", r"^gate:\n(?:[ \t]+.*\n|[ \t]*\n)*?(?=^\S)", "", regex=True)


def _nonempty(ctx: Ctx) -> None:
    ctx.ws.mkdir()
    (ctx.ws / "notes.txt").write_text("my notes\n")


def _nonempty_check(ctx: Ctx, res: Res) -> list[str]:
    left = sorted(p.name for p in ctx.ws.iterdir())
    problems = [] if left == ["notes.txt"] else [f"the folder now holds {left}"]
    if (ctx.ws / "notes.txt").read_text() != "my notes\n":
        problems.append("notes.txt was changed")
    return problems


def _sales_here(ctx: Ctx) -> None:
    make_sales(ctx.dir / "data", months=range(1, 4))


def _sales_text_timestamps(ctx: Ctx) -> None:
    make_sales(ctx.dir / "data", months=range(1, 4))
    for m in range(1, 4):
        csv_edit(ctx, f"2024-{m:02d}", lambda f: f.assign(sold_at=["last tuesday"] * len(f)))


def _timestamp_init_check(ctx: Ctx, res: Res) -> list[str]:
    """Besides leaving no folder: when init took the text column, what the first cycle says."""
    problems = no_folder(ctx, res)
    if res.code == 0 and (ctx.ws / "modelcycle.yaml").exists():
        then = mc(["-w", str(ctx.ws), "run", "--window", "2024-02"], ctx.dir)
        problems.append(f"then `run --window 2024-02`: exit {then.code}: "
                        + shorten(ctx, first_error_line(then)))
    return problems


def _password_init_check(ctx: Ctx, res: Res) -> list[str]:
    problems = password_not_shown(ctx, res)
    if res.code != 0:
        return problems + no_folder(ctx, res)
    text = (ctx.ws / "modelcycle.yaml").read_text()
    if PASSWORD in text:
        problems.append("modelcycle.yaml holds the literal password")
    if "${" not in text:
        problems.append("modelcycle.yaml's source.url holds no ${...} reference")
    env = ctx.ws / ".env"
    if not env.exists():
        problems.append(".env was not written")
    elif oct(env.stat().st_mode & 0o777) != "0o600":
        problems.append(f".env has mode {oct(env.stat().st_mode & 0o777)}")
    if git(ctx.ws, "grep", "-I", "-l", PASSWORD, "HEAD", check=False):
        problems.append("the password is in a committed file")
    return problems


def _delete_champion_version(ctx: Ctx) -> None:
    code = textwrap.dedent(f"""
        from mlflow import MlflowClient
        MlflowClient(tracking_uri="sqlite:///{ctx.ws}/.modelcycle/mlflow.db").delete_model_version("{NAME}", "1")
    """)
    proc = subprocess.run([PYTHON, "-c", code], env=child_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"delete_model_version failed: {proc.stderr.strip().splitlines()[-1:]}")


def _escalated(ctx: Ctx, res: Res) -> list[str]:
    d = last_decision(ctx.ws)
    problems = []
    if d.get("window") != W:
        problems.append(f"no decision for {W} in notifications.log")
    elif d.get("outcome") != "escalate":
        problems.append(f"decision {d.get('outcome')} (reasons: {d.get('reasons')}), expected escalate")
    return problems


def _truncate_pkls(ctx: Ctx) -> None:
    found = list((ctx.ws / ".modelcycle" / "mlartifacts").rglob("*.pkl"))
    if not found:
        raise SetupError("no *.pkl under .modelcycle/mlartifacts")
    for path in found:
        path.write_bytes(b"")


def _detach(ctx: Ctx) -> None:
    git(ctx.ws, "checkout", "-q", "--detach")


def _params_edit(ctx: Ctx) -> None:
    sub(ctx.ws / "params.yaml", r"^(\s*)learning_rate: [0-9.]+", r"\1learning_rate: 0.1", regex=True)


def _params_committed(ctx: Ctx, res: Res) -> list[str]:
    tag = f"modelcycle/{NAME}/{W}"
    if tag not in git(ctx.ws, "tag").split():
        return [f"no tag {tag}"]
    problems = []
    if not re.search(r"^\s*learning_rate: 0\.1\s*$", git(ctx.ws, "show", f"{tag}:params.yaml"), re.M):
        problems.append(f"{tag}:params.yaml does not hold the edit learning_rate: 0.1")
    message = git(ctx.ws, "log", "-1", "--format=%B", tag)
    if "params" not in message.lower():
        problems.append(f"the cycle's commit message does not mention params.yaml: {message[:160]!r}")
    if git(ctx.ws, "status", "--porcelain", "--untracked-files=no"):
        problems.append("git status is not clean after the cycle")
    return problems


def _rm_dvc_storage(ctx: Ctx) -> None:
    shutil.rmtree(ctx.ws / ".dvc" / "cache")
    shutil.rmtree(ctx.ws / ".modelcycle" / "dvc-remote")


def _one_day_text(ctx: Ctx) -> None:
    day = "pickup_datetime >= TIMESTAMP '2015-01-10' AND pickup_datetime < TIMESTAMP '2015-01-11'"
    ctx.state["n"] = count_rows(ctx, day)
    warehouse(ctx, "ALTER TABLE rides ALTER fare_amount TYPE VARCHAR",
              f"UPDATE rides SET fare_amount = 'twelve dollars' WHERE {day}")


def _third_null(ctx: Ctx) -> None:
    warehouse(ctx, f"UPDATE rides SET fare_amount = NULL WHERE {in_month(W)} "
                   "AND CAST(epoch(pickup_datetime) AS BIGINT) % 3 = 0")
    ctx.state["n"] = count_rows(ctx, f"{in_month(W)} AND fare_amount IS NULL")


def _third_null_check(ctx: Ctx, res: Res) -> list[str]:
    problems = []
    d = last_decision(ctx.ws)
    if d.get("window") != W:
        return [f"no decision for {W} in notifications.log"]
    if d.get("outcome") == "promote":
        problems.append(f"promoted on a window with {ctx.state['n']} empty fares")
    if champion(ctx.ws) != "1":
        problems.append(f"the champion is v{champion(ctx.ws)}, expected v1")
    if not any("fare_amount" in r or "dropped" in r or "invalid" in r for r in d.get("reasons", [])):
        problems.append(f"the reasons do not speak of the dropped rows: {d.get('reasons')}")
    return problems + dropped_in_report("fare_amount", lambda c: c.state["n"])(ctx, res)


def _duplicates(ctx: Ctx) -> None:
    day = "pickup_datetime >= TIMESTAMP '2015-01-12' AND pickup_datetime < TIMESTAMP '2015-01-13'"
    ctx.state["n"] = count_rows(ctx, day)
    warehouse(ctx, f"INSERT INTO rides SELECT * FROM rides WHERE {day}")


def _duplicates_check(ctx: Ctx, res: Res) -> list[str]:
    d = last_decision(ctx.ws)
    problems = dropped_in_report("duplicate row", lambda c: c.state["n"])(ctx, res)
    if not any("duplicate row" in r for r in d.get("reasons", [])):
        problems.append(f"the decision's reasons do not mention duplicate rows: {d.get('reasons')}")
    return problems


def _bad_cell_june(ctx: Ctx) -> None:
    def edit(f):
        f.loc[5, "size_m2"] = "big"
        return f
    csv_edit(ctx, "2024-06", edit)


def _malformed_line(ctx: Ctx) -> None:
    path = ctx.dir / "data" / "sales-2024-03.csv"
    lines = path.read_text().splitlines()
    lines.insert(40, "2024-03-09 10:00:00,55.0,2,north,150000.0,extra,fields")
    path.write_text("\n".join(lines) + "\n")


def _unclosed_quote(ctx: Ctx) -> None:
    path = ctx.dir / "data" / "sales-2024-03.csv"
    lines = path.read_text().splitlines()
    lines.insert(40, '2024-03-09 10:00:00,"55.0,2,north,150000.0')
    path.write_text("\n".join(lines) + "\n")


def _file_line_named(file: str) -> Callable[[Ctx, Res], list[str]]:
    def check(ctx: Ctx, res: Res) -> list[str]:
        v = validation(ctx.ws)
        if file in res.text or (v and v.get("window_rows_in", 0) - v.get("window_rows_out", 0) >= 1):
            return []
        return [f"exit 0 and neither a warning naming {file} nor a dropped row in validation.json"]
    return check


def _few_text_timestamps(ctx: Ctx) -> None:
    def edit(f):
        f.loc[10:14, "sold_at"] = "unknown"
        return f
    csv_edit(ctx, "2024-03", edit)


def _timestamps_reported(ctx: Ctx, res: Res) -> list[str]:
    v = validation(ctx.ws)
    if "sold_at" in res.err or "sold_at" in json.dumps(v.get("dropped", {})):
        return []
    return ["exit 0 but 5 rows with an unreadable sold_at were neither counted nor warned about"]


def _reports_readonly(ctx: Ctx) -> None:
    reports = ctx.ws / "reports"
    mount(ctx, reports, "size=1m", fill_from=[p for p in reports.iterdir()], readonly_after=True)


def _models_full(ctx: Ctx) -> None:
    models = ctx.ws / "models"
    mount(ctx, models, "size=600k", fill_from=[models / ".gitignore"])


def _data_full(ctx: Ctx) -> None:
    data = ctx.ws / "data"
    mount(ctx, data, "size=300k", fill_from=[data / ".gitignore"])


def _proba_ok(ctx: Ctx, res: Res) -> list[str]:
    problems = []
    if "regression" not in res.err.lower():
        problems.append("exit 0 without saying that a regression workspace has no probabilities")
    if "prediction" not in (res.out.splitlines() or [""])[0]:
        problems.append("no prediction column on stdout")
    return problems


def _predict_bad_cell(ctx: Ctx) -> None:
    import pandas as pd

    frame = pd.read_csv(ctx.root / "rides.csv", dtype=str)
    frame.loc[3, "pickup_latitude"] = "forty point seven"
    frame.to_csv(ctx.dir / "rides-bad-cell.csv", index=False)


def _source_missing_check(ctx: Ctx, res: Res) -> list[str]:
    return ([f"running it created {ctx.ws / '.modelcycle' / 'nowhere.duckdb'}"]
            if (ctx.ws / ".modelcycle" / "nowhere.duckdb").exists() else [])


CASES: list[Case] = [
    # -- config and params ------------------------------------------------------------------------
    Case("cfg-misspelt-key", "config", "modelcycle.yaml: gate.treshold instead of threshold",
         RUN, "error", ("treshold", "modelcycle.yaml"), setup=yaml_sub("  threshold: 2.5", "  treshold: 2.5")),
    Case("cfg-bad-yaml", "config", "modelcycle.yaml: gate.min_effect indented too deep (invalid YAML)",
         RUN, "error", ("modelcycle.yaml", "line"),
         setup=yaml_sub("\n  min_effect: 0.01", "\n    min_effect: 0.01")),
    Case("cfg-missing-section", "config", "modelcycle.yaml: the whole gate: section deleted",
         RUN, "error", ("gate", "modelcycle.yaml"), setup=_remove_gate),
    Case("cfg-metric-task", "config", "modelcycle.yaml: metric accuracy in a regression workspace",
         RUN, "error", ("accuracy", "regression"), setup=yaml_sub("\nmetric: mae", "\nmetric: accuracy")),
    Case("cfg-threshold-text", "config", "modelcycle.yaml: gate.threshold: two and a half",
         RUN, "error", ("threshold", "two and a half"), setup=yaml_sub("  threshold: 2.5", "  threshold: two and a half")),
    Case("cfg-unknown-estimator", "config", "modelcycle.yaml: model.estimator lightgbm:LGBMRegresor (typo)",
         RUN, "error", ("LGBMRegresor", "model.estimator"),
         setup=yaml_sub("estimator: lightgbm:LGBMRegressor", "estimator: lightgbm:LGBMRegresor")),
    Case("cfg-unknown-estimator-module", "config", "modelcycle.yaml: model.estimator sklearn.ensembel:RandomForestRegressor",
         RUN, "error", ("sklearn.ensembel", "model.estimator"),
         setup=yaml_sub("estimator: lightgbm:LGBMRegressor", "estimator: sklearn.ensembel:RandomForestRegressor")),
    Case("cfg-rule-unknown-column", "config", "modelcycle.yaml: a rule for column tip_amount, not in data.columns",
         RUN, "error", ("tip_amount",), setup=yaml_sub("  rules:\n", "  rules:\n    tip_amount: {min: 0}\n")),
    Case("cfg-empty-file", "config", "modelcycle.yaml is empty",
         RUN, "error", ("modelcycle.yaml",), setup=lambda ctx: (ctx.ws / "modelcycle.yaml").write_text("")),
    Case("params-misspelt-hyperparameter", "config", "params.yaml: model.n_estimatorz",
         RUN, "error", ("n_estimatorz",), setup=yaml_sub("n_estimators: 40", "n_estimatorz: 40", file="params.yaml")),
    Case("params-text-n_estimators", "config", "params.yaml: model.n_estimators: forty",
         RUN, "error", ("n_estimators", "forty"), setup=yaml_sub("n_estimators: 40", "n_estimators: forty", file="params.yaml")),
    Case("params-history-negative", "config", "params.yaml: data.history_months: -3",
         RUN, "error", ("history_months",), setup=yaml_sub("history_months: 12", "history_months: -3", file="params.yaml")),
    Case("params-holdout-1.5", "config", "params.yaml: split.holdout_fraction: 1.5",
         RUN, "error", ("holdout_fraction",), setup=yaml_sub("holdout_fraction: 0.3", "holdout_fraction: 1.5", file="params.yaml")),
    Case("window-text", "config", "run --window January",
         ["-w", "{ws}", "run", "--window", "January"], "error", ("January",)),
    Case("window-month-13", "config", "run --window 2015-13",
         ["-w", "{ws}", "run", "--window", "2015-13"], "error", ("2015-13",)),
    Case("window-no-rows", "config", "run --window 2016-01 (the warehouse ends 2015-06)",
         ["-w", "{ws}", "run", "--window", "2016-01"], "error", ("2016-01",)),
    Case("run-no-window-first", "config", "run without --window in a fresh workspace (no cycle yet)",
         ["-w", "{ws}", "run"], "error", ("--window",), base="fresh"),
    Case("init-unknown-example", "init", "init --example taxifair",
         ["init", "{ws}", "--example", "taxifair"], "error", ("taxifair",), base="none", check=no_folder),
    Case("init-nonempty-folder", "init", "init --example taxifare into a folder holding notes.txt",
         ["init", "{ws}", "--example", NAME], "error", ("--force",), base="none", setup=_nonempty,
         check=_nonempty_check),
    Case("init-no-target", "init", "init --source 'data/*.csv' without --target",
         ["init", "{ws}", "--source", "data/*.csv", "--timestamp", "sold_at", "--threshold", "60000"],
         "error", ("--target",), base="none", setup=_sales_here, check=no_folder),
    Case("init-target-not-a-column", "init", "init --target prize (the CSVs have price)",
         ["init", "{ws}", "--source", "data/*.csv", "--timestamp", "sold_at", "--target", "prize",
          "--threshold", "60000"], "error", ("prize",), base="none", setup=_sales_here, check=no_folder),
    Case("init-timestamp-text", "init", "init on CSVs whose sold_at column is text ('last tuesday')",
         ["init", "{ws}", "--source", "data/*.csv", "--timestamp", "sold_at", "--target", "price",
          "--threshold", "60000"], "error", ("sold_at",), base="none", setup=_sales_text_timestamps,
         check=_timestamp_init_check),
    Case("init-threshold-text", "init", "init --threshold high",
         ["init", "{ws}", "--source", "data/*.csv", "--timestamp", "sold_at", "--target", "price",
          "--threshold", "high"], "error", ("--threshold",), base="none", setup=_sales_here, check=no_folder),
    Case("init-sql-unreachable", "init", "init --source postgresql+psycopg://u:pw@127.0.0.1:1/db (nothing listens)",
         ["init", "{ws}", "--source", "postgresql+psycopg://u:pw@127.0.0.1:1/db", "--table", "rides",
          "--timestamp", "t", "--target", "y", "--threshold", "1"], "error", (("psycopg", "127.0.0.1"),),
         base="none", check=both(no_folder, not_shown("u:pw@"))),
    Case("init-sql-driver-missing", "init", "init --source mysql+pymysql://u:pw@127.0.0.1:1/db (driver not installed)",
         ["init", "{ws}", "--source", "mysql+pymysql://u:pw@127.0.0.1:1/db", "--table", "rides",
          "--timestamp", "t", "--target", "y", "--threshold", "1"], "error", ("pymysql",),
         base="none", check=both(no_folder, not_shown("u:pw@"))),
    Case("init-password-in-url", "init", f"init --source postgresql+psycopg://analyst:{PASSWORD}@127.0.0.1:1/sales",
         ["init", "{ws}", "--source", f"postgresql+psycopg://analyst:{PASSWORD}@127.0.0.1:1/sales", "--table",
          "sales", "--timestamp", "sold_at", "--target", "price", "--threshold", "1"], "either",
         (("psycopg", "127.0.0.1"),), base="none", check=_password_init_check,
         expects="refuse (no folder left) or ${...} in yaml + .env 0600; password never printed"),
    Case("cfg-literal-password-mlflow", "config",
         f"modelcycle.yaml: backends.mlflow_tracking_uri postgresql://mlflow:{PASSWORD}@127.0.0.1:1/mlflow",
         RUN, "error", ("backends.mlflow_tracking_uri",),
         setup=yaml_sub("mlflow_tracking_uri: sqlite:///.modelcycle/mlflow.db",
                        f"mlflow_tracking_uri: postgresql://mlflow:{PASSWORD}@127.0.0.1:1/mlflow"),
         check=password_not_shown),
    Case("cfg-unset-variable", "config", "modelcycle.yaml: source.url ${WAREHOUSE_DIR}/warehouse.duckdb, variable unset",
         RUN, "error", ("WAREHOUSE_DIR",),
         setup=yaml_sub("url: .modelcycle/warehouse.duckdb", "url: ${WAREHOUSE_DIR}/warehouse.duckdb")),
    # -- data -------------------------------------------------------------------------------------
    Case("data-source-missing", "data", "modelcycle.yaml: source.url .modelcycle/nowhere.duckdb (no such file)",
         RUN, "error", ("nowhere.duckdb",),
         setup=yaml_sub("url: .modelcycle/warehouse.duckdb", "url: .modelcycle/nowhere.duckdb"),
         check=_source_missing_check),
    Case("data-missing-column", "data", "warehouse: ALTER TABLE rides DROP COLUMN passenger_count",
         RUN, "error", ("passenger_count",),
         setup=lambda ctx: warehouse(ctx, "ALTER TABLE rides DROP COLUMN passenger_count")),
    Case("data-text-column", "data", "warehouse: pickup_longitude is text ('west') in every row",
         RUN, "error", ("pickup_longitude",),
         setup=lambda ctx: warehouse(ctx, "ALTER TABLE rides ALTER pickup_longitude TYPE VARCHAR",
                                     "UPDATE rides SET pickup_longitude = 'west'")),
    Case("data-text-one-day", "data", "warehouse: fare_amount 'twelve dollars' on 2015-01-10 only",
         RUN, "ok", setup=_one_day_text,
         ok_check=dropped_in_report("fare_amount", lambda c: c.state["n"]),
         expects="exit 0, that day's rows dropped and counted in validation.json"),
    Case("data-third-fares-null", "data", "warehouse: a third of 2015-01's fares NULL",
         RUN, "ok", setup=_third_null, ok_check=_third_null_check,
         expects="exit 0, no promotion (champion stays v1), drops counted and stated"),
    Case("data-all-fares-null", "data", "warehouse: every 2015-01 fare NULL",
         RUN, "error", ("fare_amount", W), setup=lambda ctx: warehouse(
             ctx, f"UPDATE rides SET fare_amount = NULL WHERE {in_month(W)}")),
    Case("data-duplicate-rows", "data", "warehouse: 2015-01-12's rows inserted twice",
         RUN, "ok", setup=_duplicates, ok_check=_duplicates_check,
         expects="exit 0, copies dropped and counted, reasons say 'duplicate row'"),
    Case("csv-bad-cell-other-window", "data", "own CSV: size_m2 'big' in one 2024-06 row; run 2024-03 then 2024-06",
         [], "ok", base="own", setup=_bad_cell_june, runner=run_two_windows, ok_check=check_two_windows,
         expects="exit 0 both; 2024-06 drops and counts the row"),
    Case("csv-malformed-line", "data", "own CSV: a line with 7 fields in sales-2024-03.csv",
         ["-w", "{ws}", "run", "--window", "2024-03"], "either", ("sales-2024-03.csv",), base="own",
         setup=_malformed_line, ok_check=_file_line_named("sales-2024-03.csv"),
         expects="error naming the file, or exit 0 with the line dropped/warned"),
    Case("csv-unclosed-quote", "data", "own CSV: an unclosed quote in sales-2024-03.csv",
         ["-w", "{ws}", "run", "--window", "2024-03"], "either", ("sales-2024-03.csv",), base="own",
         setup=_unclosed_quote, ok_check=_file_line_named("sales-2024-03.csv"),
         expects="error naming the file, or exit 0 with the line dropped/warned"),
    Case("csv-timestamp-text-rows", "data", "own CSV: sold_at 'unknown' in 5 rows of sales-2024-03.csv",
         ["-w", "{ws}", "run", "--window", "2024-03"], "either", ("sold_at",), base="own",
         setup=_few_text_timestamps, ok_check=_timestamps_reported,
         expects="error naming sold_at, or exit 0 with the rows counted/warned"),
    # -- registry, versioning, workspace ----------------------------------------------------------
    Case("reg-corrupt-champion", "registry", "every *.pkl under .modelcycle/mlartifacts truncated to 0 bytes",
         RUN, "error", (("champion", "version 1", "v1 "), "pipeline.pkl"), setup=_truncate_pkls),
    Case("reg-champion-deleted", "registry", "model version 1 (the champion) deleted in the registry",
         RUN, "ok", setup=_delete_champion_version, ok_check=_escalated,
         expects="exit 0 and escalate (no promotion without a comparison)"),
    Case("git-detached-head", "versioning", "git checkout --detach, then run",
         RUN, "error", ("git switch",), setup=_detach),
    Case("params-uncommitted-edit", "versioning", "params.yaml learning_rate edited, not committed, then run",
         RUN, "ok", setup=_params_edit, ok_check=_params_committed,
         expects="exit 0; the cycle's commit holds the edit and says so"),
    Case("dvc-storage-deleted", "versioning", "rm -rf .dvc/cache .modelcycle/dvc-remote, then doctor",
         ["-w", "{ws}", "doctor"], "error", (("cache", "remote"),), exits=(1,), setup=_rm_dvc_storage,
         message_in="all", headline=r"\bproblem\b"),
    Case("ws-copied-original-deleted", "workspace", "cp -a the workspace, delete the original, predict + run in the copy",
         [], "ok", runner=run_copied, ok_check=check_copied, expects="exit 0 for both"),
    Case("promote-no-such-version", "registry", "promote --version 99",
         ["-w", "{ws}", "promote", "--version", "99"], "error", ("99",)),
    Case("promote-text-version", "registry", "promote --version latest",
         ["-w", "{ws}", "promote", "--version", "latest"], "error", ("latest",)),
    Case("predict-missing-column", "serving", "predict a CSV without passenger_count",
         ["-w", "{ws}", "predict", "{root}/rides-no-passenger_count.csv"], "error", ("passenger_count",)),
    Case("predict-bad-cell", "serving", "predict a CSV with pickup_latitude 'forty point seven' in one row",
         ["-w", "{ws}", "predict", "{dir}/rides-bad-cell.csv"], "error", ("pickup_latitude",),
         setup=_predict_bad_cell),
    Case("predict-no-file", "serving", "predict nosuch.csv",
         ["-w", "{ws}", "predict", "{dir}/nosuch.csv"], "error", ("nosuch.csv",)),
    Case("predict-proba-regression", "serving", "predict --proba in a regression workspace",
         ["-w", "{ws}", "predict", "{root}/rides.csv", "--proba"], "either", ("regression",), ok_check=_proba_ok,
         expects="error, or predictions + a warning saying regression has no probabilities"),
    Case("step-bogus", "workspace", "step bogus", ["-w", "{ws}", "step", "bogus"], "error", ("bogus",)),
    Case("status-outside-workspace", "workspace", "status in a folder outside any workspace",
         ["status"], "error", (("modelcycle.yaml", "workspace"),), base="none",
         setup=lambda ctx: ctx.ws.mkdir(), cwd="ws"),
    Case("workspace-missing-dir", "workspace", "status -w /nonexistent folder",
         ["-w", "{dir}/nowhere", "status"], "error", ("nowhere",), base="none"),
    Case("lock-no-wait", "workspace", "run --no-wait while another run holds the lock",
         ["-w", "{ws}", "run", "--window", "2015-02", "--no-wait"], "error", ("--no-wait",), unchanged=False,
         runner=run_lock, check=check_lock, expects="error naming the holder, at once; the holder succeeds"),
    Case("reports-read-only", "workspace", "reports/ is a read-only file system",
         RUN, "error", ("reports",), setup=_reports_readonly, teardown=unmount_all, needs_root=True),
    Case("disk-full", "workspace", "models/ is a 600 kB tmpfs (the challenger does not fit: ENOSPC)",
         RUN, "error", (("space", "ENOSPC"), "models"), setup=_models_full, teardown=unmount_all, needs_root=True),
    Case("disk-full-data", "workspace", "data/ is a 300 kB tmpfs (the window's parquet files do not fit: ENOSPC)",
         RUN, "error", (("space", "ENOSPC"), "data"), setup=_data_full, teardown=unmount_all, needs_root=True),
    Case("sigint-mid-run", "workspace", "SIGINT to the run's process group while the challenger trains",
         RUN, "error", (("rolled back", "nothing was changed"),), exits=(130,), runner=run_sigint,
         check=check_sigint, expects="exit 130, one line saying what was rolled back"),
]


# -- running a case -------------------------------------------------------------------------------


def present(word: str | tuple, text: str) -> bool:
    alternatives = word if isinstance(word, tuple) else (word,)
    return any(a.lower() in text.lower() for a in alternatives)


def shorten(ctx: Ctx, text: str) -> str:
    """``text`` with the case's paths as $WS, $CASE, $ROOT (a case's folder is named after the
    case, so a word such as 'champion' must not match through a path)."""
    for long, name in ((str(ctx.ws), "$WS"), (str(ctx.dir), "$CASE"), (str(ctx.root), "$ROOT")):
        text = text.replace(long, name)
    return text


def judge(case: Case, ctx: Ctx, res: Res, before: dict, after: dict) -> tuple[str, list[str]]:
    notes: list[str] = []
    if "Traceback" in res.text:
        notes.append("a traceback is printed")
    if "unexpected error" in res.text.lower():
        notes.append("it says 'unexpected error'")
    as_error = case.expect == "error" or (case.expect == "either" and res.code != 0)
    if as_error:
        if res.code == 0:
            notes.append("exit 0: the bad input was taken without an error")
        elif res.code == 70:
            notes.append("exit 70 (a bug, not a user error)")
        elif res.code == "timeout":
            notes.append(f"no answer within {TIMEOUT:.0f} s")
        elif case.exits and res.code not in case.exits:
            notes.append(f"exit {res.code}, expected {'/'.join(map(str, case.exits))}")
        message = shorten(ctx, message_of(res, case.message_in))
        missing = [w if isinstance(w, str) else " or ".join(w) for w in case.words if not present(w, message)]
        if missing:
            notes.append(f"the message does not name: {', '.join(repr(m) for m in missing)}")
        if case.unchanged and before:
            notes += diff_snapshots(before, after)
        if case.check:
            notes += case.check(ctx, res)
        return ("clear" if not notes else "MISREPORTED"), notes
    # expected to exit 0
    if res.code != 0:
        notes.append(f"exit {res.code}, expected 0: {first_error_line(res)}"[:300])
    else:
        if case.ok_check:
            notes += case.ok_check(ctx, res)
    if case.check:
        notes += case.check(ctx, res)
    return ("accepted" if not notes else "MISREPORTED"), notes


def run_case(case: Case, root: Path, bases: dict[str, Path], keep: bool) -> dict:
    cdir = root / "cases" / case.name
    shutil.rmtree(cdir, ignore_errors=True)
    cdir.mkdir(parents=True)
    ctx = Ctx(root=root, dir=cdir, ws=cdir / "ws")
    row = {"case": case.name, "group": case.group, "input": case.what, "expects": case.describe(),
           "command": "", "exit": None, "message": "", "verdict": "", "notes": [], "seconds": 0.0}
    started = time.monotonic()
    try:
        if case.base == "base":
            shutil.copytree(bases["base"], ctx.ws, symlinks=True)
        elif case.base == "own":
            shutil.copytree(bases["own"] / "data", cdir / "data", symlinks=True)
            shutil.copytree(bases["own"] / "ws", ctx.ws, symlinks=True)
        elif case.base == "fresh":
            res = mc(["init", str(ctx.ws), "--example", NAME, "--rows-per-month", "1000"], cdir)
            if res.code != 0:
                raise SetupError(f"init failed: {first_error_line(res)}")
        try:
            if case.setup:
                case.setup(ctx)
            before = snapshot(ctx.ws)
            cwd = ctx.ws if case.cwd == "ws" else cdir
            res = case.runner(ctx, case) if case.runner else mc(case_args(case, ctx), cwd)
            after = snapshot(ctx.ws) if ctx.ws.exists() else {}
            if case.base == "none":
                before = after = {}
            row["verdict"], row["notes"] = judge(case, ctx, res, before, after)
        finally:
            if case.teardown:
                case.teardown(ctx)
        row.update(command=shorten(ctx, " ".join(res.argv)), exit=res.code,
                   message=shorten(ctx, first_error_line(res, case.headline)),
                   stderr=shorten(ctx, res.err)[-4000:], stdout=shorten(ctx, res.out)[-2000:])
    except SetupError as exc:
        text = str(exc)
        row["verdict"] = "skipped" if text.startswith("skipped") else "SETUP FAILED"
        row["notes"] = [text]
    except Exception as exc:  # a bug in this script, or a setup that met the unexpected
        row["verdict"] = "SETUP FAILED"
        row["notes"] = [f"{type(exc).__name__}: {exc}"[:400]]
    row["seconds"] = round(time.monotonic() - started, 1)
    if not keep and not ctx.state.get("mounts"):  # never delete through a mount left behind
        shutil.rmtree(cdir, ignore_errors=True)
    return row


# -- the table ------------------------------------------------------------------------------------


def clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_row(row: dict) -> None:
    print(f"{clip(row['case'], 30):<30} {clip(row['input'], 50):<50} {str(row['exit']):>5}  "
          f"{clip(row['message'], 110):<110} {row['verdict']}", flush=True)
    if row["verdict"] not in ("clear", "accepted"):
        for note in row["notes"]:
            print(f"{'':<30} ! {clip(note, 200)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated case names (default: every case)")
    ap.add_argument("--keep", action="store_true", help="keep the workspaces (their folder is printed)")
    ap.add_argument("--json", type=Path, default=Path("bad-inputs.json"), help="write the table here")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args()
    if args.list:
        for c in CASES:
            print(f"{c.name:<30} {c.group:<11} {c.what}")
        return
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - {c.name for c in CASES})
    if unknown:
        raise SystemExit(f"no such case(s): {', '.join(unknown)} (see --list)")
    cases = [c for c in CASES if not wanted or c.name in wanted]
    root = Path(tempfile.mkdtemp(prefix="modelcycle-bad-inputs-"))
    print(f"workspaces under {root}", flush=True)
    started = time.monotonic()
    bases: dict[str, Path] = {}
    if any(c.base == "base" for c in cases):
        bases["base"] = build_base(root)
    if any(c.base == "own" for c in cases):
        bases["own"] = build_own(root)
    print(f"base workspaces ready in {time.monotonic() - started:.0f} s\n", flush=True)
    print(f"{'case':<30} {'input':<50} {'exit':>5}  {'message (first line of stderr)':<110} verdict")
    print("-" * 210, flush=True)
    rows = []
    for case in cases:
        row = run_case(case, root, bases, args.keep)
        rows.append(row)
        print_row(row)
    print("-" * 210)
    counts = Counter(r["verdict"] for r in rows)
    print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f"   ({len(rows)} cases, "
          f"{time.monotonic() - started:.0f} s)")
    bad = [r["case"] for r in rows if r["verdict"] not in ("clear", "accepted", "skipped")]
    print(f"not clear/accepted: {', '.join(bad) if bad else 'none'}")
    args.json.write_text(json.dumps(rows, indent=1, default=str))
    print(f"table written to {args.json}")
    if args.keep:
        print(f"workspaces kept under {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
