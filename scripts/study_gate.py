"""Does the gate decide right? A study on simulated cab rides (not a test; prints figures).

Three questions, each answered for modelcycle's gate (a paired bootstrap interval of the
challenger's improvement, with the demo's settings) and for a naive "lower number wins" gate:

1. **A/A: how often is noise promoted?** The champion and the challenger are trained the same way
   on the same rows (the demo's recipe: a year of history and the window's first 70 %), with
   different seeds, and scored on the same held-out rows (the window's last 30 %, 3,600 rows at
   the demo's size). Neither is better, so every promotion is a false one. Goal: <= 5 %.
2. **A real improvement of a known size: how often is it promoted?** The challenger is a trained
   model; the champion is the same model made worse by a known amount, calibrated on 100,000
   independent rows of the same month so that its expected MAE is exactly 3 % higher, in two ways:
   *noise* (random prediction errors added) and *bias* (every prediction scaled up, as a model
   that missed a price rise would be; its errors differ from the challenger's row by row in a
   structured way, which makes the comparison harder). Each trial scores both on a fresh,
   independent holdout of the demo's size. Goal: >= 80 %. A smaller table shows how the promotion
   rate grows with the improvement's size.
3. **The scenario: is every backtest decision right?** The demo's backtest (2015-01..2015-06)
   against the simulator's ground truth (promote after the fare change, escalate on the
   broken-data month, keep otherwise). Goal: every decision right.

Run: .venv/bin/python scripts/study_gate.py [--trials 40] [--improvement-trials 200] [--skip-scenario]
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

ROWS_PER_MONTH = 12_000
HISTORY_MONTHS = 12
HOLDOUT_FRACTION = 0.3
SIM_SEED = 7
# months without a regime change, with a year of history inside the simulated range
NORMAL = [str(m) for m in pd.period_range("2013-01", "2015-02", freq="M")]


def _spec(seed: int):
    from modelcycle.examples.taxifare.simulator import DEFAULT_MODEL_PARAMS
    from modelcycle.steps.train import TrainSpec

    cols = ["fare_amount", "pickup_datetime", "pickup_longitude", "pickup_latitude", "dropoff_longitude",
            "dropoff_latitude", "passenger_count"]
    params = {**DEFAULT_MODEL_PARAMS, "random_state": seed}
    return TrainSpec(estimator="lightgbm:LGBMRegressor", target="fare_amount", task="regression",
                     input_columns=cols, features="modelcycle.examples.taxifare.features:taxi_features", params=params, seed=seed)


def _data_contract():
    from modelcycle.config.models import DataConfig

    return DataConfig(
        timestamp="pickup_datetime", target="fare_amount",
        columns={"fare_amount": "float", "pickup_datetime": "datetime", "pickup_longitude": "float",
                 "pickup_latitude": "float", "dropoff_longitude": "float", "dropoff_latitude": "float",
                 "passenger_count": "int"},
        rules={"fare_amount": {"min": 0.01, "max": 400}, "passenger_count": {"min": 1, "max": 8},
               "pickup_latitude": {"min": 40.5, "max": 40.9}, "pickup_longitude": {"min": -74.3, "max": -73.7},
               "dropoff_latitude": {"min": 40.5, "max": 40.9}, "dropoff_longitude": {"min": -74.3, "max": -73.7}})


def window_split(window: str, sim_seed: int = SIM_SEED, rows: int = ROWS_PER_MONTH):
    """The demo cycle's train and holdout rows for ``window`` (same code path as a cycle)."""
    from modelcycle.config import Window
    from modelcycle.examples.taxifare.simulator import TaxiSimulator
    from modelcycle.steps.split import chronological
    from modelcycle.steps.validate import validate

    w = Window.parse(window)
    start = w.history_start(HISTORY_MONTHS)
    sim = TaxiSimulator(seed=sim_seed, rows_per_month=rows)
    raw = sim.generate(f"{start:%Y-%m}", window)
    clean, _ = validate(raw, _data_contract(), window_start=w.start)
    return chronological(clean, timestamp="pickup_datetime", window_start=w.start, window_end=w.end,
                         holdout_fraction=HOLDOUT_FRACTION)


def fresh_holdout(window: str, seed: int, rows: int = ROWS_PER_MONTH) -> pd.DataFrame:
    """An independent holdout of the demo's size: the same month simulated with another seed."""
    from modelcycle.config import Window
    from modelcycle.examples.taxifare.simulator import TaxiSimulator
    from modelcycle.steps.split import chronological
    from modelcycle.steps.validate import validate

    w = Window.parse(window)
    month = TaxiSimulator(seed=seed, rows_per_month=rows).month(w.start.year, w.start.month)
    clean, _ = validate(month, _data_contract(), window_start=w.start)
    return chronological(clean, timestamp="pickup_datetime", window_start=w.start, window_end=w.end,
                         holdout_fraction=HOLDOUT_FRACTION).holdout


