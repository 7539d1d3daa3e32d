"""The seams where a user's package plugs in: sources and trainers by kind, from a table or an
installed package's entry point, checked when modelcycle.yaml loads."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelcycle.config import load_config
from modelcycle.config.plugins import BUILTIN_SOURCES, BUILTIN_TRAINERS, SOURCE_GROUP, TRAINER_GROUP
from modelcycle.errors import ConfigError
from modelcycle.sources import SOURCES, build_source
from modelcycle.sources.files import FileSource
from modelcycle.sources.images import ImageFolderSource
from modelcycle.sources.sql import DuckDBSource, SqlAlchemySource
from modelcycle.steps.model import ModelPipeline
from modelcycle.steps.train import TrainSpec
from modelcycle.steps.trainers import TRAINERS, Scorable, Trainer, trainer_for
from modelcycle.steps.trainers.sklearn import SklearnTrainer
from tests.unit.minimal import CONFIG as GOOD


class FakeEntryPoint:
    """What importlib.metadata gives for an installed package's entry point."""

    def __init__(self, name: str, group: str, target: Any, value: str = "their_package.module:thing") -> None:
        self.name, self.group, self.value, self._target = name, group, value, target

    def load(self) -> Any:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    """Entry points of packages 'installed' for one test: append to the list."""
    eps: list[FakeEntryPoint] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return eps


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modelcycle.yaml"
    path.write_text(text)
    return path


# the tables ---------------------------------------------------------------------------------


def test_the_tables_hold_the_builtin_kinds_the_config_accepts() -> None:
    assert list(SOURCES) == list(BUILTIN_SOURCES) == ["duckdb", "sql", "files", "images"]
    assert list(TRAINERS) == list(BUILTIN_TRAINERS) == ["sklearn", "torch"]


def test_a_config_of_builtin_kinds_loads_without_reading_the_installed_packages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        raise AssertionError(f"the installed packages were read for {group}")

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    config = load_config(write(tmp_path, GOOD))
    assert (config.source.kind, config.model.trainer) == ("files", "sklearn")


@pytest.mark.parametrize(("section", "kind"), [
    ('{kind: duckdb, url: "w.duckdb", table: rides}', DuckDBSource),
    ('{kind: sql, url: "sqlite:///w.db", table: rides}', SqlAlchemySource),
    ('{kind: files, url: "data/*.csv"}', FileSource),
    ('{kind: images, url: "data/images"}', ImageFolderSource),
])
def test_each_builtin_kind_builds_its_source(tmp_path: Path, section: str, kind: type) -> None:
    config = load_config(write(tmp_path, GOOD.replace('{kind: files, url: "data/*.csv"}', section)))
    assert isinstance(build_source(config, tmp_path), kind)


