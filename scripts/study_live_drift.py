"""How soon the data watcher sees drift while a month arrives, day by day, on the taxi simulator.

A taxifare workspace (its first champion trained on 2014) goes through 2015-01..2015-06. Before
each month's cycle, the month's rides are taken out of the warehouse and put back one day at a
time; after each day the watcher's drift check (`watch.check_drift`, what `modelcycle worker`
runs between windows) looks at the rows so far against the champion's training rows, exactly as
it does live. The first day it fires, and the columns it names, are compared with the
simulator's truth (`simulator.regime_changes()`): a fire in a quiet month is a false alarm, no
fire in a changed month a miss, and the delay is counted in days from the change's first day.
Then the month is whole again and its cycle runs, so the next month is watched against the
champion a deployed workspace would have then.

    python scripts/study_live_drift.py [--rows-per-month N] [--months 2015-01 ... 2015-06]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

EXE = str(Path(sys.executable).with_name("modelcycle"))


def sh(*args: str) -> None:
    subprocess.run([EXE, *args], check=True, capture_output=True, text=True,
                   env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-per-month", type=int, default=None)
    ap.add_argument("--months", nargs="+", default=[f"2015-{m:02d}" for m in range(1, 7)])
    args = ap.parse_args()

    from modelcycle.config import Window, Workspace
    from modelcycle.examples.taxifare.simulator import regime_changes
    from modelcycle.lifecycle import automation, watch
    from modelcycle.lifecycle.services import open_services

    truth = {c["window"]: c for c in regime_changes()}
    tmp = Path(tempfile.mkdtemp(prefix="study-live-drift-"))
    ws_root = tmp / "ws"
    try:
        init = ["init", str(ws_root), "--example", "taxifare"]
        if args.rows_per_month:
            init += ["--rows-per-month", str(args.rows_per_month)]
        sh(*init)
        sh("-w", str(ws_root), "run", "--window", "2014-12")
        warehouse = ws_root / ".modelcycle" / "warehouse.duckdb"
        whole = tmp / "whole.duckdb"
        shutil.copy(warehouse, whole)
        print(f"{'month':8} {'truth':34} {'fired':12} {'delay':>7}  columns (PSI)")
        alarms = misses = 0
        for label in args.months:
            month = Window.parse(label)
            with duckdb.connect(str(warehouse)) as con:  # closed before the watcher reads (one process)
                con.execute("DELETE FROM rides WHERE pickup_datetime >= CAST(? AS TIMESTAMP)", [month.start])
            svc = open_services(ws_root, committable=False)
            announced = watch.Announced(tmp / f"watch-{label}.json")
            fired: tuple[datetime, dict[str, Any]] | None = None
            day = month.start
            while day < month.end and fired is None:
                nxt = day + timedelta(days=1)
                with duckdb.connect(str(warehouse)) as con:
                    con.execute(f"ATTACH '{whole}' AS whole (READ_ONLY)")
                    con.execute("INSERT INTO rides SELECT * FROM whole.rides WHERE pickup_datetime >= ? AND "
                                "pickup_datetime < ?", [day, nxt])
                sent: list[dict[str, Any]] = []

                def send(_ws: Any, _event: str, _window: Any, _why: str, sent: list = sent, **payload: Any) -> None:
                    sent.append(payload)

                watch.check_drift(svc, announced, watch.DriftWatch(), automation.look(svc, now=nxt), now=nxt,
                                  send=send)
                if sent:
                    fired = (day, sent[0].get("drifted", {}))
                day = nxt
            shutil.copy(whole, warehouse)
            change = truth.get(label)
            what = f"{change['kind']} from {change['effective']}" if change else "quiet"
            if fired is None:
                misses += bool(change)
                print(f"{label:8} {what:34} {'no':12} {'':>7}  {'MISS' if change else ''}")
            else:
                fired_day, cols = fired
                alarms += not change
                delay = ""
                if change:
                    start = datetime.fromisoformat(str(change["effective"]))
                    delay = f"{(fired_day + timedelta(days=1) - start).days} d"
                listed = ", ".join(f"{c} {p:.2f}" for c, p in cols.items())
                print(f"{label:8} {what:34} {fired_day:%Y-%m-%d}   {delay:>7}  {listed}"
                      + ("  FALSE ALARM" if not change else ""), flush=True)
            sh("-w", str(ws_root), "run", "--window", label)
        print(f"\nfalse alarms {alarms}, misses {misses} over {len(args.months)} months "
              f"(drift.threshold {Workspace.load(ws_root).config.drift.threshold}, "
              f"drift.min_rows {Workspace.load(ws_root).config.drift.min_rows})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