def aa_trial(args: tuple[int, str]) -> dict:
    """Two models trained the same way on the same rows (different seeds), scored on the same rows."""
    from modelcycle.steps.evaluate import evaluate
    from modelcycle.steps.train import fit

    trial, window = args
    split = window_split(window)
    a = fit(split.train, _spec(1000 + 2 * trial)).model
    b = fit(split.train, _spec(1001 + 2 * trial)).model
    sa = evaluate(a, split.holdout, target="fare_amount", metric="mae")
    sb = evaluate(b, split.holdout, target="fare_amount", metric="mae")
    return {"trial": trial, "window": window, "champion": sa, "challenger": sb}


def _bisect(worse: callable, target: float, hi: float) -> float:
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if worse(mid) < target else (lo, mid)
    return (lo + hi) / 2


def improvement_setup(args: tuple[str, tuple[float, ...]]) -> dict:
    """Train the challenger for ``window``; for each size, calibrate the champion's degradation so
    its expected MAE is ``1 + size`` times the challenger's, on 100,000 independent rows."""
    from modelcycle.config import Window
    from modelcycle.examples.taxifare.simulator import TaxiSimulator
    from modelcycle.steps.train import fit
    from modelcycle.steps.validate import validate

    window, sizes = args
    model = fit(window_split(window).train, _spec(17)).model
    w = Window.parse(window)
    big = TaxiSimulator(seed=999, rows_per_month=100_000).month(w.start.year, w.start.month)
    big, _ = validate(big, _data_contract(), window_start=w.start)
    y = big["fare_amount"].to_numpy()
    p = model.predict(big.drop(columns=["fare_amount"]))
    z = np.random.default_rng(0).standard_normal(len(y))
    base = np.abs(y - p).mean()
    degrade = {}
    for size in sizes:
        target = (1 + size) * base
        degrade[("noise", size)] = _bisect(lambda s: np.abs(y - p - s * z).mean(), target, 5.0)
        degrade[("bias", size)] = _bisect(lambda b: np.abs(y - p * (1 + b)).mean(), target, 1.0)
    return {"window": window, "model": model, "degrade": degrade}


def improvement_trial(args: tuple[int, dict, str, float]) -> dict:
    from modelcycle.steps.evaluate import Scores, evaluate

    trial, setup, kind, size = args
    holdout = fresh_holdout(setup["window"], seed=5000 + trial)
    chall = evaluate(setup["model"], holdout, target="fare_amount", metric="mae")
    amount = setup["degrade"][(kind, size)]
    if kind == "noise":
        worse = chall.y_pred + amount * np.random.default_rng(7000 + trial).standard_normal(len(chall.y_pred))
    else:
        worse = chall.y_pred * (1 + amount)
    champ = Scores(metric="mae", value=float(np.abs(chall.y_true - worse).mean()), rows=chall.rows,
                   y_true=chall.y_true, y_pred=worse)
    return {"trial": trial, "window": setup["window"], "champion": champ, "challenger": chall}


def gates():
    from modelcycle.gate import Policy

    demo = Policy(metric="mae", threshold=2.5, min_effect=0.01, confidence=0.95, resamples=2000)
    return {
        "modelcycle (interval above 1%)": demo,
        "interval above 0 (test alone)": replace(demo, min_effect=0.0),
        "naive: lower number wins": replace(demo, test="none", min_effect=0.0),
    }


def promotion_rates(trials: list[dict]) -> dict[str, tuple[int, int]]:
    from modelcycle.gate import Outcome, decide

    out = {}
    for name, policy in gates().items():
        promoted = sum(decide(t["champion"], t["challenger"], replace(policy, seed=t["trial"])).outcome
                       is Outcome.PROMOTE for t in trials)
        out[name] = (promoted, len(trials))
    return out