def test_an_unknown_source_kind_names_file_field_value_kinds_and_the_closest(tmp_path: Path, installed) -> None:
    path = write(tmp_path, GOOD.replace("kind: files", "kind: duckbd"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text
    assert "source.kind: unknown source kind 'duckbd' (known: duckdb, sql, files, images); did you mean 'duckdb'?" in text
    assert "'modelcycle.sources'" in text  # how to add one


def test_an_installed_package_adds_a_source_kind(tmp_path: Path, installed) -> None:
    built: list[tuple[str, Path]] = []

    class Pictures:
        def __init__(self, config: Any, root: Path) -> None:
            built.append((config.source.url, root))

    installed.append(FakeEntryPoint("pictures", SOURCE_GROUP, Pictures))
    config = load_config(write(tmp_path, GOOD.replace('{kind: files, url: "data/*.csv"}',
                                                      '{kind: pictures, url: "pictures"}')))
    assert config.source.kind == "pictures"
    assert isinstance(build_source(config, tmp_path), Pictures)
    assert built == [("pictures", tmp_path)]
    # ... and is listed among the known kinds when a kind is misspelt
    with pytest.raises(ConfigError, match=r"known: duckdb, sql, files, images, pictures\); did you mean 'pictures'"):
        load_config(write(tmp_path, GOOD.replace("kind: files", "kind: picturse")))


def test_a_source_package_that_does_not_import_is_named(tmp_path: Path, installed) -> None:
    installed.append(FakeEntryPoint("pictures", SOURCE_GROUP, ImportError("No module named 'PIL'"),
                                    value="pics.source:build"))
    config = load_config(write(tmp_path, GOOD.replace("kind: files", "kind: pictures")))
    with pytest.raises(ConfigError, match=r"`source.kind: pictures` comes from the entry point pics.source:build "
                                          r".*does not load: ImportError: No module named 'PIL'"):
        build_source(config, tmp_path)


def test_the_trainer_defaults_to_sklearn_and_an_unknown_one_is_named(tmp_path: Path, installed) -> None:
    assert load_config(write(tmp_path, GOOD)).model.trainer == "sklearn"
    path = write(tmp_path, GOOD + "model: {trainer: sklaern}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "model.trainer: unknown trainer 'sklaern' (known: sklearn, torch); did you mean 'sklearn'?" in str(err.value)


# the Trainer interface ----------------------------------------------------------------------


class MeanTrainer:
    """A trainer of another kind: predicts the training mean, saves a pipeline object of its own."""

    def fit(self, train: pd.DataFrame, spec: TrainSpec) -> Any:
        from modelcycle.steps.train import Trained

        return Trained(model=MeanModel(float(train[spec.target].mean()), [c for c in spec.input_columns
                                                                             if c != spec.target]),
                       fit_seconds=0.0, rows=len(train))

    def predict(self, model: Any, frame: pd.DataFrame, *, proba: bool = False) -> np.ndarray:
        return model.predict(frame)

    def classes(self, model: Any) -> list[Any] | None:
        return None

    def save(self, trained: Any, path: str, *, input_example: pd.DataFrame, extra_code_paths: Any,
             writer: Any) -> None:
        writer(trained.model, path, input_example=input_example, extra_code_paths=extra_code_paths)


class MeanModel:
    def __init__(self, mean: float, input_columns: list[str]) -> None:
        self.mean, self.input_columns = mean, input_columns

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.mean)


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 3 * x + rng.normal(scale=0.1, size=n)})


def test_the_sklearn_trainer_fits_predicts_and_hands_its_pipeline_to_the_writer() -> None:
    trainer = trainer_for("sklearn")
    assert isinstance(trainer, SklearnTrainer) and isinstance(trainer, Trainer)
    spec = TrainSpec(estimator="sklearn.linear_model:LinearRegression", target="y", task="regression",
                     input_columns=["x", "y"])
    frame = _frame()
    trained = trainer.fit(frame, spec)
    assert isinstance(trained.model, ModelPipeline) and trained.rows == 60
    pred = trainer.predict(trained.model, frame.drop(columns=["y"]))
    assert np.allclose(pred, trained.model.predict(frame.drop(columns=["y"])))
    assert np.abs(pred - frame["y"]).mean() < 0.2
    assert trainer.classes(trained.model) is None
    written: list[tuple[Any, str, list[str]]] = []
    trainer.save(trained, "/somewhere", input_example=frame.head(3), extra_code_paths=None,
                 writer=lambda pipeline, path, *, input_example, extra_code_paths=None, **_: written.append(
                     (pipeline, path, list(input_example.columns))))
    assert written == [(trained.model, "/somewhere", ["x", "y"])]


def test_a_classifier_scores_through_its_trainer() -> None:
    frame = _frame().assign(y=lambda f: np.where(f.x > 0, "up", "down"))
    spec = TrainSpec(estimator="sklearn.linear_model:LogisticRegression", target="y", task="classification",
                     input_columns=["x", "y"])
    trainer = trainer_for("sklearn")
    scorable = Scorable(trainer, trainer.fit(frame, spec).model)
    assert scorable.classes == ["down", "up"]
    assert scorable.predict_proba(frame[["x"]]).shape == (60, 2)


def test_an_installed_trainer_is_found_by_kind_and_checked(tmp_path: Path, installed) -> None:
    installed.append(FakeEntryPoint("mean", TRAINER_GROUP, MeanTrainer))
    assert load_config(write(tmp_path, GOOD + "model: {trainer: mean}\n")).model.trainer == "mean"
    assert isinstance(trainer_for("mean"), MeanTrainer)
    installed.append(FakeEntryPoint("broken", TRAINER_GROUP, object))
    with pytest.raises(ConfigError, match=r"the trainer 'broken' \(object\) lacks fit, predict, classes or save"):
        trainer_for("broken")
