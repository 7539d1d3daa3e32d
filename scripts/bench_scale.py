"""How a cycle's cost grows with its window (not a test; prints a table and the goals it is held against).

For each size, a taxifare workspace is made whose DuckDB warehouse holds ``rows_per_month`` rides a
month (the simulator's knob), so that a cycle trains on about the asked number of rows (12 months
of history and 70% of the window). Then ``modelcycle run --window W`` runs for three windows in a
row, each in its own process as a user runs it, and per cycle the table gives:

- rows       training rows (the cycle's MLflow metric ``rows_train``)
- process    the ``modelcycle run`` process, start to end (Python's start-up, imports and the
             embedded Prefect server included)
- cycle      the cycle itself: the sum of its sequential phases as its MLflow run logs them
             (``seconds_setup`` + ``fetch`` + ``validate`` + ``prepare`` + ``train_and_champion`` +
             ``evaluate_challenger`` + ``outputs_ready`` + ``decide`` + ``act``)
- compute    the challenger's fit and predictions (``seconds_fit`` + ``seconds_challenger_predict``)
- overhead   cycle - compute (fetching, validating and preparing the rows included), made of:
- rows       the work that reads every row: fetch + validate + prepare (``seconds_fetch`` ...)
- other      overhead - rows: setup, the decision, the act, and the rest of the training phase
             (the challenger's features and files, the champion's scoring beyond the fit)
- act        the act block (versioning, registry, aliases: ``seconds_act``)
- peak RSS   of the ``modelcycle run`` process (``/usr/bin/time``'s maximum resident set size)
- cache +, remote +   bytes the cycle added to the DVC cache and to the DVC remote
- window parquet      the size of the window's own rows as Parquet (what storage per cycle
                      should be proportional to), as DuckDB writes it
- partition           the window's partition in the workspace (``data/raw/<window>.parquet``; none in
                      a workspace of single files, before partitions)
- model               the challenger's files (``models/challenger``), which every cycle adds too
- data +              the part of cache + that is the cycle's data files (objects whose md5 is that of
                      a file under ``data/``): what the rows added, the model and listings left out

Goals (issue 12), 2 cores: 10M training rows in <= 5 minutes a cycle and <= 6 GiB peak memory;
overhead flat (<= 1 s at every size); storage added per cycle <= 1.2 x the new window's Parquet.

Run: .venv/bin/python scripts/bench_scale.py [--train-rows 150000,1500000] [--cycles 3] [--keep DIR]
(PYTHONPATH picks the source tree the ``modelcycle`` processes run, to compare two trees.)
(10,000,000 training rows simulate about 12M rides first: several minutes and GBs of disk.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOWS = ("2015-01", "2015-02", "2015-03")
FIRST = "2013-12"
HISTORY_MONTHS = 12
#: The cycle's sequential phases (the MLflow metrics ``seconds_<phase>``); the others run inside them.
LAPS = ("setup", "fetch", "validate", "prepare", "train_and_champion", "evaluate_challenger", "outputs_ready",
        "decide", "act")
GOAL_SECONDS, GOAL_RSS_GIB, GOAL_OVERHEAD_S, GOAL_STORAGE = 300.0, 6.0, 1.0, 1.2


def du(path: Path) -> int:
    """Bytes of the regular files under ``path`` (0 if missing), hard links counted once."""
    seen, total = set(), 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def size_of(path: Path) -> int:
    """A file's bytes (0 if missing)."""
    return path.stat().st_size if path.is_file() else 0


def cache_objects(cache: Path) -> dict[str, int]:
    """The DVC cache's objects (``files/md5/ab/cdef...``): md5 -> bytes."""
    found = {}
    for path in cache.rglob("*"):
        if path.is_file():
            found[path.parent.name + path.name.removesuffix(".dir")] = path.stat().st_size
    return found


def data_md5s(root: Path) -> set[str]:
    """The md5 of every file under the workspace's ``data/`` (partitions or single files)."""
    import hashlib

    found = set()
    for path in (root / "data").rglob("*"):
        if path.is_file():
            digest = hashlib.md5(usedforsecurity=False)
            with path.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
            found.add(digest.hexdigest())
    return found


def metrics(root: Path, window: str) -> dict[str, float]:
    """The newest MLflow run of ``window``'s metrics (the workspace's SQLite store)."""
    db = sqlite3.connect(root / ".modelcycle" / "mlflow.db")
    try:
        row = db.execute("SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                         "WHERE t.key = 'modelcycle.window' AND t.value = ? ORDER BY r.start_time DESC LIMIT 1",
                         (window,)).fetchone()
        if row is None:
            return {}
        return {k: v for k, v in db.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (row[0],))}
    finally:
        db.close()


def window_parquet_bytes(warehouse: Path, window: str, scratch: Path) -> int:
    import duckdb

    out = scratch / f"{window}.parquet"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute(f"COPY (SELECT * FROM rides WHERE strftime(pickup_datetime, '%Y-%m') = '{window}') "
                    f"TO '{out}' (FORMAT parquet)")
    finally:
        con.close()
    size = out.stat().st_size
    out.unlink()
    return size


