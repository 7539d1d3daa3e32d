"""The gate's decision rules (with point comparisons, so each case has an exact answer; the
bootstrap's evidence is tested in test_gate_stats.py)."""

import numpy as np
import pytest

from modelcycle.gate import Outcome, Policy, decide
from modelcycle.steps.evaluate import Scores

MAE = Policy(metric="mae", threshold=2.5, min_effect=0.02, test="none")
ACC = Policy(metric="accuracy", threshold=0.8, test="none", min_effect=0.0)


def s(value, metric="mae", rows=100):
    y = np.zeros(rows)
    return Scores(metric=metric, value=value, rows=rows, y_true=y, y_pred=y + value)


@pytest.mark.parametrize("champ,chall,outcome,words", [
    (None, 2.0, Outcome.PROMOTE, "no champion yet"),
    (None, 3.0, Outcome.ESCALATE, "a human must decide"),
    (2.4, 2.0, Outcome.PROMOTE, "the challenger is at least 2.0% better"),
    (2.0, 1.99, Outcome.KEEP, "the challenger is not at least 2.0% better"),
    (2.0, 2.2, Outcome.KEEP, "10.0% worse"),
    (3.0, 2.2, Outcome.PROMOTE, "26.7% better"),
    (2.6, 2.55, Outcome.ESCALATE, "neither meets the threshold"),
    (2.3, 2.7, Outcome.KEEP, "challenger MAE 2.7 misses the threshold"),
    (2.51, 2.49, Outcome.ESCALATE, "the champion misses the threshold and the challenger is not shown"),
])
def test_lower_is_better(champ, chall, outcome, words):
    d = decide(s(champ) if champ is not None else None, s(chall), MAE)
    assert d.outcome is outcome
    assert any(words in r for r in d.reasons), d.reasons


def test_higher_is_better():
    assert decide(s(0.85, "accuracy"), s(0.9, "accuracy"), ACC).outcome is Outcome.PROMOTE
    assert decide(s(0.85, "accuracy"), s(0.84, "accuracy"), ACC).outcome is Outcome.KEEP
    assert decide(s(0.7, "accuracy"), s(0.75, "accuracy"), ACC).outcome is Outcome.ESCALATE


def test_suspect_data_never_promotes():
    d = decide(s(3.0), s(1.0), MAE, data_problem="30% of rows invalid")
    assert d.outcome is Outcome.ESCALATE and "data suspect" in d.reasons[0]
    keep = Policy(metric="mae", threshold=2.5, on_bad_data="keep")
    assert decide(s(3.0), s(1.0), keep, data_problem="x").outcome is Outcome.KEEP
    assert decide(None, s(1.0), keep, data_problem="x").outcome is Outcome.ESCALATE


def test_scores_must_come_from_the_same_rows():
    with pytest.raises(ValueError, match="same held-out rows"):
        decide(s(2.0, rows=100), s(1.0, rows=90), MAE)


def test_reasons_state_the_comparison_in_words():
    d = decide(s(2.4), s(2.0), MAE)
    assert d.reasons[0].startswith("challenger MAE 2 vs champion MAE 2.4 on the same 100 held-out rows: 16.7% better")
    assert d.to_dict()["outcome"] == "promote"
