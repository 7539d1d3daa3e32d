"""How often does the gate promote a candidate no better than the champion, with k candidates?
(not a test; prints figures)

A/A on simulated scores: the champion and k candidates predict the same targets with errors of
the same distribution (independent draws), scored by MAE on the same held-out rows, so every
promotion is a false one. For k = 1, 3, 5 the share of trials in which *any* candidate is
promoted, with the gate's Bonferroni correction (each interval at 1 - alpha/k) and without it
(each at 1 - alpha), at min_effect 0 (the bare test: one-sided alpha/2 = 2.5 % for one
challenger) and at the default min_effect 0.01.

Run: .venv/bin/python scripts/study_candidates.py [--trials 400] [--rows 1000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from modelcycle.gate import Outcome, Policy, choose
from modelcycle.steps.evaluate import Scores


def _scores(y: np.ndarray, noise: np.ndarray) -> Scores:
    pred = y + noise
    return Scores(metric="mae", value=float(np.mean(np.abs(pred - y))), rows=len(y), y_true=y, y_pred=pred)


def false_promotion_rate(k: int, *, correct: bool, min_effect: float, trials: int, rows: int, resamples: int,
                         seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    promoted = 0
    for t in range(trials):
        y = rng.normal(10, 3, rows)
        champion = _scores(y, rng.normal(0, 1, rows))
        candidates = {f"c{i}": _scores(y, rng.normal(0, 1, rows)) for i in range(k)}
        policy = Policy(metric="mae", threshold=10.0, min_effect=min_effect, resamples=resamples, seed=t)
        promoted += choose(champion, candidates, policy, correct=correct).decision.outcome is Outcome.PROMOTE
    return promoted / trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    a = ap.parse_args()
    started = time.perf_counter()
    print(f"A/A false-promotion rate, {a.trials} trials of {a.rows} held-out rows, {a.resamples} resamples, "
          "confidence 0.95")
    print(f"{'min_effect':>10} {'k':>3} {'corrected':>10} {'uncorrected':>12}")
    for min_effect in (0.0, 0.01):
        for k in (1, 3, 5):
            kw = {"min_effect": min_effect, "trials": a.trials, "rows": a.rows, "resamples": a.resamples}
            c = false_promotion_rate(k, correct=True, **kw)
            u = false_promotion_rate(k, correct=False, **kw)
            print(f"{min_effect:>10.2f} {k:>3} {c:>10.1%} {u:>12.1%}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
