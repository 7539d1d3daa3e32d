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


def metric_value(metric: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None,
                 classes: list[Any] | None = None) -> float:
    """The metric of predictions ``pred`` (and ``proba``, for probability metrics) against ``y``."""
    spec = METRICS[metric]
    if spec.per_row is not None:
        terms = spec.per_row(y.astype("float64") if metric in ("mae", "rmse", "mape") else y,
                             pred.astype("float64") if metric in ("mae", "rmse", "mape") else pred)
        return float(spec.finish(float(np.mean(terms))))
    from sklearn import metrics as skm

    if metric == "r2":
        return float(skm.r2_score(y, pred))
    if metric == "f1":
        average = "binary" if len(np.unique(y)) <= 2 and classes and len(classes) == 2 else "macro"
        pos = classes[1] if average == "binary" and classes else 1
        return float(skm.f1_score(y, pred, average=average, pos_label=pos))
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
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y, proba[:, 1]))
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))


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
