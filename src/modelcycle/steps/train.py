"""Fit a challenger: the configured estimator on the configured features."""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.errors import ConfigError, DataError, ModelError
from modelcycle.steps.imports import resolve
from modelcycle.steps.model import ModelPipeline, encode_categories, learn_categories


@dataclass(frozen=True)
class TrainSpec:
    """Everything ``fit`` needs, from modelcycle.yaml and params.yaml."""

    estimator: str
    target: str
    task: str
    input_columns: list[str]
    features: str | None = None
    feature_columns: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 42


@dataclass
class Trained:
    model: ModelPipeline
    fit_seconds: float  # feature building + estimator fit
    rows: int


def _accepts(cls: type, name: str) -> bool:
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_estimator(spec: TrainSpec) -> Any:
    cls = resolve(spec.estimator, what="estimator", field="model.estimator")
    params = dict(spec.params)
    if "random_state" not in params and _accepts(cls, "random_state"):
        params["random_state"] = spec.seed
    if cls.__module__.startswith("lightgbm") and "verbose" not in params and "verbosity" not in params:
        params["verbose"] = -1
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(
            f"the estimator {spec.estimator} does not accept these params.yaml `model:` values: {exc}",
            "fix or remove the offending key under `model:` in params.yaml") from exc


def feature_frame(spec: TrainSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    if spec.features:
        build = resolve(spec.features, what="feature builder", field="features.builder")
        try:
            feats = build(frame)
        except Exception as exc:  # a user's function: report it, with its own message
            raise ModelError(f"the feature builder {spec.features} failed: {type(exc).__name__}: {exc}",
                             "run it on a few rows of the source to see why") from exc
        if not isinstance(feats, pd.DataFrame) or len(feats) != len(frame):
            raise ModelError(f"the feature builder {spec.features} must return a DataFrame with one row per input row")
        return feats, [str(c) for c in feats.columns]
    cols = spec.feature_columns or [c for c in spec.input_columns if c != spec.target]
    return frame[cols], list(cols)


def fit(train: pd.DataFrame, spec: TrainSpec) -> Trained:
    """Train the estimator on ``train`` and wrap it with its feature building."""
    if len(train) == 0:
        raise DataError("there are no rows to train on")
    started = time.perf_counter()
    X, names = feature_frame(spec, train)
    y = train[spec.target]
    if spec.task == "classification" and y.nunique() < 2:
        raise DataError(f"the training rows hold a single class of '{spec.target}' ({y.iloc[0]!r})",
                        "a classifier needs at least two classes: widen the window or the history")
    categories = learn_categories(X)
    X = encode_categories(X, categories)
    estimator = build_estimator(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            estimator.fit(X, y)
    except Exception as exc:
        raise ModelError(f"training {spec.estimator} failed: {type(exc).__name__}: {exc}",
                         "check the hyper-parameters under `model:` in params.yaml and the feature columns") from exc
    seconds = time.perf_counter() - started
    classes = [c.item() if isinstance(c, np.generic) else c for c in getattr(estimator, "classes_", [])] or None
    model = ModelPipeline(
        estimator=estimator, target=spec.target, task=spec.task,
        input_columns=[c for c in spec.input_columns if c != spec.target],
        feature_names=names, features=spec.features, classes=classes, categories=categories,
        metadata={"estimator": spec.estimator, "params": dict(spec.params), "train_rows": len(train)})
    return Trained(model=model, fit_seconds=seconds, rows=len(train))