def one_size(train_rows: int, base: Path, env: dict[str, str], cycles: int = len(WINDOWS)) -> list[dict[str, float | str]]:
    from modelcycle.examples.taxifare import simulator

    per_month = max(1000, round(train_rows / (HISTORY_MONTHS + 0.7)))
    root = base / f"rows-{train_rows}"
    modelcycle = str(Path(sys.executable).parent / "modelcycle")
    subprocess.run([modelcycle, "init", str(root), "--example", "taxifare", "--rows-per-month", "1000"],
                   check=True, env=env, capture_output=True)
    warehouse = root / ".modelcycle" / "warehouse.duckdb"
    started = time.perf_counter()
    simulator.write_warehouse(warehouse, FIRST, WINDOWS[-1], rows_per_month=per_month)
    print(f"  {train_rows:,} training rows: {per_month:,} rides a month simulated "
          f"{FIRST}..{WINDOWS[-1]} in {time.perf_counter() - started:.0f} s", flush=True)
    cache, remote = root / ".dvc" / "cache", root / ".modelcycle" / "dvc-remote"
    out = []
    for window in WINDOWS[:cycles]:
        before, had = (du(cache), du(remote)), cache_objects(cache)
        timed = subprocess.run(["/usr/bin/time", "-f", "%M %e", modelcycle, "run", "--window", window],
                               cwd=root, env=env, capture_output=True, text=True)
        if timed.returncode != 0:
            raise SystemExit(f"modelcycle run --window {window} failed:\n{timed.stdout[-2000:]}\n{timed.stderr[-2000:]}")
        rss_kib, wall = timed.stderr.strip().splitlines()[-1].split()
        m = metrics(root, window)
        compute = m.get("seconds_fit", 0.0) + m.get("seconds_challenger_predict", 0.0)
        cycle = sum(m.get(f"seconds_{lap}", 0.0) for lap in LAPS)
        out.append({"size": train_rows, "window": window, "rows": m.get("rows_train", 0.0), "wall": float(wall),
                    "cycle": cycle, "compute": compute, "overhead": cycle - compute, "act": m.get("seconds_act", 0.0),
                    "rows_s": sum(m.get(f"seconds_{lap}", 0.0) for lap in ("fetch", "validate", "prepare")),
                    "rss_gib": int(rss_kib) / 2**20, "cache_mb": (du(cache) - before[0]) / 1e6,
                    "remote_mb": (du(remote) - before[1]) / 1e6,
                    "parquet_mb": window_parquet_bytes(warehouse, window, base) / 1e6,
                    "partition_mb": size_of(root / "data" / "raw" / f"{window}.parquet") / 1e6,
                    "model_mb": du(root / "models" / "challenger") / 1e6})
        data = data_md5s(root)
        out[-1]["data_mb"] = sum(size for md5, size in cache_objects(cache).items()
                                 if md5 in data and md5 not in had) / 1e6
        print("  " + row_text(out[-1]), flush=True)
    return out


HEADER = (f"{'train rows':>11} {'window':8} {'rows':>10} {'process s':>9} {'cycle s':>7} {'compute s':>9} {'overhead s':>10} "
          f"{'rows s':>6} {'other s':>7} {'act s':>6} {'peak GiB':>8} {'cache+ MB':>9} {'remote+ MB':>10} {'window MB':>9} {'partition MB':>12} "
          f"{'model MB':>8} {'data+ MB':>8}")


def row_text(r: dict[str, float | str]) -> str:
    return (f"{r['size']:>11,} {r['window']:8} {r['rows']:>10,.0f} {r['wall']:>9.1f} {r['cycle']:>7.1f} "
            f"{r['compute']:>9.1f} "
            f"{r['overhead']:>10.1f} {r['rows_s']:>6.1f} {float(r['overhead']) - float(r['rows_s']):>7.1f} "
            f"{r['act']:>6.2f} {r['rss_gib']:>8.2f} {r['cache_mb']:>9.2f} "
            f"{r['remote_mb']:>10.2f} {r['parquet_mb']:>9.2f} {r['partition_mb']:>12.2f} {r['model_mb']:>8.2f} "
            f"{r['data_mb']:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", default="150000,1500000", help="training rows per size, comma-separated")
    parser.add_argument("--keep", type=Path, help="make the workspaces here and keep them")
    parser.add_argument("--cycles", type=int, default=len(WINDOWS), choices=range(1, len(WINDOWS) + 1),
                        help="cycles per size (the first has no champion: 2 measure a full cycle)")
    args = parser.parse_args()
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true",
               MLFLOW_DISABLE_TELEMETRY="true")
    base = args.keep or Path(tempfile.mkdtemp(prefix="modelcycle-bench-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in (int(s) for s in args.train_rows.split(",")):
            rows += one_size(size, base, env, args.cycles)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(HEADER)
    for r in rows:
        print(row_text(r))
    later = [r for r in rows if r["window"] != WINDOWS[0]] or rows  # the first cycle has no champion
    print(f"\ngoals: overhead <= {GOAL_OVERHEAD_S} s (max after the first cycle: "
          f"{max(float(r['overhead']) for r in later):.1f} s, of which other than reading rows: "
          f"{max(float(r['overhead']) - float(r['rows_s']) for r in later):.1f} s); storage per cycle <= {GOAL_STORAGE} x the window's "
          f"Parquet (max cache+ / window: {max(float(r['cache_mb']) / float(r['parquet_mb']) for r in later):.1f} x, "
          f"without the model: {max(float(r['data_mb']) / float(r['parquet_mb']) for r in later):.2f} x); "
          f"10M rows <= {GOAL_SECONDS:.0f} s and <= {GOAL_RSS_GIB} GiB")


if __name__ == "__main__":
    main()
