"""Score a model on held-out rows with the configured metric.

Each metric knows its direction. ``Scores`` keeps the held-out targets and the model's
predictions, so the gate can compare two models row by row on the same rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import numpy as np
import pandas as pd

from modelcycle.errors import DataError, ModelError


@dataclass(frozen=True)
class MetricSpec:
    name: str
    greater_is_better: bool
    # per-row terms whose mean (then ``finish``) is the metric; None for rank metrics
    per_row: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    finish: Callable[[float], float] = lambda m: m
    needs_proba: bool = False
    label: str = ""


def _abs(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(y - p)


def _sq(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (y - p) ** 2


def _ape(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(y - p) / np.maximum(np.abs(y), 1e-9)


def _hit(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (y == p).astype("float64")


METRICS: dict[str, MetricSpec] = {
    "mae": MetricSpec("mae", False, _abs, label="MAE"),
    "rmse": MetricSpec("rmse", False, _sq, finish=lambda m: float(np.sqrt(m)), label="RMSE"),
    "mape": MetricSpec("mape", False, _ape, label="MAPE"),
    "r2": MetricSpec("r2", True, None, label="R²"),
    "accuracy": MetricSpec("accuracy", True, _hit, label="accuracy"),
    "f1": MetricSpec("f1", True, None, label="F1"),
    "log_loss": MetricSpec("log_loss", False, None, needs_proba=True, label="log loss"),
    "roc_auc": MetricSpec("roc_auc", True, None, needs_proba=True, label="ROC AUC"),
}


@dataclass
class Scores:
    """One model's score on the holdout, with what it was computed from."""

    metric: str
    value: float
    rows: int
    predict_seconds: float = 0.0
    y_true: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    y_pred: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    proba: np.ndarray | None = field(default=None, repr=False)
    classes: list[Any] | None = field(default=None, repr=False)

    @property
    def spec(self) -> MetricSpec:
        return METRICS[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "rows": self.rows,
                "predict_seconds": round(self.predict_seconds, 4)}


CLASSIFICATION_METRICS = frozenset({"accuracy", "f1", "log_loss", "roc_auc"})


def sorted_labels(*groups: Any) -> list[Any]:
    """The distinct class labels of ``groups`` (arrays or lists), sorted as scikit-learn sorts
    them (by their text when they do not compare, e.g. mixed types)."""
    seen: dict[Any, None] = {}
    for g in groups:
        if g is None:
            continue
        for v in np.asarray(g, dtype=object).ravel():
            seen.setdefault(v.item() if isinstance(v, np.generic) else v, None)
    try:
        return sorted(seen)
    except TypeError:
        return sorted(seen, key=str)


def f1_targets(labels: list[Any]) -> tuple[list[Any], str]:
    """The classes F1 is computed for and how they are averaged: with two classes, the F1 of the
    second one (the positive class, as scikit-learn's ``average="binary"``); with more, the
    unweighted mean over the classes (``average="macro"``)."""
    if len(labels) == 2:
        return [labels[1]], "binary"
    return list(labels), "macro"


def f1_columns(y: np.ndarray, pred: np.ndarray, targets: list[Any]) -> np.ndarray:
    """Per row and target class: is it a true positive, a false positive, a false negative
    (``(n, 3 * len(targets))``; weighted column sums of these are all F1 needs)."""
    cols = []
    for c in targets:
        t, p = y == c, pred == c
        cols += [t & p, ~t & p, t & ~p]
    return np.column_stack(cols).astype("float64") if cols else np.zeros((len(y), 0))


def f1_from_sums(sums: np.ndarray) -> np.ndarray:
    """F1 from (weighted) sums of :func:`f1_columns` (last axis): per class ``2tp / (2tp + fp +
    fn)``, averaged over the classes that occur (as actual or predicted) in those rows, as
    scikit-learn's macro average does; 0 when none does."""
    tp, fp, fn = sums[..., 0::3], sums[..., 1::3], sums[..., 2::3]
    denom = 2 * tp + fp + fn
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    count = present.sum(axis=-1)
    return np.divide(f1.sum(axis=-1), count, out=np.zeros(np.shape(count)), where=count > 0)


def weighted_auc(y: np.ndarray, score: np.ndarray, positive: Any, W: np.ndarray) -> np.ndarray:
    """Binary ROC AUC of ``score`` (higher: more likely ``positive``) under each row-weight vector
    in ``W`` (``(m, n)``); ties count half. NaN where a weighting has no positive or no negative."""
    order = np.argsort(score, kind="stable")
    s, pos = score[order], (y[order] == positive)
    Wo = W[:, order]
    wneg = np.where(pos, 0.0, Wo)
    wpos = np.where(pos, Wo, 0.0)
    _, first, inverse = np.unique(s, return_index=True, return_inverse=True)
    below = np.cumsum(wneg, axis=1) - wneg                    # negatives strictly before, in this order
    group_start_below = below[:, first][:, inverse]           # negatives below the tie group
    tie_neg = np.add.reduceat(wneg, first, axis=1)[:, inverse]
    credit = (wpos * (group_start_below + 0.5 * tie_neg)).sum(axis=1)
    pairs = wpos.sum(axis=1) * wneg.sum(axis=1)
    return np.divide(credit, pairs, out=np.full(len(W), np.nan), where=pairs > 0)


