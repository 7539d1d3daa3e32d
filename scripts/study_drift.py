"""Does drift detection see what the taxi simulator changed? A study (not a test; prints a table).

Each month of a range (default 2015-01..2015-06, the demo's backtest) is compared, column by
column with :func:`modelcycle.steps.drift.drift_report`, with the twelve months before it -- the
year of history a monthly champion is trained on -- and the drifted columns are set beside the
simulator's ground truth (``regime_changes()``):

* a fare change (2012-09, 2015-03) should show as drift of the target, ``fare_amount``;
* the broken-data month (2015-05: 30 % of the rows with zeroed or swapped coordinates) should
  show as drift of the four coordinate columns;
* the months after a fare change are compared with a year that is still mostly at the old fares,
  so ``fare_amount`` drift is expected there too (the champion's training rows lag the change)
  until the year has turned over (counted as expected, neither a false alarm nor a miss);
* every other month should show no drift at all.

Run: PYTHONPATH=src .venv/bin/python scripts/study_drift.py [--start 2015-01] [--end 2015-06]
     [--threshold 0.2] [--rows-per-month 12000] [--seed 7]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from modelcycle.examples.taxifare.simulator import DEFAULT_ROWS_PER_MONTH, TaxiSimulator, regime_changes
from modelcycle.steps.drift import DEFAULT_THRESHOLD, drift_report

COLUMNS = {"fare_amount": "float", "pickup_datetime": "datetime", "pickup_longitude": "float",
           "pickup_latitude": "float", "dropoff_longitude": "float", "dropoff_latitude": "float",
           "passenger_count": "int"}
COORDINATES = {"pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude"}


def _months(start: str, end: str) -> list[pd.Period]:
    return list(pd.period_range(start, end, freq="M"))


def expected(month: pd.Period) -> tuple[set[str], set[str], str]:
    """(columns that must drift, columns that may drift, the truth in words) for ``month``."""
    must: set[str] = set()
    may: set[str] = set()
    truth = []
    for change in regime_changes():
        changed = pd.Period(change["window"], freq="M")
        if change["kind"] == "fare_change":
            if month == changed:
                must.add("fare_amount")
                truth.append(change["headline"])
            elif changed < month <= changed + 11:  # the reference year still holds old fares
                may.add("fare_amount")
                truth.append(f"{(month - changed).n} month(s) after the {change['window']} fare change")
        elif change["kind"] == "broken_data" and month == changed:
            must |= COORDINATES
            truth.append(change["headline"])
        elif change["kind"] == "broken_data" and changed < month <= changed + 11:
            may |= COORDINATES  # the broken month is part of the reference year
            truth.append(f"reference holds the broken {change['window']}")
    return must, may, "; ".join(truth) or "quiet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="2015-01")
    parser.add_argument("--end", default="2015-06")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--rows-per-month", type=int, default=DEFAULT_ROWS_PER_MONTH)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", default="fare_amount,pickup_latitude,pickup_datetime",
                        help="columns whose PSI is printed")
    args = parser.parse_args()

    sim = TaxiSimulator(seed=args.seed, rows_per_month=args.rows_per_month)
    shown = [c for c in args.show.split(",") if c]
    cache: dict[pd.Period, pd.DataFrame] = {}

    def rows(p: pd.Period) -> pd.DataFrame:
        if p not in cache:
            cache[p] = sim.month(p.year, p.month)
        return cache[p]

    header = f"{'month':8} {'drifted columns':42} " + " ".join(f"{'psi ' + c[:12]:>17}" for c in shown)
    print(f"threshold: PSI > {args.threshold}; reference: the 12 months before each month "
          f"({args.rows_per_month} rows a month)\n")
    print(header + "  truth / verdict")
    false_alarms = misses = quiet = 0
    seconds = 0.0
    quiet_max = ("-", 0.0)
    for month in _months(args.start, args.end):
        reference = pd.concat([rows(month - k) for k in range(12, 0, -1)], ignore_index=True)
        began = time.perf_counter()
        report = drift_report(reference, rows(month), COLUMNS, threshold=args.threshold)
        seconds = max(seconds, time.perf_counter() - began)
        drifted = set(report.drifted)
        must, may, truth = expected(month)
        quiet += not (must or may)
        missed = must - drifted
        false = drifted - must - may
        misses += len(missed)
        false_alarms += len(false)
        verdict = []
        if missed:
            verdict.append(f"MISSED {', '.join(sorted(missed))}")
        if false:
            verdict.append(f"FALSE ALARM {', '.join(sorted(false))}")
        listed = sorted(drifted, key=lambda c: -report.columns[c].psi)
        if drifted >= COORDINATES:
            listed = ["4 coordinates"] + [c for c in listed if c not in COORDINATES]
        names = ", ".join(listed) or "-"
        if not (must or may):
            for name, col in report.columns.items():
                if col.psi > quiet_max[1]:
                    quiet_max = (f"{name} in {month}", col.psi)
        figures = " ".join(f"{report.columns[c].psi:17.3f}" for c in shown)
        print(f"{str(month):8} {names:42} {figures}  {truth}{' -> ' + '; '.join(verdict) if verdict else ''}")
    print(f"\nfalse alarms (columns): {false_alarms}; misses (columns): {misses}; quiet months: {quiet}; "
          f"slowest report: {seconds * 1000:.0f} ms for {len(COLUMNS)} columns")
    print(f"largest PSI of any column in a quiet month: {quiet_max[1]:.3f} ({quiet_max[0]})")


if __name__ == "__main__":
    main()
