"""Benchmark of the demo (not a test; prints figures and the goals they are held against).

It runs `modelcycle demo` in a fresh folder as a user would (after install), then reads the
cycle results the demo wrote and prints, per cycle:

- wall       the cycle's wall time as the backtest saw it (the Prefect flow run included)
- compute    model compute on the critical path: feature building + fit of the challenger (the
             champion's load and predictions run beside it, on the other core), then the
             challenger's predictions
- overhead   wall - compute: everything the lifecycle adds (Prefect, MLflow, DVC + git, I/O)
- MAE ÷ floor for the challenger (a fresh model) and for the serving champion, where the floor is
  the simulator's irreducible error on the same held-out rows
- the MAE ÷ floor of a plain linear regression on trip distance, trained and scored on the same
  rows, so a reader sees the floor is not trivially close

Goals: overhead <= 1.5 s a cycle during the backtest; demo <= 90 s; challenger MAE <= 1.05 x
floor on windows without a regime change.

Run: make bench   (or .venv/bin/python scripts/bench_demo.py [--keep DIR])
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_OVERHEAD_S = 1.5
GOAL_DEMO_S = 90.0
GOAL_RATIO = 1.05


def linear_baseline(ws_root: Path, windows: list[str]) -> dict[str, float]:
    """MAE of a linear regression on haversine distance, on each cycle's own train/holdout rows."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from modelcycle.config import Window, Workspace
    from modelcycle.sources import build_source
    from modelcycle.steps.features import haversine_km
    from modelcycle.steps.split import chronological
    from modelcycle.steps.validate import validate

    ws = Workspace.load(ws_root)
    source = build_source(ws.config, ws.root)
    out: dict[str, float] = {}

    def dist(frame):
        return haversine_km(frame["pickup_latitude"].to_numpy(), frame["pickup_longitude"].to_numpy(),
                            frame["dropoff_latitude"].to_numpy(), frame["dropoff_longitude"].to_numpy()).reshape(-1, 1)

    for label in windows:
        w = Window.parse(label)
        raw = source.fetch(w.history_start(ws.params.data.history_months), w.end)
        clean, _ = validate(raw, ws.config.data, window_start=w.start)
        split = chronological(clean, timestamp=ws.config.data.timestamp, window_start=w.start, window_end=w.end,
                              holdout_fraction=ws.params.split.holdout_fraction)
        model = LinearRegression().fit(dist(split.train), split.train["fare_amount"])
        out[label] = float(np.mean(np.abs(model.predict(dist(split.holdout)) - split.holdout["fare_amount"])))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the demo here and keep it (default: a temp folder)")
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("modelcycle")
    base = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="modelcycle-bench-"))
    target = base / "demo" if not args.keep else base
    env = {**os.environ, "COLUMNS": "160"}
    print(f"running: {exe} demo {target}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run([str(exe), "demo", str(target)], env=env, capture_output=True, text=True)
    demo_seconds = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
        print(f"the demo failed (exit {proc.returncode})")
        return 1
    results = json.loads((target / "reports/backtest-2015-01-2015-06.json").read_text())

    from modelcycle.examples.taxifare.simulator import regime_changes

    changes = {c["window"]: c["kind"] for c in regime_changes()}
    linear = linear_baseline(target, [r["window"] for r in results])

    print(f"\ndemo wall time (after install): {demo_seconds:.1f} s   goal <= {GOAL_DEMO_S:.0f} s   "
          f"{'ok' if demo_seconds <= GOAL_DEMO_S else 'MISSED'}\n")
    head = (f"{'window':8} {'wall s':>7} {'compute s':>9} {'overhead s':>10}  {'floor':>6} "
            f"{'challenger':>10} {'÷floor':>6} {'serving':>8} {'÷floor':>6} {'linear':>7} {'÷floor':>6}  "
            f"{'decision':9} regime")
    print(head)
    print("-" * len(head))
    overheads, ratios = [], []
    for i, r in enumerate(results):
        t = r["timings"]
        wall, compute = t.get("wall", float("nan")), r["compute_seconds"]
        overhead = wall - compute
        floor = r["noise_floor"]
        serving = r["challenger_score"] if r["outcome"] == "promote" else r["champion_score"]
        regime = changes.get(r["window"], "")
        ratio = r["challenger_score"] / floor
        if i > 0:
            overheads.append(overhead)
        if not regime:
            ratios.append((r["window"], ratio))
        lin = linear[r["window"]]
        print(f"{r['window']:8} {wall:7.2f} {compute:9.2f} {overhead:10.2f}  {floor:6.3f} {r['challenger_score']:10.3f} "
              f"{ratio:6.3f} {serving:8.3f} {serving / floor:6.3f} {lin:7.3f} {lin / floor:6.3f}  "
              f"{r['outcome']:9} {regime}")
    mean_over = sum(overheads) / len(overheads)
    worst = max(ratios, key=lambda x: x[1])
    print(f"\nfirst cycle (Prefect's server already up, cold imports inside the cycle): "
          f"wall {results[0]['timings']['wall']:.2f} s, compute {results[0]['compute_seconds']:.2f} s")
    print(f"backtest overhead per cycle: mean {mean_over:.2f} s, max {max(overheads):.2f} s   "
          f"goal <= {GOAL_OVERHEAD_S} s   {'ok' if max(overheads) <= GOAL_OVERHEAD_S else 'MISSED'}")
    print(f"challenger MAE / floor on windows without a regime change: worst {worst[1]:.3f} ({worst[0]})   "
          f"goal <= {GOAL_RATIO}   {'ok' if worst[1] <= GOAL_RATIO else 'MISSED'}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
