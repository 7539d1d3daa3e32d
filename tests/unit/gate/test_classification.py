"""Classifiers in the gate: accuracy, F1, log loss and ROC AUC through the paired bootstrap
(binary and three classes), checked against scikit-learn on the resampled rows themselves; the
decisions it leads to on a few hundred rows; the confusion matrices and flips beside them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from modelcycle.gate import Outcome, Policy, decide
from modelcycle.gate.confusion import compare, confusion_matrix
from modelcycle.gate.stats import improvement_interval, resampled_metrics
from modelcycle.steps.evaluate import Scores, metric_value


def scores(metric, y, pred, proba=None, classes=None):
    y, pred = np.asarray(y), np.asarray(pred)
    value = metric_value(metric, y, pred, proba, classes)
    return Scores(metric=metric, value=value, rows=len(y), y_true=y, y_pred=pred, proba=proba, classes=classes)


def pair(n, classes, sep_a, sep_b, seed=0, shared=0.6):
    """Two classifiers of the same rows: class scores ``sep * one_hot(y)`` plus noise, part of it
    shared; predictions the arg-max, probabilities a softmax; labels are text."""
    rng = np.random.default_rng(seed)
    names = ["cat", "dog", "eel", "fox"][:classes]
    k = rng.integers(0, classes, n)
    common = rng.normal(0, 1, (n, classes))
    out = []
    for sep in (sep_a, sep_b):
        z = sep * np.eye(classes)[k] + np.sqrt(shared) * common + np.sqrt(1 - shared) * rng.normal(0, 1, (n, classes))
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out.append((np.array(names, dtype=object)[p.argmax(axis=1)], p))
    return np.array(names, dtype=object)[k], names, out


def sklearn_metric(metric, y, pred, proba, classes):
    if metric == "accuracy":
        return skm.accuracy_score(y, pred)
    if metric == "f1":
        if len(classes) == 2:
            return skm.f1_score(y, pred, average="binary", pos_label=classes[1])
        return skm.f1_score(y, pred, average="macro")
    if metric == "log_loss":
        return skm.log_loss(y, proba, labels=classes)
    if len(classes) == 2:
        return skm.roc_auc_score(y == classes[1], proba[:, 1])
    return skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)


METRICS = ["accuracy", "f1", "log_loss", "roc_auc"]


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("metric", METRICS)
def test_the_metric_is_scikit_learns(metric, classes):
    y, names, ((pa, qa), _) = pair(300, classes, 1.5, 2.0)
    assert metric_value(metric, y, pa, qa, names) == pytest.approx(sklearn_metric(metric, y, pa, qa, names))


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("metric", METRICS)
def test_each_resample_recomputes_the_metric_on_the_same_rows_for_both_models(metric, classes):
    """A resample (rows drawn with replacement) gives both models the metric scikit-learn gives on
    those very rows: F1 and ROC AUC, which are not means of per-row terms, included."""
    y, names, ((pa, qa), (pb, qb)) = pair(250, classes, 1.5, 2.0, seed=classes)
    champ, chall = scores(metric, y, pa, qa, names), scores(metric, y, pb, qb, names)
    rng = np.random.default_rng(7)
    draws = [rng.integers(0, len(y), len(y)) for _ in range(6)]
    W = np.array([np.bincount(d, minlength=len(y)) for d in draws], dtype="float64")
    got_a, got_b = resampled_metrics(champ, chall, W)
    for i, rows in enumerate(draws):
        assert got_a[i] == pytest.approx(sklearn_metric(metric, y[rows], pa[rows], qa[rows], names), rel=1e-9)
        assert got_b[i] == pytest.approx(sklearn_metric(metric, y[rows], pb[rows], qb[rows], names), rel=1e-9)
    # and the resamples differ (a metric computed once on all rows would not)
    assert len({round(v, 12) for v in got_b}) > 1


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("metric", ["f1", "roc_auc"])
def test_the_interval_is_the_resampled_metrics_percentiles(metric, classes):
    """The fast interval (weighted sums for F1, weighted ranks for AUC) agrees with a plain
    bootstrap that recomputes scikit-learn's metric on rows drawn with replacement."""
    y, names, ((pa, qa), (pb, qb)) = pair(300, classes, 1.2, 1.8, seed=10 + classes)
    champ, chall = scores(metric, y, pa, qa, names), scores(metric, y, pb, qb, names)
    iv = improvement_interval(champ, chall, resamples=1000, seed=3)
    assert iv.estimate == pytest.approx((chall.value - champ.value) / champ.value)
    rng = np.random.default_rng(11)
    gains = []
    for _ in range(300):
        rows = rng.integers(0, len(y), len(y))
        a = sklearn_metric(metric, y[rows], pa[rows], qa[rows], names)
        b = sklearn_metric(metric, y[rows], pb[rows], qb[rows], names)
        gains.append((b - a) / a)
    low, high = np.quantile(gains, [0.025, 0.975])
    width = high - low
    assert iv.low == pytest.approx(low, abs=0.15 * width)
    assert iv.high == pytest.approx(high, abs=0.15 * width)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("metric", METRICS)
