"""The gate's choice among several candidates, corrected for multiple comparisons (Bonferroni)."""

import numpy as np
import pytest

from modelcycle.gate import Outcome, Policy, choose, decide
from modelcycle.gate.choose import corrected
from modelcycle.steps.evaluate import Scores

# min_effect 0: the bare test, whose false-promotion rate is the interval's one-sided level (2.5 %)
POLICY = Policy(metric="mae", threshold=10.0, min_effect=0.0, resamples=400)


def scores(y, noise):
    pred = y + noise
    return Scores(metric="mae", value=float(np.mean(np.abs(pred - y))), rows=len(y), y_true=y, y_pred=pred)


def false_promotions(k, *, correct, trials=150, rows=300, seed=1):
    """A/A: the champion and k candidates all predict with errors of the same distribution; the
    share of trials in which any candidate is promoted (every promotion is a false one)."""
    rng = np.random.default_rng(seed)
    promoted = 0
    for t in range(trials):
        y = rng.normal(10, 3, rows)
        champion = scores(y, rng.normal(0, 1, rows))
        candidates = {f"c{i}": scores(y, rng.normal(0, 1, rows)) for i in range(k)}
        choice = choose(champion, candidates, Policy(**{**POLICY.__dict__, "seed": t}), correct=correct)
        promoted += choice.decision.outcome is Outcome.PROMOTE
    return promoted / trials


def test_the_correction_keeps_false_promotions_near_the_single_challengers_rate():
    one = false_promotions(1, correct=True)
    corrected5 = false_promotions(5, correct=True)
    uncorrected5 = false_promotions(5, correct=False)
    assert one <= 0.06 and corrected5 <= 0.06, (one, corrected5)
    assert uncorrected5 >= 0.08, uncorrected5  # about 1 - 0.975^5 = 12 % for independent candidates
    assert uncorrected5 > 2 * corrected5


def test_a_clearly_better_candidate_among_bad_ones_is_chosen():
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 2000)
    champion = scores(y, rng.normal(0, 1.0, 2000))
    choice = choose(champion, {"stump": scores(y, rng.normal(0, 3.0, 2000)),
                               "noisy": scores(y, rng.normal(0, 1.5, 2000)),
                               "good": scores(y, rng.normal(0, 0.6, 2000)),
                               "same": scores(y, rng.normal(0, 1.0, 2000))}, POLICY)
    assert choice.name == "good" and choice.decision.outcome is Outcome.PROMOTE
    assert choice.decision.challenger == choice.scores.value
    head = choice.decision.reasons[0]
    assert head.startswith("best of 4 candidates: 'good' (promoted; 1 of 4 would be promoted)")
    assert "98.8% (1 - 0.05/4, corrected for 4 comparisons)" in head
    assert any(r.startswith("candidate 'stump': MAE") and r.endswith(": keep") for r in choice.decision.reasons)
    assert choice.decision.details["candidate"] == "good"
    assert [c["name"] for c in choice.decision.details["candidates"]] == ["stump", "noisy", "good", "same"]
    assert all(c["confidence"] == pytest.approx(1 - 0.05 / 4) for c in choice.decision.details["candidates"])


def test_among_those_that_pass_the_best_estimate_wins():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 2000)
    champion = scores(y, rng.normal(0, 1.0, 2000))
    choice = choose(champion, {"better": scores(y, rng.normal(0, 0.8, 2000)),
                               "best": scores(y, rng.normal(0, 0.5, 2000))}, POLICY)
    assert choice.name == "best"
    assert "2 of 2 would be promoted" in choice.decision.reasons[0]


def test_when_none_passes_the_champion_is_kept_and_every_candidate_is_named():
    rng = np.random.default_rng(4)
    y = rng.normal(10, 3, 1000)
    champion = scores(y, rng.normal(0, 1.0, 1000))
    choice = choose(champion, {"a": scores(y, rng.normal(0, 1.5, 1000)),
                               "b": scores(y, rng.normal(0, 2.0, 1000))}, POLICY)
    assert choice.decision.outcome is Outcome.KEEP and choice.name == "a"  # the better of the two
    assert "0 of 2 would be promoted" in choice.decision.reasons[0]


def test_without_a_champion_the_best_score_is_promoted():
    rng = np.random.default_rng(5)
    y = rng.normal(10, 3, 500)
    choice = choose(None, {"a": scores(y, rng.normal(0, 1.5, 500)), "b": scores(y, rng.normal(0, 1.0, 500))}, POLICY)
    assert choice.name == "b" and choice.decision.outcome is Outcome.PROMOTE
    assert "none compared with a champion" in choice.decision.reasons[0]


def test_one_candidate_decides_as_a_single_challenger():
    rng = np.random.default_rng(6)
    y = rng.normal(10, 3, 800)
    champion, one = scores(y, rng.normal(0, 1.0, 800)), scores(y, rng.normal(0, 0.9, 800))
    choice = choose(champion, {"only": one}, POLICY)
    alone = decide(champion, one, POLICY)
    assert choice.decision.outcome is alone.outcome and choice.decision.reasons == alone.reasons
    assert choice.decision.details["candidate"] == "only"
    assert corrected(POLICY, 1) is POLICY and corrected(POLICY, 3).confidence == pytest.approx(1 - 0.05 / 3)
