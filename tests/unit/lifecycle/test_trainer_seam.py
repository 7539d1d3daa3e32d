"""The cycle trains, saves and scores the challenger through the trainer ``model.trainer`` names,
here one an installed package adds (a fake entry point)."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelcycle.config.plugins import TRAINER_GROUP
from modelcycle.lifecycle import cycle, flows, services
from modelcycle.steps.train import Trained, TrainSpec
from tests.unit.lifecycle.conftest import Fakes

pytestmark = pytest.mark.usefixtures("prefect_server")


class MedianModel:
    def __init__(self, value: float, input_columns: list[str]) -> None:
        self.value, self.input_columns = value, input_columns

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.value)


class MedianTrainer:
    """Predicts the training median; records what the cycle asks of it."""

    calls: list[str] = []

    def fit(self, train: pd.DataFrame, spec: TrainSpec) -> Trained:
        self.calls.append(f"fit {spec.target}")
        inputs = [c for c in spec.input_columns if c != spec.target]
        return Trained(MedianModel(float(train[spec.target].median()), inputs), fit_seconds=0.0, rows=len(train))

    def predict(self, model: Any, frame: pd.DataFrame, *, proba: bool = False) -> np.ndarray:
        self.calls.append("predict")
        return model.predict(frame)

    def classes(self, model: Any) -> list[Any] | None:
        return None

    def save(self, trained: Trained, path: str, *, input_example: pd.DataFrame, extra_code_paths: Any,
             writer: Any) -> None:
        self.calls.append("save")
        writer(trained.model, path, input_example=input_example, extra_code_paths=extra_code_paths)


class EntryPoint:
    name, group, value = "median", TRAINER_GROUP, "their_package:MedianTrainer"

    def load(self) -> Any:
        return MedianTrainer


def test_the_cycle_trains_saves_and_scores_through_the_named_trainer(
        template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda *, group: [EntryPoint()] if group == TRAINER_GROUP else [])
    MedianTrainer.calls = []
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    config = root / "modelcycle.yaml"
    text = config.read_text()
    assert "\nmodel:\n" in text
    config.write_text(text.replace("\nmodel:\n", "\nmodel:\n  trainer: median\n"))
    fakes = Fakes(root)
    with services.using(factory=fakes):
        result = flows.run(root, "2014-12")
    assert MedianTrainer.calls == ["fit fare_amount", "save", "predict"]
    assert result.challenger_version is not None
    version = fakes.registry.get_alias("taxifare", "challenger")
    assert version is not None and version.version == result.challenger_version
    registered = fakes.registry.load_model(version.source)
    assert isinstance(registered, MedianModel)  # what the trainer saved is what was registered


class CurveTrainer(MedianTrainer):
    """Learns in epochs: its result has a learning curve and a best epoch."""

    def fit(self, train: pd.DataFrame, spec: TrainSpec) -> Trained:
        trained = super().fit(train, spec)
        trained.history = [{"epoch": 1.0, "train_loss": 0.9, "val_loss": 0.5, "val_accuracy": 0.7},
                           {"epoch": 2.0, "train_loss": 0.6, "val_loss": 0.4, "val_accuracy": 0.8},
                           {"epoch": 3.0, "train_loss": 0.3, "val_loss": 0.45, "val_accuracy": 0.75}]
        trained.best_epoch = 2
        return trained


class CurveEntryPoint(EntryPoint):
    name, value = "curve", "their_package:CurveTrainer"

    def load(self) -> Any:
        return CurveTrainer


def test_the_learning_curve_goes_to_the_cycles_run_as_steps_with_the_best_epoch(
        template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda *, group: [CurveEntryPoint()] if group == TRAINER_GROUP else [])
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    config = root / "modelcycle.yaml"
    config.write_text(config.read_text().replace("\nmodel:\n", "\nmodel:\n  trainer: curve\n"))
    fakes = Fakes(root)
    with services.using(factory=fakes):
        result = flows.run(root, "2014-12")
    assert result.mlflow_run_id is not None
    run = fakes.registry.get_run(result.mlflow_run_id)
    assert run.metric_history["val_loss"] == [(1, 0.5), (2, 0.4), (3, 0.45)]
    assert run.metric_history["train_loss"] == [(1, 0.9), (2, 0.6), (3, 0.3)]
    assert [step for step, _ in run.metric_history["val_accuracy"]] == [1, 2, 3]
    assert "epoch" not in run.metrics and run.metrics["best_epoch"] == 2.0


def test_the_estimators_library_is_imported_before_the_cycles_threads_start(
        fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The challenger's fit and the champion's scoring run in two threads at once; had each
    imported the model's library there, one could find the other's modules half initialised (a
    deployed run imports nothing ahead, as the command line does). The flow imports it first."""
    import threading

    from modelcycle.steps import imports, train

    real, seen = imports.resolve, []

    def recording(path: str, **kwargs: Any) -> Any:
        seen.append((path, threading.current_thread().name))
        return real(path, **kwargs)

    monkeypatch.setattr(imports, "resolve", recording)
    monkeypatch.setattr(train, "resolve", recording)
    flow_thread = []
    real_compare = cycle.compare

    def compare(*args: Any) -> Any:
        flow_thread.append(threading.current_thread().name)
        return real_compare(*args)

    monkeypatch.setattr(cycle, "compare", compare)
    flows.run(fakes.root, "2015-01")
    estimator = [thread for path, thread in seen if path == "lightgbm:LGBMRegressor"]
    assert len(estimator) >= 2, seen  # imported ahead, then used by the fit
    assert estimator[0] == flow_thread[0], (seen, flow_thread)
    assert estimator[-1] != flow_thread[0]  # the fit itself ran in a task's thread