def test_a_truly_better_classifier_is_promoted_on_a_few_hundred_rows_and_an_equal_one_is_not(metric, classes):
    better = 1.4 if metric in ("accuracy", "f1") else 1.0
    y, names, ((pa, qa), (pb, qb)) = pair(400, classes, 1.0, 1.0 + better, seed=20 + classes)
    policy = Policy(metric=metric, threshold=0.0 if metric != "log_loss" else 10.0, resamples=500)
    d = decide(scores(metric, y, pa, qa, names), scores(metric, y, pb, qb, names), policy)
    assert d.outcome is Outcome.PROMOTE, d.reasons
    # equally good: the same recipe, other noise
    y, names, ((pa, qa), (pb, qb)) = pair(400, classes, 1.5, 1.5, seed=30 + classes)
    d = decide(scores(metric, y, pa, qa, names), scores(metric, y, pb, qb, names), policy)
    assert d.outcome is Outcome.KEEP, d.reasons


def test_binary_f1_is_the_second_class_and_multiclass_f1_and_auc_are_macro():
    y = np.array(["cat", "cat", "dog", "dog", "dog"], dtype=object)
    pred = np.array(["cat", "dog", "dog", "dog", "cat"], dtype=object)
    # dog positive: tp 2, fp 1, fn 1
    assert metric_value("f1", y, pred, classes=["cat", "dog"]) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    d = decide(scores("f1", y, pred, classes=["cat", "dog"]), scores("f1", y, y, classes=["cat", "dog"]),
               Policy(metric="f1", threshold=0.5, resamples=100))
    assert "(class 'dog' positive)" in d.reasons[0] and d.details["positive_class"] == "dog"
    y3 = np.array([0, 1, 2, 2, 1, 0])
    d = decide(None, scores("f1", y3, y3, classes=[0, 1, 2]), Policy(metric="f1", threshold=0.5))
    assert "F1 1 (macro over 3 classes) meets the threshold" in d.reasons[1]
    proba = np.eye(3)[y3] * 0.8 + 0.2 / 3
    d = decide(None, scores("roc_auc", y3, y3, proba, [0, 1, 2]), Policy(metric="roc_auc", threshold=0.5))
    assert d.details["average"] == "one-vs-rest macro" and "one-vs-rest macro over 3 classes" in d.reasons[1]


def test_models_that_agree_on_every_row_give_a_point_interval_at_zero_and_no_promotion():
    y = np.tile(["a", "b", "c"], 100).astype(object)
    pred = y.copy()
    pred[:30] = "c"  # the same 30 mistakes for both
    for champ_pred, chall_pred in ((pred, pred.copy()), (y, y.copy())):  # same errors; all right
        champ, chall = scores("accuracy", y, champ_pred), scores("accuracy", y, chall_pred)
        iv = improvement_interval(champ, chall, resamples=300)
        assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0)
        d = decide(champ, chall, Policy(metric="accuracy", threshold=0.5, min_effect=0.0, resamples=300))
        assert d.outcome is Outcome.KEEP
        assert "negative flips: 0 of 300" in d.reasons[-1]
        assert "no different (the same on every resample: the two models' errors do not differ" in d.reasons[0]


def test_a_few_discordant_rows_in_one_direction_are_not_enough():
    """All-correct champion; the challenger right on the same rows but 3 (a sign test's p is
    0.25): the interval touches 0 and nothing is promoted, whichever way round."""
    y = np.tile([0, 1], 150)
    worse = y.copy()
    worse[[3, 50, 200]] = 1 - worse[[3, 50, 200]]
    up = improvement_interval(scores("accuracy", y, worse), scores("accuracy", y, y), resamples=2000)
    assert up.low == 0.0 and up.high > 0
    down = improvement_interval(scores("accuracy", y, y), scores("accuracy", y, worse), resamples=2000)
    assert down.high == 0.0 and down.low < 0
    assert decide(scores("accuracy", y, worse), scores("accuracy", y, y),
                  Policy(metric="accuracy", threshold=0.5, min_effect=0.0)).outcome is Outcome.KEEP


