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

**What the cycles measured.** With ``--workspace DIR`` (a taxifare workspace after a backtest,
e.g. ``modelcycle demo DIR``), the study reads instead the drift each cycle logged to its MLflow
run (``drift_psi_<column>``: the window's rows against its champion's training rows, see
modelcycle.lifecycle.driftcheck) and sets it beside the same truth:

     PYTHONPATH=src .venv/bin/modelcycle demo /tmp/demo
     PYTHONPATH=src .venv/bin/python scripts/study_drift.py --workspace /tmp/demo
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
    parser.add_argument("--workspace", default=None,
                        help="read the drift each cycle of this workspace logged to MLflow instead")
    args = parser.parse_args()
    if args.workspace:
        cycles(args.workspace, [c for c in args.show.split(",") if c])
        return

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


def logged(workspace: str) -> tuple[float, dict[str, dict[str, float]], dict[str, str]]:
    """(the workspace's drift threshold, window -> column -> PSI, window -> champion) from the
    latest finished run of each window."""
    from mlflow.tracking import MlflowClient

    from modelcycle.config import Workspace

    ws = Workspace.load(workspace)
    client = MlflowClient(tracking_uri=ws.tracking_uri)
    experiment = client.get_experiment_by_name(ws.config.name)
    assert experiment is not None, f"no MLflow experiment {ws.config.name} in {ws.tracking_uri}"
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time ASC"])
    found: dict[str, dict[str, float]] = {}
    champions: dict[str, str] = {}
    for run in runs:
        window = run.data.tags.get("modelcycle.window", "")
        psi = {k.removeprefix("drift_psi_"): v for k, v in run.data.metrics.items() if k.startswith("drift_psi_")}
        if window and psi:
            found[window] = psi
            champions[window] = run.data.tags.get("modelcycle.champion_before", "")
    return ws.config.drift.threshold, found, champions


def cycles(workspace: str, shown: list[str]) -> None:
    """The drift the workspace's cycles logged, against the simulator's truth."""
    threshold, found, champions = logged(workspace)
    print(f"threshold: PSI > {threshold}; reference: each cycle's champion's training rows ({workspace})\n")
    print(f"{'window':8} {'champion':8} {'drifted columns':42} "
          + " ".join(f"{'psi ' + c[:12]:>17}" for c in shown) + "  truth / verdict")
    false_alarms = misses = quiet = quiet_alarms = 0
    quiet_max = ("-", 0.0)
    for window in sorted(found):
        psi = found[window]
        drifted = {c for c, v in psi.items() if v > threshold}
        must, may, truth = expected(pd.Period(window, freq="M"))
        missed, false = must - drifted, drifted - must - may
        misses += len(missed)
        false_alarms += len(false)
        if not (must or may):
            quiet += 1
            quiet_alarms += bool(drifted)
            top = max(psi, key=lambda c: psi[c])
            if psi[top] > quiet_max[1]:
                quiet_max = (f"{top} in {window}", psi[top])
        verdict = ([f"MISSED {', '.join(sorted(missed))}"] if missed else []) + (
            [f"FALSE ALARM {', '.join(sorted(false))}"] if false else [])
        listed = sorted(drifted, key=lambda c: -psi[c])
        if drifted >= COORDINATES:
            listed = ["4 coordinates"] + [c for c in listed if c not in COORDINATES]
        figures = " ".join(f"{psi.get(c, float('nan')):17.3f}" for c in shown)
        print(f"{window:8} {'v' + champions[window]:8} {', '.join(listed) or '-':42} {figures}  {truth}"
              f"{' -> ' + '; '.join(verdict) if verdict else ''}")
    print(f"\ncycles: {len(found)}; false alarms (columns): {false_alarms}; misses (columns): {misses}; "
          f"quiet windows: {quiet}, with an alarm: {quiet_alarms}")
    print(f"largest PSI of any column in a quiet window: {quiet_max[1]:.3f} ({quiet_max[0]})")


if __name__ == "__main__":
    main()
