"""The gate's statistics on data with known answers."""

import numpy as np
import pytest

from modelcycle.gate import Outcome, Policy, decide
from modelcycle.gate.stats import _double_or_nothing, _multinomial, improvement_interval
from modelcycle.steps.evaluate import Scores, metric_value


def scores(metric, y, pred, proba=None, classes=None):
    value = metric_value(metric, np.asarray(y), np.asarray(pred), proba, classes)
    return Scores(metric=metric, value=value, rows=len(y), y_true=np.asarray(y), y_pred=np.asarray(pred),
                  proba=proba, classes=classes)


def regression(n=4000, seed=0, noise_a=1.0, noise_b=1.0):
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, n)
    return y, y + rng.normal(0, noise_a, n), y + rng.normal(0, noise_b, n)


@pytest.mark.parametrize("n", [1, 7, 8, 13, 1001])
def test_resampled_weights_count_only_real_rows(n):
    ones = np.ones((n, 1))
    for fn in (_double_or_nothing, _multinomial):
        sums, weights = fn(ones, 300, np.random.default_rng(1))
        ok = weights > 0
        assert np.allclose(sums[ok, 0] / weights[ok], 1.0)
    sums, weights = _double_or_nothing(ones, 4000, np.random.default_rng(2))
    assert weights.mean() == pytest.approx(n, rel=0.05)  # weight 0 or 2, mean 1 per row


def test_resamples_on_several_cores_give_the_same_sums_as_on_one(monkeypatch):
    """Chunks of resamples run on threads; the random bits are drawn in order, so the sums do not
    depend on how many cores the process may use (a small chunk size makes many chunks)."""
    from modelcycle.gate import stats

    X = np.random.default_rng(3).gamma(2.0, 5.0, (50_001, 2))
    monkeypatch.setattr(stats, "_CHUNK_BYTES", 50_001 // 8 * 2 * 16 * 3)  # 3 resamples a chunk
    results = {}
    for cores in (1, 2, 4):
        monkeypatch.setattr(stats, "_cores", lambda c=cores: c)
        results[cores] = _double_or_nothing(X, 101, np.random.default_rng(7))
    for cores in (2, 4):
        assert np.array_equal(results[cores][0], results[1][0])
        assert np.array_equal(results[cores][1], results[1][1])
    assert np.all(results[1][1] > 0) and not np.allclose(results[1][0][:, 0], results[1][0][0, 0])


def test_identical_models_give_an_interval_around_zero_and_no_promotion():
    y, a, _ = regression()
    champ, chall = scores("mae", y, a), scores("mae", y, a.copy())
    iv = improvement_interval(champ, chall, resamples=500)
    assert iv.estimate == 0 and iv.low == 0 and iv.high == 0
    d = decide(champ, chall, Policy(metric="mae", threshold=5, min_effect=0.0))
    assert d.outcome is Outcome.KEEP


def test_a_clearly_better_model_is_promoted_lower_is_better():
    y, a, b = regression(noise_a=1.3, noise_b=1.0)
    champ, chall = scores("mae", y, a), scores("mae", y, b)
    iv = improvement_interval(champ, chall)
    true_gain = 1 - 1.0 / 1.3
    assert iv.low < iv.estimate < iv.high
    assert iv.low <= true_gain <= iv.high or abs(iv.estimate - true_gain) < 0.03
    d = decide(champ, chall, Policy(metric="mae", threshold=5, min_effect=0.1))
    assert d.outcome is Outcome.PROMOTE
    assert "95% interval" in d.reasons[0] and "better" in d.reasons[0]
    # the same models the other way round: keep, and the interval is negative
    back = improvement_interval(chall, champ)
    assert back.high < 0
    assert decide(chall, champ, Policy(metric="mae", threshold=5)).outcome is Outcome.KEEP


def test_noise_alone_does_not_promote_but_a_naive_gate_does_half_the_time():
    promoted = {"bootstrap": 0, "none": 0}
    for seed in range(40):
        y, a, b = regression(n=3000, seed=seed)  # equally good models
        champ, chall = scores("mae", y, a), scores("mae", y, b)
        for test in promoted:
            p = Policy(metric="mae", threshold=5, min_effect=0.0, test=test, resamples=400, seed=seed)
            promoted[test] += decide(champ, chall, p).outcome is Outcome.PROMOTE
    assert promoted["bootstrap"] <= 4          # ~2.5% expected at 95% two-sided
    assert 10 <= promoted["none"] <= 30        # a coin flip


def test_interval_matches_normal_theory_for_the_mean():
    rng = np.random.default_rng(5)
    n = 20000
    y = rng.normal(0, 1, n)
    a = y + rng.laplace(0, 1.0, n)
    b = y + rng.laplace(0, 0.95, n)
    champ, chall = scores("mae", y, a), scores("mae", y, b)
    d = np.abs(y - a) - np.abs(y - b)
    se = d.std() / np.sqrt(n) / np.abs(y - a).mean()
    for method in ("double-or-nothing", "multinomial"):
        iv = improvement_interval(champ, chall, resamples=3000, method=method, seed=3)
        width = (iv.high - iv.low) / 2
        assert width == pytest.approx(1.96 * se, rel=0.12), method


@pytest.mark.parametrize("metric", ["rmse", "mape", "r2"])
def test_other_regression_metrics(metric):
    y, a, b = regression(noise_a=1.5, noise_b=1.0)
    iv = improvement_interval(scores(metric, y, a), scores(metric, y, b), resamples=500)
    assert iv.low > 0.05, (metric, iv)


def test_higher_is_better_classification_metrics():
    rng = np.random.default_rng(2)
    n = 3000
    y = rng.integers(0, 2, n)
    good = np.where(rng.random(n) < 0.9, y, 1 - y)
    poor = np.where(rng.random(n) < 0.75, y, 1 - y)
    for metric in ("accuracy", "f1"):
        iv = improvement_interval(scores(metric, y, poor, classes=[0, 1]), scores(metric, y, good, classes=[0, 1]),
                                  resamples=500)
        assert iv.low > 0.1, (metric, iv)
    p_good = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.1, n), 0.01, 0.99)
    p_poor = np.clip(np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.25, n), 0.01, 0.99)
    proba = lambda p: np.column_stack([1 - p, p])  # noqa: E731
    champ = scores("roc_auc", y, (p_poor > 0.5).astype(int), proba(p_poor), [0, 1])
    chall = scores("roc_auc", y, (p_good > 0.5).astype(int), proba(p_good), [0, 1])
    iv = improvement_interval(champ, chall, resamples=300)
    assert iv.low > 0.05
    d = decide(champ, chall, Policy(metric="roc_auc", threshold=0.6))
    assert d.outcome is Outcome.PROMOTE
    ll = improvement_interval(scores("log_loss", y, chall.y_pred, proba(p_poor), [0, 1]),
                              scores("log_loss", y, chall.y_pred, proba(p_good), [0, 1]), resamples=300)
    assert ll.low > 0.1  # lower log loss is better


def test_resampling_is_reproducible_and_needs_the_same_rows():
    y, a, b = regression()
    champ, chall = scores("mae", y, a), scores("mae", y, b)
    assert improvement_interval(champ, chall, seed=4) == improvement_interval(champ, chall, seed=4)
    other = scores("mae", y[::-1].copy(), b)
    with pytest.raises(ValueError, match="same held-out rows"):
        improvement_interval(champ, other)