def test_the_intervals_coverage_and_false_promotions_on_small_holdouts():
    """The study's properties (scripts/study_gate_classification.py), small: on 200-row
    holdouts of 0/1 losses, equally good models are promoted at most about 2.5% of the time
    (the interval's low end above 0), and the interval holds a known true difference about 95%
    of the time."""
    def holdout(rng, n, a, b, d):
        p10, p01 = (d - (b - a)) / 2, (d + (b - a)) / 2
        kind = rng.choice(4, size=n, p=[a - p10, p10, p01, 1 - a - p01])
        y = rng.integers(0, 5, n)
        champ = np.where(kind <= 1, y, (y + 1) % 5)
        chall = np.where((kind == 0) | (kind == 2), y, (y + 2) % 5)
        return scores("accuracy", y, champ), scores("accuracy", y, chall)

    rng = np.random.default_rng(0)
    trials = 300
    false, covered = 0, 0
    truth = (0.92 - 0.86) / 0.86
    for t in range(trials):
        iv = improvement_interval(*holdout(rng, 200, 0.88, 0.88, 0.16), resamples=300, seed=t)
        false += iv.low > 0
        iv = improvement_interval(*holdout(rng, 200, 0.86, 0.92, 0.12), resamples=300, seed=t)
        covered += iv.low <= truth <= iv.high
    assert false / trials <= 0.05            # nominal 2.5%; 300 trials: 5% is three standard errors
    assert 0.90 <= covered / trials <= 0.985  # nominal 95%


# confusion matrices and flips ------------------------------------------------------------------


def test_confusion_matrices_and_flips_on_a_hand_made_example():
    y = np.array(["a", "a", "b", "b", "c"], dtype=object)
    champion = np.array(["a", "b", "b", "b", "c"], dtype=object)    # wrong on row 1
    challenger = np.array(["a", "a", "b", "c", "c"], dtype=object)  # wrong on row 3
    assert confusion_matrix(y, champion, ["a", "b", "c"]) == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    got = compare(scores("accuracy", y, champion), scores("accuracy", y, challenger))
    assert got is not None
    assert got.labels == ["a", "b", "c"]
    assert got.challenger == [[2, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert (got.negative_flips, got.positive_flips) == (1, 1)

    d = decide(scores("accuracy", y, champion), scores("accuracy", y, challenger),
               Policy(metric="accuracy", threshold=0.5, resamples=200))
    assert d.reasons[-1] == ("negative flips: 1 of 5 (champion right, challenger wrong); "
                             "positive flips: 1 (champion wrong, challenger right)")
    assert (d.details["negative_flips"], d.details["positive_flips"]) == (1, 1)
    assert d.details["confusion"]["champion"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert d.to_dict()["confusion"]["labels"] == ["a", "b", "c"]


def test_flips_count_each_direction_separately():
    y = np.zeros(300, dtype=int)
    champion = y.copy()
    champion[:19] = 1                         # champion wrong on 19 rows the challenger gets right
    challenger = y.copy()
    challenger[100:107] = 1                   # challenger wrong on 7 rows the champion got right
    challenger[:2] = 1                        # both wrong on 2
    d = decide(scores("accuracy", y, champion), scores("accuracy", y, challenger),
               Policy(metric="accuracy", threshold=0.5, resamples=200))
    assert ("negative flips: 7 of 300 (champion right, challenger wrong); "
            "positive flips: 17 (champion wrong, challenger right)") in d.reasons


def test_without_a_champion_only_the_challengers_matrix_and_regression_has_none():
    y = np.array([1, 0, 1, 1])
    d = decide(None, scores("accuracy", y, np.array([1, 0, 0, 1])), Policy(metric="accuracy", threshold=0.5))
    assert d.details["confusion"]["challenger"] == [[1, 0], [1, 2]]
    assert d.details["confusion"]["champion"] is None and "negative_flips" not in d.details
    assert not any("flips" in r for r in d.reasons)
    yr = np.array([1.0, 2.0, 3.0])
    r = decide(scores("mae", yr, yr + 0.1), scores("mae", yr, yr + 0.2), Policy(metric="mae", threshold=1.0))
    assert "confusion" not in r.details and not any("flips" in s for s in r.reasons)
