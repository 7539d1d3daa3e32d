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
        return frame[self.feature_names]

    def predict(self, raw: pd.DataFrame) -> np.ndarray:
        """Predictions for raw records (a regression value or a class label per row)."""
        return np.asarray(self.estimator.predict(self.transform(raw)))

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        if not hasattr(self.estimator, "predict_proba"):
            raise DataError("this model gives no class probabilities")
        return np.asarray(self.estimator.predict_proba(self.transform(raw)))
