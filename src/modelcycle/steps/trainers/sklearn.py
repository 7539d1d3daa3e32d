"""The ``sklearn`` trainer: a scikit-learn style estimator (LightGBM's included) on the features.

It fits :func:`modelcycle.steps.train.fit` (the estimator named by ``model.estimator``, its
params.yaml values checked first), predicts with the resulting
:class:`~modelcycle.steps.model.ModelPipeline`, and saves that pipeline with the registry's
writer, which pickles it inside the generic pyfunc.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.steps import train as tr
from modelcycle.steps.trainers import PipelineWriter


class SklearnTrainer:
    """:class:`modelcycle.steps.trainers.Trainer` for scikit-learn style estimators."""

    def fit(self, train: pd.DataFrame, spec: tr.TrainSpec) -> tr.Trained:
        return tr.fit(train, spec)

    def predict(self, model: Any, frame: pd.DataFrame, *, proba: bool = False) -> np.ndarray:
        return np.asarray(model.predict_proba(frame) if proba else model.predict(frame))

    def classes(self, model: Any) -> list[Any] | None:
        classes = getattr(model, "classes", None)
        return list(classes) if classes is not None else None

    def save(self, trained: tr.Trained, path: str, *, input_example: pd.DataFrame,
             extra_code_paths: Sequence[Any] | None, writer: PipelineWriter) -> None:
        writer(trained.model, path, input_example=input_example, extra_code_paths=extra_code_paths)
