"""A version loaded for serving predicts like the model, and the load check refuses what would
fail where the model is served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelcycle.errors import ServingError
from modelcycle.registry.memory import MemoryRegistry
from modelcycle.serving.loader import check_serves, from_loaded, load_version
from modelcycle.steps.model import ModelPipeline

COLUMNS = ["distance", "passengers"]


@pytest.fixture
def raw() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"distance": rng.uniform(0, 10, 50), "passengers": rng.integers(1, 5, 50)})
    frame["fare_amount"] = 2.5 + 2 * frame["distance"] + rng.normal(0, 0.1, 50)
    return frame


def _pipeline(raw: pd.DataFrame) -> ModelPipeline:
    estimator = LinearRegression().fit(raw[COLUMNS], raw["fare_amount"])
    return ModelPipeline(estimator=estimator, target="fare_amount", task="regression",
                         input_columns=COLUMNS, feature_names=COLUMNS)


def _registered(reg: MemoryRegistry, raw: pd.DataFrame, tmp_path: Path) -> str:
    run_id = reg.start_run(experiment="m", run_name="train")
    reg.save_model(_pipeline(raw), str(tmp_path / "model"), input_example=raw[COLUMNS])
    return reg.register("m", reg.log_model_dir(run_id, str(tmp_path / "model")), run_id).version


def test_a_loaded_version_predicts_what_the_pipeline_predicts(raw: pd.DataFrame, tmp_path: Path) -> None:
    reg = MemoryRegistry()
    version = reg.get_version("m", _registered(reg, raw, tmp_path))
    served = load_version(reg, "m", version)
    assert served.version.version == "1" and served.input_columns == COLUMNS
    expected = _pipeline(raw).predict(raw)
    np.testing.assert_allclose(served.predict(raw[COLUMNS]), expected)
    # extra columns (the target) and another column order are fine
    np.testing.assert_allclose(served.predict(raw[["fare_amount", *reversed(COLUMNS)]]), expected)
    check_serves(served, raw)


def test_a_version_that_cannot_load_is_a_serving_error(raw: pd.DataFrame, tmp_path: Path) -> None:
    reg = MemoryRegistry()
    version = reg.get_version("m", _registered(reg, raw, tmp_path))
    from dataclasses import replace

    with pytest.raises(ServingError, match="version 1 of m cannot be loaded"):
        load_version(reg, "m", replace(version, source="memory://nowhere"))


class _Broken:
    input_columns = COLUMNS
    task = "regression"

    def __init__(self, result: object) -> None:
        self.result = result

    def predict(self, frame: pd.DataFrame) -> object:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize(("result", "words"), [
    (RuntimeError("feature builder failed"), "cannot predict the window's held-out rows: RuntimeError"),
    (np.ones(3), "gave 3 predictions for 50 rows"),
    (np.full(50, np.nan), "predicted 50 non-finite value(s)"),
])
def test_the_load_check_refuses_a_model_that_fails_where_served(raw: pd.DataFrame, result: object,
                                                                 words: str) -> None:
    from modelcycle.registry.base import ModelVersion

    served = from_loaded("m", ModelVersion("m", "7", "x"), _Broken(result))
    with pytest.raises(ServingError) as info:
        check_serves(served, raw)
    assert words in info.value.message and "version 7 of m" in info.value.message


def test_the_load_check_names_a_column_the_rows_lack(raw: pd.DataFrame) -> None:
    from modelcycle.registry.base import ModelVersion

    served = from_loaded("m", ModelVersion("m", "7", "x"), _Broken(np.ones(50)))
    with pytest.raises(ServingError, match="passengers"):
        check_serves(served, raw.drop(columns=["passengers"]))