def auc_targets(labels: list[Any]) -> tuple[list[Any], str]:
    """The classes ROC AUC is computed for: the second of two (binary), else each class against
    the rest, averaged without weights (one-vs-rest macro)."""
    if len(labels) == 2:
        return [labels[1]], "binary"
    return list(labels), "one-vs-rest macro"


def auc_scores(proba: np.ndarray, classes: list[Any] | None, targets: list[Any]) -> np.ndarray:
    """A model's probability of each target class (``(n, len(targets))``; 0 for a class the
    model does not know)."""
    known = list(classes) if classes is not None else list(range(proba.shape[1]))
    index = {c: i for i, c in enumerate(known)}
    out = np.zeros((proba.shape[0], len(targets)))
    for j, c in enumerate(targets):
        if c in index:
            out[:, j] = proba[:, index[c]]
    return out


def weighted_auc_mean(y: np.ndarray, scores: np.ndarray, targets: list[Any], W: np.ndarray) -> np.ndarray:
    """ROC AUC under each weighting in ``W``: binary, or the mean over the target classes that
    have both positives and negatives under that weighting (one-vs-rest macro)."""
    per = np.column_stack([weighted_auc(y, scores[:, j], t, W) for j, t in enumerate(targets)])
    defined = np.isfinite(per)
    count = defined.sum(axis=1)
    total = np.where(defined, per, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(len(W), np.nan), where=count > 0)


def metric_value(metric: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None,
                 classes: list[Any] | None = None) -> float:
    """The metric of predictions ``pred`` (and ``proba``, for probability metrics) against ``y``.

    F1 is binary (the second class's F1) with two classes, macro with more; ROC AUC is binary,
    or one-vs-rest macro with more than two classes (see :func:`f1_targets`, :func:`auc_targets`).
    """
    spec = METRICS[metric]
    if spec.per_row is not None:
        terms = spec.per_row(y.astype("float64") if metric in ("mae", "rmse", "mape") else y,
                             pred.astype("float64") if metric in ("mae", "rmse", "mape") else pred)
        return float(spec.finish(float(np.mean(terms))))

    if metric == "r2":
        from sklearn import metrics as skm

        return float(skm.r2_score(y, pred))
    if metric == "f1":
        targets, _ = f1_targets(sorted_labels(y, pred, classes))
        return float(f1_from_sums(f1_columns(y, pred, targets).sum(axis=0)))
    if proba is None:
        raise ModelError(f"the metric {metric} needs class probabilities, and this model gives none")
    if metric == "log_loss":
        eps = 1e-15
        idx = {c: i for i, c in enumerate(classes or [])}
        rows = np.array([idx.get(v, -1) for v in y])
        if (rows < 0).any():
            raise DataError("the holdout holds a class the model never saw; log loss is undefined")
        terms = -np.log(np.clip(proba[np.arange(len(y)), rows], eps, 1))
        return float(np.mean(terms))
    # roc_auc
    targets, _ = auc_targets(sorted_labels(y, classes if classes is not None else range(proba.shape[1])))
    ones = np.ones((1, len(y)))
    return float(weighted_auc_mean(y, auc_scores(proba, classes, targets), targets, ones)[0])


def evaluate(model: Any, holdout: pd.DataFrame, *, target: str, metric: str) -> Scores:
    """Predict the holdout with ``model`` (anything with ``predict(raw_frame)``) and score it."""
    spec = METRICS[metric]
    started = time.perf_counter()
    raw = holdout.drop(columns=[target])
    try:
        pred = np.asarray(model.predict(raw))
        proba = np.asarray(model.predict_proba(raw)) if spec.needs_proba else None
    except DataError:
        raise
    except Exception as exc:
        raise ModelError(f"the model failed to predict the holdout: {type(exc).__name__}: {exc}",
                         "the model may expect other columns than the data now has") from exc
    seconds = time.perf_counter() - started
    pred = pred.reshape(len(raw), -1)[:, 0] if pred.ndim > 1 else pred
    y = holdout[target].to_numpy()
    if metric in ("mae", "rmse", "mape", "r2") and not np.all(np.isfinite(pred.astype("float64"))):
        raise ModelError("the model predicted NaN or infinite values for some held-out rows")
    classes = getattr(model, "classes", None)
    value = metric_value(metric, y, pred, proba, classes)
    return Scores(metric=metric, value=value, rows=len(y), predict_seconds=seconds, y_true=y, y_pred=pred,
                  proba=proba, classes=list(classes) if classes is not None else None)
