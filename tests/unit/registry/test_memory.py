"""The in-memory registry honours the same contract as the MLflow adapter, in milliseconds."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from modelcycle.errors import ModelError, NoChampionError, RegistryError
from modelcycle.registry.memory import MemoryRegistry, RunRecord
from modelcycle.steps.model import ModelPipeline

COLUMNS = ["distance", "passengers"]


@pytest.fixture
def raw() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"distance": rng.uniform(0, 10, 50), "passengers": rng.integers(1, 5, 50)})
    frame["fare_amount"] = 2.5 + 2 * frame["distance"] + rng.normal(0, 0.1, 50)
    return frame


@pytest.fixture
def pipeline(raw: pd.DataFrame) -> ModelPipeline:
    estimator = LinearRegression().fit(raw[COLUMNS], raw["fare_amount"])
    return ModelPipeline(estimator=estimator, target="fare_amount", task="regression",
                         input_columns=COLUMNS, feature_names=COLUMNS)


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


def promote(registry: MemoryRegistry, pipeline: ModelPipeline, raw: pd.DataFrame, path: Path,
            name: str = "taxifare") -> str:
    run_id = registry.start_run(experiment=name, run_name="train")
    registry.save_model(pipeline, str(path), input_example=raw)
    version = registry.register(name, registry.log_model_dir(run_id, str(path)), run_id)
    registry.set_alias(name, "champion", version.version)
    return version.version


def test_its_tracking_uri_says_it_is_in_memory(registry: MemoryRegistry) -> None:
    assert registry.tracking_uri.startswith("memory://")


def test_run_lifecycle(registry: MemoryRegistry, tmp_path: Path) -> None:
    parent = registry.start_run(experiment="taxifare", run_name="cycle")
    run_id = registry.start_run(experiment="taxifare", run_name="train", tags={"role": "challenger"},
                                parent_run_id=parent)
    registry.log_params(run_id, {"model": {"n_estimators": 300, "lr": 0.05}, "features": ["a", "b"],
                                 "note": "x" * 7000})
    registry.log_metrics(run_id, {"mae": 2.31})
    registry.log_metrics(run_id, {"mae": 2.20}, step=1)
    registry.set_tags(run_id, {"git_commit": "abc123", "dvc_hash": 42})
    registry.log_dict(run_id, {"outcome": "promote"}, "decision.json")
    (tmp_path / "report.txt").write_text("hi")
    registry.log_artifact(run_id, str(tmp_path / "report.txt"), "reports")
    with registry.system_metrics(run_id):
        pass
    registry.end_run(run_id, "finished")

    run = registry.get_run(run_id)
    assert isinstance(run, RunRecord)
    assert run.status == "FINISHED" and run.parent_run_id == parent and run.experiment == "taxifare"
    assert run.params["model.n_estimators"] == "300" and run.params["features"] == '["a", "b"]'
    assert len(run.params["note"]) == 6000
    assert run.metrics["mae"] == 2.20 and run.metric_history["mae"] == [(0, 2.31), (1, 2.20)]
    assert "system/cpu_utilization_percentage" in run.metrics
    assert run.tags == {"role": "challenger", "git_commit": "abc123", "dvc_hash": "42"}
    assert set(run.artifacts) == {"decision.json", "reports/report.txt"}


def test_params_cannot_change_and_statuses_are_checked(registry: MemoryRegistry) -> None:
    run_id = registry.start_run(experiment="e", run_name="r")
    registry.log_params(run_id, {"lr": 0.1})
    registry.log_params(run_id, {"lr": 0.1})
    with pytest.raises(RegistryError, match="lr"):
        registry.log_params(run_id, {"lr": 0.2})
    with pytest.raises(RegistryError):
        registry.end_run(run_id, "DONE")
    with pytest.raises(RegistryError):
        registry.log_metrics("nope", {"mae": 1.0})


def test_save_register_alias_load(registry: MemoryRegistry, pipeline: ModelPipeline, raw: pd.DataFrame,
                                  tmp_path: Path) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="train")
    registry.save_model(pipeline, str(tmp_path / "model"), input_example=raw)
    source = registry.log_model_dir(run_id, str(tmp_path / "model"))
    assert source.startswith("models:/m-")
    version = registry.register("taxifare", source, run_id, {"git_commit": "abc"})
    assert (version.version, version.run_id, version.tags) == ("1", run_id, {"git_commit": "abc"})
    registry.set_alias("taxifare", "champion", "1")
    loaded = registry.load_alias("taxifare", "champion")
    np.testing.assert_allclose(loaded.predict(raw), pipeline.predict(raw))
    for uri in ("models:/taxifare/1", "models:/taxifare@champion", source, str(tmp_path / "model")):
        np.testing.assert_allclose(registry.load_model(uri).predict(raw), pipeline.predict(raw))
    assert registry.get_run(run_id).model_ids == [source.removeprefix("models:/")]


def test_save_model_checks(registry: MemoryRegistry, pipeline: ModelPipeline, raw: pd.DataFrame,
                           tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        registry.save_model(pipeline, str(tmp_path / "a"), input_example=raw.head(0))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    with pytest.raises(RegistryError, match="not empty"):
        registry.save_model(pipeline, str(tmp_path / "busy"), input_example=raw)
    with pytest.raises(RegistryError):
        registry.log_model_dir(registry.start_run(experiment="e", run_name="r"), str(tmp_path))


def test_aliases_move(registry: MemoryRegistry, pipeline: ModelPipeline, raw: pd.DataFrame, tmp_path: Path) -> None:
    promote(registry, pipeline, raw, tmp_path / "m1")
    promote(registry, pipeline, raw, tmp_path / "m2")
    assert registry.get_alias("taxifare", "champion").version == "2"
    registry.set_alias("taxifare", "Production", "1")
    assert registry.get_alias("taxifare", "champion").version == "1"
    registry.set_alias("taxifare", "Staging", "2")
    listed = registry.list_versions("taxifare")
    assert [(v.version, v.aliases) for v in listed] == [("2", ("challenger",)), ("1", ("champion",))]
    registry.delete_alias("taxifare", "challenger")
    registry.delete_alias("taxifare", "challenger")
    registry.delete_alias("nope", "champion")
    assert registry.get_alias("taxifare", "challenger") is None
    assert registry.get_alias("nope", "champion") is None
    assert registry.list_versions("nope") == []
    with pytest.raises(RegistryError):
        registry.set_alias("taxifare", "champion", "9")
    registry.set_version_tags("taxifare", "1", {"champion_by": "ana", "reason": "manual"})
    assert registry.get_version("taxifare", "1").tags == {"champion_by": "ana", "reason": "manual"}
    with pytest.raises(RegistryError):
        registry.set_version_tags("taxifare", "9", {"a": "b"})


def test_delete_version(registry: MemoryRegistry, pipeline: ModelPipeline, raw: pd.DataFrame, tmp_path: Path) -> None:
    promote(registry, pipeline, raw, tmp_path / "m1")
    version = promote(registry, pipeline, raw, tmp_path / "m2")
    registry.delete_version("taxifare", version)
    registry.delete_version("taxifare", version)  # already gone: fine
    assert [v.version for v in registry.list_versions("taxifare")] == ["1"]
    assert registry.get_alias("taxifare", "champion") is None
    with pytest.raises(RegistryError):
        registry.get_version("taxifare", version)
    assert promote(registry, pipeline, raw, tmp_path / "m3") == "3"


def test_no_champion(registry: MemoryRegistry) -> None:
    with pytest.raises(NoChampionError) as info:
        registry.load_alias("taxifare", "Production")
    assert info.value.message == "no champion for 'taxifare' yet"
    assert "`modelcycle run --window YYYY-MM`" in info.value.hint and "`modelcycle promote --version N`" in info.value.hint


def test_corrupt_model_is_a_registry_error(registry: MemoryRegistry, pipeline: ModelPipeline, raw: pd.DataFrame,
                                           tmp_path: Path) -> None:
    promote(registry, pipeline, raw, tmp_path / "m1")
    model_id = next(iter(registry.models))
    registry.models[model_id] = registry.models[model_id][:40]
    with pytest.raises(RegistryError) as info:
        registry.load_alias("taxifare", "champion")
    assert "models:/taxifare@champion" in info.value.message and "corrupt" in info.value.hint
    assert not isinstance(info.value, NoChampionError)


def test_threads_log_to_their_own_runs(registry: MemoryRegistry) -> None:
    runs: dict[str, str] = {}

    def work(role: str) -> None:
        run_id = registry.start_run(experiment="e", run_name=role)
        runs[role] = run_id
        for step in range(50):
            registry.log_metrics(run_id, {f"{role}_loss": float(step)}, step=step)
        registry.end_run(run_id)

    threads = [threading.Thread(target=work, args=(r,)) for r in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(registry.get_run(runs["a"]).metrics) == {"a_loss"}
    assert set(registry.get_run(runs["b"]).metrics) == {"b_loss"}


def test_pickle_keeps_the_data(registry: MemoryRegistry, pipeline: ModelPipeline,
                               raw: pd.DataFrame, tmp_path: Path) -> None:
    import pickle

    promote(registry, pipeline, raw, tmp_path / "m1")
    clone = pickle.loads(pickle.dumps(registry))
    assert clone.get_alias("taxifare", "champion").version == "1"
    assert promote(clone, pipeline, raw, tmp_path / "m2") == "2"
