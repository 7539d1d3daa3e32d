"""Is the gate's paired bootstrap right for classifiers on small holdouts? (not a test; prints figures)

Pairs of classifiers with a known true difference are scored on simulated holdouts of 100 to 500
rows, and the gate's interval (:func:`modelcycle.gate.stats.improvement_interval`, the default
double-or-nothing resampling and, for comparison, the classic multinomial bootstrap) is checked
against the truth:

* **coverage**: how often the interval holds the true relative improvement (goal: near the
  nominal confidence, 95 %);
* **false promotions**: when both models are equally good, how often the interval's low end is
  above zero, i.e. the challenger would be promoted with ``min_effect: 0`` (goal: at most
  (1 - confidence) / 2 = 2.5 %), and with the default ``min_effect: 0.01``;
* **promotions** when the challenger is truly better (the power, for reference);
* **degenerate** intervals (low == high), which happen when both models make the same errors.

Two families of pairs:

``flips`` (accuracy only)
    Each row is, independently, right for both, right for the champion only (a negative flip),
    right for the challenger only (a positive flip) or wrong for both, with probabilities set by
    the two true accuracies and how often the models disagree. Few disagreements (models that
    make the same errors) are the hard case for a bootstrap of 0/1 losses: the interval then
    rests on a handful of rows. Includes holdouts where both models are right on every row.
``scores`` (accuracy, F1, log loss, ROC AUC; binary and 3 classes)
    Each class has a mean score per model; each model's scores are that mean plus noise, part of
    it shared by both models (they find the same rows hard). Predictions are the arg-max, class
    probabilities a softmax. The true metric of each model is computed on 400,000 rows.

Run: .venv/bin/python scripts/study_gate_classification.py [--trials 1000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from modelcycle.gate import Outcome, Policy, decide
from modelcycle.gate.stats import improvement_interval
from modelcycle.steps.evaluate import Scores, metric_value

SIZES = (100, 200, 300, 500)


def scores(metric: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None,
           classes: list | None = None) -> Scores:
    value = metric_value(metric, y, pred, proba, classes)
    return Scores(metric=metric, value=value, rows=len(y), y_true=y, y_pred=pred, proba=proba, classes=classes)


@dataclass
class Tally:
    trials: int = 0
    covered: int = 0
    above_zero: int = 0       # interval's low end > 0: promoted with min_effect 0
    promoted: int = 0         # promoted by the gate with the default min_effect (0.01)
    degenerate: int = 0
    width: float = 0.0

    def add(self, low: float, high: float, truth: float, promoted: bool) -> None:
        self.trials += 1
        self.covered += low - 1e-12 <= truth <= high + 1e-12
        self.above_zero += low > 0
        self.promoted += promoted
        self.degenerate += low == high
        self.width += high - low

    def row(self) -> str:
        t = max(self.trials, 1)
        return (f"{self.covered / t:7.1%} {self.above_zero / t:8.1%} {self.promoted / t:8.1%} "
                f"{self.degenerate / t:6.1%} {self.width / t:7.3f}")


HEADER = f"{'coverage':>8} {'low>0':>8} {'promoted':>8} {'degen':>6} {'width':>7}"


def _gate(champ: Scores, chall: Scores, resamples: int, seed: int, method: str, tally: Tally,
          truth: float) -> None:
    iv = improvement_interval(champ, chall, resamples=resamples, seed=seed, method=method)
    # the gate as a user runs it: default min_effect, a threshold both meet
    policy = Policy(metric=champ.metric, threshold=0.0 if champ.spec.greater_is_better else 1e9,
                    resamples=resamples, seed=seed, method=method)
    promoted = decide(champ, chall, policy).outcome is Outcome.PROMOTE
    tally.add(iv.low, iv.high, truth, promoted)


# family 1: flips -------------------------------------------------------------------------------

FLIP_CASES = [  # (name, champion accuracy, challenger accuracy, disagreement rate)
    ("equal 0.90, independent errors", 0.90, 0.90, 0.18),
    ("equal 0.90, 4% disagree", 0.90, 0.90, 0.04),
    ("equal 0.97, 2% disagree", 0.97, 0.97, 0.02),
    ("equal 1.00 (all right)", 1.00, 1.00, 0.0),
    ("better 0.88 -> 0.93", 0.88, 0.93, 0.09),
    ("better 0.90 -> 0.95, few flips", 0.90, 0.95, 0.05),
]


def flip_holdout(rng: np.random.Generator, n: int, a: float, b: float, d: float,
                 classes: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p10, p01 = (d - (b - a)) / 2, (d + (b - a)) / 2          # champion-only right, challenger-only right
    p11 = a - p10
    p = np.array([p11, p10, p01, max(0.0, 1 - p11 - p10 - p01)])
    kind = rng.choice(4, size=n, p=p / p.sum())
    y = rng.integers(0, classes, n)
    champ = np.where((kind == 0) | (kind == 1), y, (y + rng.integers(1, classes, n)) % classes)
    chall = np.where((kind == 0) | (kind == 2), y, (y + rng.integers(1, classes, n)) % classes)
    return y, champ, chall


def study_flips(trials: int, resamples: int, methods: list[str]) -> None:
    print("\n## accuracy from 0/1 losses (10 classes), flips family\n")
    print(f"{'case':34} {'rows':>5} {'method':>18} {HEADER}")
    for name, a, b, d in FLIP_CASES:
        truth = (b - a) / a
        for n in SIZES:
            for method in methods:
                tally = Tally()
                rng = np.random.default_rng(n * 1000 + int(a * 100))
                for t in range(trials):
                    y, pa, pb = flip_holdout(rng, n, a, b, d)
                    _gate(scores("accuracy", y, pa), scores("accuracy", y, pb), resamples, t, method, tally, truth)
                print(f"{name:34} {n:5d} {method:>18} {tally.row()}")


# family 2: scores ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreCase:
    name: str
    classes: int
    separation_a: float       # class means are 0 and separation (one-hot style)
    separation_b: float
    shared: float = 0.7       # share of the noise both models have in common


SCORE_CASES = [
    ScoreCase("binary, equal", 2, 1.6, 1.6),
    ScoreCase("binary, better", 2, 1.4, 2.0),
    ScoreCase("3 classes, equal", 3, 2.0, 2.0),
    ScoreCase("3 classes, better", 3, 1.8, 2.4),
]
METRIC_NAMES = ("accuracy", "f1", "log_loss", "roc_auc")


def draw(rng: np.random.Generator, case: ScoreCase, n: int) -> tuple[np.ndarray, list]:
    y = rng.integers(0, case.classes, n)
    common = rng.normal(0, 1, (n, case.classes))
    out = []
    for sep in (case.separation_a, case.separation_b):
        own = rng.normal(0, 1, (n, case.classes))
        z = sep * np.eye(case.classes)[y] + np.sqrt(case.shared) * common + np.sqrt(1 - case.shared) * own
        proba = np.exp(z - z.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        out.append((proba.argmax(axis=1), proba))
    return y, out


def study_scores(trials: int, resamples: int, methods: list[str]) -> None:
    print("\n## accuracy, F1, log loss and ROC AUC from class scores, scores family\n")
    print(f"{'case':20} {'metric':>9} {'rows':>5} {'method':>18} {HEADER}")
    for case in SCORE_CASES:
        classes = list(range(case.classes))
        y, ((pa, qa), (pb, qb)) = draw(np.random.default_rng(99), case, 400_000)
        truths = {}
        for m in METRIC_NAMES:
            va, vb = metric_value(m, y, pa, qa, classes), metric_value(m, y, pb, qb, classes)
            truths[m] = ((vb - va) if m != "log_loss" else (va - vb)) / abs(va)
        for n in SIZES:
            for method in methods:
                tallies = {m: Tally() for m in METRIC_NAMES}
                rng = np.random.default_rng(n + case.classes)
                for t in range(trials):
                    y, ((pa, qa), (pb, qb)) = draw(rng, case, n)
                    for m in METRIC_NAMES:
                        _gate(scores(m, y, pa, qa, classes), scores(m, y, pb, qb, classes), resamples, t,
                              method, tallies[m], truths[m])
                for m in METRIC_NAMES:
                    print(f"{case.name:20} {m:>9} {n:5d} {method:>18} {tallies[m].row()}")
        print("  true relative improvements: " + ", ".join(f"{m} {v:+.2%}" for m, v in truths.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--score-trials", type=int, default=None, help="trials of the scores family (default: --trials)")
    parser.add_argument("--methods", default="double-or-nothing,multinomial")
    parser.add_argument("--skip-scores", action="store_true")
    args = parser.parse_args()
    methods = args.methods.split(",")
    started = time.perf_counter()
    print(f"# {args.trials} trials per cell, {args.resamples} resamples, 95% intervals; "
          "low>0: promoted with min_effect 0 (goal <= 2.5% when equal); promoted: the default gate (min_effect 1%)")
    study_flips(args.trials, args.resamples, methods)
    if not args.skip_scores:
        study_scores(args.score_trials or args.trials, args.resamples, methods)
    print(f"\n({time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
