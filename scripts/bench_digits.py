"""Benchmark of the digits example (not a test; prints figures and the goal they are held against).

It runs `modelcycle demo DIR --example digits` in a fresh folder as a user would (the torch extra
installed), then reads the cycle results the demo wrote and prints, per cycle:

- wall       the cycle's wall time as the backtest saw it (the Prefect flow run included)
- train      the challenger's fit (the CNN's epochs: decoding the images, training, the best epoch kept)
- compute    model compute on the critical path (fit + the challenger's predictions)
- overhead   wall - compute: everything the lifecycle adds (Prefect, MLflow, DVC + git, image checks, I/O)
- accuracy of the challenger and of the serving champion on the window's held-out images, beside
  a logistic regression on raw pixels trained and scored on the same rows (the workspace's own
  validation and chronological split, rebuilt here from the source)

Goal: the whole example (the demo command) in under 3 minutes on 2 cores.

Run: .venv/bin/python scripts/bench_digits.py [--keep DIR]
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

GOAL_DEMO_S = 180.0


def logistic_baseline(ws_root: Path, windows: list[str]) -> dict[str, tuple[float, int]]:
    """Accuracy of a logistic regression on raw pixels on each cycle's own train/holdout rows."""
    from modelcycle.config import Window, Workspace
    from modelcycle.examples.digits.baseline import logistic_regression
    from modelcycle.sources import build_source
    from modelcycle.steps.split import chronological
    from modelcycle.steps.validate import validate

    ws = Workspace.load(ws_root)
    source = build_source(ws.config, ws.root)
    image = next(name for name, kind in ws.config.data.columns.items() if kind == "image")
    out: dict[str, tuple[float, int]] = {}
    for label in windows:
        w = Window.parse(label)
        raw = source.fetch(w.history_start(ws.params.data.history_months), w.end)
        clean, _ = validate(raw, ws.config.data, window_start=w.start)
        split = chronological(clean, timestamp=ws.config.data.timestamp, window_start=w.start, window_end=w.end,
                              holdout_fraction=ws.params.split.holdout_fraction)
        found = logistic_regression(split.train, split.holdout, image=image, target=ws.config.data.target)
        out[label] = (found.accuracy, found.holdout_rows)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the demo here and keep it (default: a temp folder)")
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("modelcycle")
    base = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="modelcycle-bench-digits-"))
    target = base / "demo" if not args.keep else base
    env = {**os.environ, "COLUMNS": "160"}
    print(f"running: {exe} demo {target} --example digits", flush=True)
    started = time.perf_counter()
    proc = subprocess.run([str(exe), "demo", str(target), "--example", "digits"], env=env, capture_output=True,
                          text=True)
    demo_seconds = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
        print(f"the demo failed (exit {proc.returncode})")
        return 1
    results = json.loads((target / "reports/backtest-2015-01-2015-06.json").read_text())
    logistic = logistic_baseline(target, [r["window"] for r in results])

    print(f"\ndemo wall time (after install): {demo_seconds:.1f} s   goal <= {GOAL_DEMO_S:.0f} s   "
          f"{'ok' if demo_seconds <= GOAL_DEMO_S else 'MISSED'}\n")
    head = (f"{'window':8} {'wall s':>7} {'train s':>7} {'compute s':>9} {'overhead s':>10}  {'held-out':>8} "
            f"{'challenger':>10} {'serving':>8} {'logistic':>8}  {'decision':12} truth")
    print(head)
    print("-" * len(head))
    overheads, trains, gaps = [], [], []
    for i, r in enumerate(results):
        t = r["timings"]
        wall, compute = t.get("wall", float("nan")), r["compute_seconds"]
        train = t.get("fit", float("nan"))
        overhead = wall - compute
        serving = r["challenger_score"] if r["outcome"] == "promote" else r["champion_score"]
        lr, rows = logistic[r["window"]]
        if i > 0:
            overheads.append(overhead)
        trains.append(train)
        if serving is not None:
            gaps.append(serving - lr)
        truth = r.get("truth") or {}
        mark = "" if not truth else ("right" if truth.get("right") else f"expected {truth.get('expected')}")
        serving_text = f"{serving:8.3f}" if serving is not None else f"{'-':>8}"
        print(f"{r['window']:8} {wall:7.2f} {train:7.2f} {compute:9.2f} {overhead:10.2f}  {rows:8d} "
              f"{r['challenger_score']:10.3f} {serving_text} {lr:8.3f}  {r['outcome']:12} {mark}")
    print(f"\nper cycle after the first: overhead mean {sum(overheads) / len(overheads):.2f} s, "
          f"max {max(overheads):.2f} s; training mean {sum(trains) / len(trains):.2f} s")
    if gaps:
        print(f"serving champion minus logistic regression, accuracy on the same held-out images: "
              f"mean {sum(gaps) / len(gaps):+.3f}, min {min(gaps):+.3f}, max {max(gaps):+.3f}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
