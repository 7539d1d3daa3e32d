"""The follower keeps the served version on the champion alias: it swaps a new version in only
once it loads and predicts, reports a refused one, and does not retry it on every poll."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelcycle.errors import ServingError
from modelcycle.registry.memory import MemoryRegistry
from modelcycle.serving import follower as following
from modelcycle.serving.follower import Follower
from modelcycle.serving.loader import Served, load_version
from modelcycle.steps.model import ModelPipeline

COLUMNS = ["distance", "passengers"]


@pytest.fixture
def raw() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"distance": rng.uniform(0, 10, 30), "passengers": rng.integers(1, 5, 30)})
    frame["fare_amount"] = 2.5 + 2 * frame["distance"]
    return frame


def _register(reg: MemoryRegistry, raw: pd.DataFrame, path: Path, slope: float = 1.0) -> str:
    y = raw["fare_amount"] * slope
    pipeline = ModelPipeline(estimator=LinearRegression().fit(raw[COLUMNS], y), target="fare_amount",
                             task="regression", input_columns=COLUMNS, feature_names=COLUMNS)
    run_id = reg.start_run(experiment="m", run_name="train")
    reg.save_model(pipeline, str(path), input_example=raw[COLUMNS])
    return reg.register("m", reg.log_model_dir(run_id, str(path)), run_id).version


def test_the_follower_loads_the_champion_and_swaps_when_the_alias_moves(raw: pd.DataFrame, tmp_path: Path) -> None:
    reg = MemoryRegistry()
    one, two = _register(reg, raw, tmp_path / "a"), _register(reg, raw, tmp_path / "b", slope=2.0)
    moves: list[tuple[str | None, str | None]] = []
    swaps: list[tuple[str | None, str]] = []
    f = Follower(reg, "m", on_move=lambda b, a: moves.append((b, a)),
                 on_swap=lambda old, new: swaps.append((old.version.version if old else None, new.version.version)),
                 sample=lambda: raw)
    assert f.poll() is False and f.served is None  # no champion yet
    reg.set_alias("m", "champion", one)
    assert f.poll() is True and f.served is not None and f.served.version.version == one
    first = f.served
    assert f.poll() is False and f.served is first  # nothing moved: the same object
    reg.set_alias("m", "champion", two)
    assert f.poll() is True and f.served.version.version == two and f.swaps == 1
    assert first.version.version == one  # a request holding the old one finishes on it
    assert moves == [(None, one), (one, two)]
    assert swaps == [(None, one), (one, two)]
    assert f.loaded_at and f.last_poll and f.failure is None
    loads: list[str] = []
    f.loader = lambda r, name, version: loads.append(version.version) or load_version(r, name, version)
    reg.set_alias("m", "champion", one)  # a rollback: the version served before is still loaded
    assert f.poll() is True and f.served is first and loads == [] and swaps[-1] == (two, one)


def test_a_version_that_fails_to_load_or_predict_is_refused_and_not_retried_at_once(
        raw: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = MemoryRegistry()
    one, two = _register(reg, raw, tmp_path / "a"), _register(reg, raw, tmp_path / "b")
    reg.set_alias("m", "champion", one)
    calls: list[str] = []

    def loader(r: MemoryRegistry, name: str, version) -> Served:
        calls.append(version.version)
        served = load_version(r, name, version)
        if version.version == two:
            return replace(served, _predict=lambda frame: np.full(len(frame), np.nan))  # loads, predicts NaN
        return served

    failures = []
    f = Follower(reg, "m", loader=loader, on_failure=failures.append, sample=lambda: raw)
    f.poll()
    reg.set_alias("m", "champion", two)
    assert f.poll() is False
    assert f.served is not None and f.served.version.version == one  # the old one keeps serving
    assert f.failure is not None and f.failure.version == two and "non-finite" in f.failure.message
    assert failures == [f.failure]
    f.poll()
    f.poll()
    assert calls == [one, two]  # not tried again on every poll
    monkeypatch.setattr(following.time, "monotonic", lambda: 10.0**9)  # after the backoff it is
    f.poll()
    assert calls == [one, two, two] and f.failure.attempts == 2


def test_the_check_uses_the_model_input_example_else_recent_requests_that_fit(raw: pd.DataFrame,
                                                                            tmp_path: Path) -> None:
    reg = MemoryRegistry()
    version = reg.get_version("m", _register(reg, raw, tmp_path / "a"))
    served = load_version(reg, "m", version)
    f = Follower(reg, "m", sample=lambda: raw)
    served.example = raw[COLUMNS].head(3)
    assert len(f._check_rows(served)) == 3
    served.example = None
    assert len(f._check_rows(served)) == following.CHECK_ROWS
    f.sample = lambda: raw[["distance"]]  # the new version needs a column the recent requests lack
    assert f._check_rows(served) is None


def test_a_registry_that_does_not_answer_keeps_the_old_version_serving(raw: pd.DataFrame, tmp_path: Path) -> None:
    reg = MemoryRegistry()
    reg.set_alias("m", "champion", _register(reg, raw, tmp_path / "a"))
    f = Follower(reg, "m")
    f.poll()
    served = f.served

    def down(*_a: object) -> None:
        raise ServingError("the registry at http://me:hunter2@mlflow.example/ is down")

    reg.get_alias = down  # type: ignore[method-assign]
    reg_error = f.poll()
    assert reg_error is False and f.served is served
    assert f.poll_error == "the registry at http://me:***@mlflow.example/ is down"  # never the password


def test_a_removed_alias_keeps_the_last_version_serving_and_says_so(raw: pd.DataFrame, tmp_path: Path) -> None:
    reg = MemoryRegistry()
    one = _register(reg, raw, tmp_path / "a")
    reg.set_alias("m", "champion", one)
    f = Follower(reg, "m", sample=lambda: raw)
    assert f.poll() is True and f.notice is None
    reg.delete_alias("m", "champion")  # someone removed it in the MLflow UI
    assert f.poll() is False and f.served is not None and f.served.version.version == one
    assert f.notice == f"the champion alias of m was removed; still serving v{one} until it points at a version again"
    reg.set_alias("m", "champion", one)
    assert f.poll() is False and f.notice is None
