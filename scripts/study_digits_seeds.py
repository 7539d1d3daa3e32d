"""How robust are the digits example's decisions to its release plan's seed? (not a test; prints figures)

For each plan seed, the example's cycles are replayed with the real torch trainer (the example's
``MODEL_PARAMS``) and the real gate (the example's 95% accuracy threshold, 1% minimum effect, 2,000
paired resamples): each window trains a challenger on the months before it and the window's first
70%, scores it and the champion on the window's latest 30%, and the gate decides; a promotion or an
escalation (which the demo approves) makes the challenger the next champion. Broken files are left
out as validation drops them. Without git, DVC, MLflow or Prefect, about 30 s a seed on one core;
``modelcycle demo DIR --example digits`` runs the same cycles through the whole lifecycle.

Each line: the seed, per window the decision with the champion's and the challenger's accuracy,
and how many windows decide as the plan says (:data:`modelcycle.examples.digits.release.EVENTS`,
where a window's ``escalate`` for a challenger that misses the threshold is the demo's
``rolled_back``).

Run: .venv/bin/python scripts/study_digits_seeds.py [--seeds 0,1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from modelcycle.examples.digits import files, release, workspace
from modelcycle.gate.decide import Policy, decide
from modelcycle.steps.evaluate import Scores
from modelcycle.steps.train import TrainSpec
from modelcycle.steps.trainers import trainer_for


def released(seed: int) -> pd.DataFrame:
    """The plan's intact files with their bytes, in arrival order."""
    plan = release.plan(seed)
    plan = plan[plan["defect"] == ""].copy()
    plan["image"] = [files.content(row) for row in plan.itertuples(index=False)]
    plan["label"] = plan["label"].astype(int).astype(str)
    return plan.sort_values("added_at")


def replay(seed: int) -> list[tuple[str, str, float | None, float]]:
    rows = released(seed)
    trainer = trainer_for("torch")
    spec = TrainSpec(estimator="torch", target="label", task="classification", input_columns=["image"],
                     params=dict(workspace.MODEL_PARAMS), seed=42)
    policy = Policy(metric="accuracy", threshold=0.95, min_effect=0.01)
    champion, out = None, []
    for window in (release.HISTORY_MONTHS[-1], *release.BATCH_MONTHS):
        month = rows[rows["month"] == window]
        cut = len(month) - int(round(len(month) * 0.3))
        train, holdout = pd.concat([rows[rows["month"] < window], month.iloc[:cut]]), month.iloc[cut:]
        challenger = trainer.fit(train[["image", "label"]], spec).model
        y = holdout["label"].to_numpy()

        def score(model: object, y: np.ndarray = y, holdout: pd.DataFrame = holdout) -> Scores:
            pred = np.asarray(trainer.predict(model, holdout[["image"]]))
            return Scores(metric="accuracy", value=float((pred == y).mean()), rows=len(y), y_true=y, y_pred=pred)

        ch = score(challenger)
        cv = score(champion) if champion is not None else None
        outcome = decide(cv, ch, policy).outcome.value
        if outcome in ("promote", "escalate"):
            champion = challenger
        out.append((window, outcome, None if cv is None else cv.value, ch.value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5", help="plan seeds, comma-separated")
    args = parser.parse_args()
    plan = {e["window"]: e["decision"] for e in release.EVENTS}
    right_in_all = 0
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        started = time.perf_counter()
        result = replay(seed)
        right = sum(plan[w] == outcome for w, outcome, _, _ in result)
        right_in_all += right
        said = "  ".join(f"{w} {o} {'-' if cv is None else f'{cv:.3f}'}/{ch:.3f}" for w, o, cv, ch in result)
        print(f"seed {seed}: {right}/{len(result)} as planned ({time.perf_counter() - started:.0f} s)  {said}", flush=True)
    print(f"{right_in_all} of {len(seeds) * len(plan)} windows decide as planned")


if __name__ == "__main__":
    main()
