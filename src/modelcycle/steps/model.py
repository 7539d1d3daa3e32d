"""The trained model as one object that takes raw records.

A :class:`ModelPipeline` holds the feature builder (by import path), the fitted estimator and
the column contract. ``predict`` takes raw rows in the source's schema, builds the features and
calls the estimator, so the registry can package it as an MLflow pyfunc model that any MLflow
client loads and calls on raw records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.errors import DataError


def learn_categories(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The categories of each text (or categorical) feature column, as seen in training."""
    out: dict[str, list[Any]] = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        if pd.api.types.is_datetime64_any_dtype(col):
            continue
        out[str(name)] = sorted(col.dropna().astype(str).unique().tolist())
    return out


def encode_categories(frame: pd.DataFrame, categories: dict[str, list[Any]]) -> pd.DataFrame:
    """Text columns as pandas categoricals with the training categories (an unseen value
    becomes missing), so tree models that take categoricals see the same codes every time."""
    if not categories:
        return frame
    frame = frame.copy(deep=False)  # the other columns are not copied: only the text ones are replaced
    for name, cats in categories.items():
        if name in frame.columns:
            values = frame[name].astype("string").astype(object).where(frame[name].notna(), None)
            frame[name] = pd.Categorical(values, categories=cats)
    return frame


@dataclass
class ModelPipeline:
    """Feature building + a fitted estimator.

    ``features`` is an import path of a function ``frame -> feature frame`` or ``None``; with
    ``None`` the estimator sees ``feature_names`` taken straight from the raw columns.
    ``input_columns`` are the raw columns ``predict`` needs.
    """

    estimator: Any
    target: str
    task: str
    input_columns: list[str]
    feature_names: list[str]
    features: str | None = None
    classes: list[Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    categories: dict[str, list[Any]] = field(default_factory=dict)

    def transform(self, raw: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.input_columns if c not in raw.columns]
        if missing:
            raise DataError(
                f"the records to predict lack column(s) {', '.join(missing)}",
                f"the model needs: {', '.join(self.input_columns)}",
            )
        if self.features:
            from modelcycle.steps.imports import resolve

            build = resolve(self.features, what="feature builder")
            frame = build(raw)
        else:
            frame = raw
        return encode_categories(frame[self.feature_names], self.categories)

    def predict(self, raw: pd.DataFrame) -> np.ndarray:
        """Predictions for raw records (a regression value or a class label per row)."""
        return np.asarray(self.estimator.predict(self.transform(raw)))

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        if not hasattr(self.estimator, "predict_proba"):
            raise DataError(f"this {self.task} model ({type(self.estimator).__name__}) gives no class probabilities",
                            "class probabilities exist only for classifiers")
        return np.asarray(self.estimator.predict_proba(self.transform(raw)))