def scenario() -> tuple[int, int, list[str], list[dict]]:
    """Run the demo in a temporary folder and check its decisions against the ground truth."""
    from modelcycle.config import Workspace
    from modelcycle.lifecycle import reference

    base = Path(tempfile.mkdtemp(prefix="modelcycle-study-"))
    try:
        exe = Path(sys.executable).with_name("modelcycle")
        proc = subprocess.run([str(exe), "demo", str(base / "demo")], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"the demo failed:\n{proc.stderr[-3000:]}")
        rows = json.loads((base / "demo/reports/backtest-2015-01-2015-06.json").read_text())

        results = [SimpleNamespace(window=r["window"], outcome=r["outcome"]) for r in rows]
        ws = Workspace.load(base / "demo")
        truth = reference.expected_decisions(ws, reference.load(ws), [r.window for r in results],
                                             first_has_champion=False)
        right, checked, wrong = reference.check(results, truth)
        table = [{"window": r.window, "decision": r.outcome, "truth": truth[r.window].expected,
                  "what": truth[r.window].what} for r in results]
        return right, checked, wrong, table
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="A/A trials (each trains two models)")
    parser.add_argument("--improvement", type=float, default=0.03, help="the real improvement's size")
    parser.add_argument("--improvement-trials", type=int, default=200)
    parser.add_argument("--curve", type=lambda t: tuple(float(x) for x in t.split(",")),
                        default=(0.005, 0.01, 0.02, 0.03, 0.05), help="sizes for the promotion-rate table")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--skip-scenario", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()

    print(f"A/A: {args.trials} trials, two LightGBM models each (the demo's recipe), {args.jobs} processes ...",
          flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        aa = list(pool.map(aa_trial, [(t, NORMAL[t % len(NORMAL)]) for t in range(args.trials)]))
    holdout_rows = int(np.median([t["challenger"].rows for t in aa]))

    windows = NORMAL[-4:]
    sizes = tuple(sorted({*args.curve, args.improvement}))
    print(f"a real improvement: {args.improvement_trials} trials per kind and size on fresh holdouts "
          f"of {windows} ...", flush=True)
    imp: dict[tuple[str, float], list[dict]] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        setups = list(pool.map(improvement_setup, [(w, sizes) for w in windows]))
        for kind in ("noise", "bias"):
            for size in sizes:
                n = args.improvement_trials if size == args.improvement else max(40, args.improvement_trials // 4)
                imp[(kind, size)] = list(pool.map(
                    improvement_trial, [(t, setups[t % len(setups)], kind, size) for t in range(n)]))

    aa_rates = promotion_rates(aa)
    main_rates = {kind: promotion_rates(imp[(kind, args.improvement)]) for kind in ("noise", "bias")}
    print(f"\nholdout rows per trial: {holdout_rows} (the demo's window size)")
    for kind in ("noise", "bias"):
        got = np.mean([t["champion"].value / t["challenger"].value - 1 for t in imp[(kind, args.improvement)]])
        print(f"real improvement ({kind}): champion MAE +{args.improvement:.0%} by construction, "
              f"+{got:.1%} measured on the trials' holdouts")
    real = format(args.improvement, ".0%")
    head = (f"{'gate':32} {'false promotions (A/A)':>23} {'promoted, real ' + real + ' (noise)':>27} "
            f"{'promoted, real ' + real + ' (bias)':>26}")
    print("\n" + head + "\n" + "-" * len(head))
    for name in aa_rates:
        (fa, na) = aa_rates[name]
        (pn, nn), (pb, nb) = main_rates["noise"][name], main_rates["bias"][name]
        print(f"{name:32} {fa:>6}/{na:<3} = {fa / na:6.1%}   {pn:>8}/{nn:<3} = {pn / nn:6.1%}"
              f"   {pb:>7}/{nb:<3} = {pb / nb:6.1%}")
    ours = "modelcycle (interval above 1%)"
    print("\npromotion rate of modelcycle's gate by the improvement's size (naive gate in brackets)")
    print(f"{'size':>6} " + " ".join(f"{k:>16}" for k in ("noise", "bias")))
    for size in sizes:
        cells = []
        for kind in ("noise", "bias"):
            r = promotion_rates(imp[(kind, size)])
            (p, n), (q, _) = r[ours], r["naive: lower number wins"]
            cells.append(f"{p / n:6.0%} ({q / n:4.0%})")
        print(f"{size:6.1%} " + " ".join(f"{c:>16}" for c in cells))
    fa_rate = aa_rates[ours][0] / aa_rates[ours][1]
    pi_rates = {k: main_rates[k][ours][0] / main_rates[k][ours][1] for k in main_rates}
    print(f"\ngoals: false promotions <= 5%: {fa_rate:.1%} {'ok' if fa_rate <= 0.05 else 'MISSED'}; "
          + "; ".join(f"real {real} ({k}) promoted >= 80%: {v:.1%} {'ok' if v >= 0.8 else 'MISSED'}"
                      for k, v in pi_rates.items()))

    if not args.skip_scenario:
        print("\nscenario: the demo's backtest against the simulator's ground truth ...", flush=True)
        right, checked, wrong, table = scenario()
        for row in table:
            mark = "ok" if row["decision"] == row["truth"] else "WRONG"
            print(f"  {row['window']}  decision {row['decision']:9} truth {row['truth']:9} {mark:5}  {row['what']}")
        print(f"goal: every scenario decision right: {right}/{checked} {'ok' if not wrong else 'MISSED'}")
    print(f"\nstudy time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
