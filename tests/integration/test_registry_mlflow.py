"""The MLflow adapter against a real MLflow 3 on SQLite in tmp_path.

Creating a fresh MLflow database runs every alembic migration (seconds), so the module builds
one empty, migrated database and each test starts from a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from modelcycle.errors import DataError, ModelcycleError, NoChampionError, RegistryError
from modelcycle.registry.loaded import LoadedModel
from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.registry.stores import embedded_uris, redact_uri
from modelcycle.steps.model import ModelPipeline

pytestmark = pytest.mark.slow

FEATURE_MODULE = "mc_itest_features"
FEATURE_CODE = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd

    def trip_features(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=frame.index)
        out["distance"] = np.hypot(frame["dropoff_longitude"] - frame["pickup_longitude"],
                                   frame["dropoff_latitude"] - frame["pickup_latitude"])
        out["hour"] = pd.to_datetime(frame["pickup_datetime"]).dt.hour
        out["passengers"] = frame["passenger_count"].astype(float)
        out["vendor_b"] = (frame["vendor"] == "b").astype(int)
        return out
    """
)
FEATURES = ["distance", "hour", "passengers", "vendor_b"]
INPUTS = ["pickup_datetime", "pickup_longitude", "pickup_latitude", "dropoff_longitude",
          "dropoff_latitude", "passenger_count", "vendor"]


def taxi_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "pickup_datetime": pd.date_range("2015-01-01", periods=n, freq="7min"),
        "pickup_longitude": rng.uniform(-74.05, -73.75, n),
        "pickup_latitude": rng.uniform(40.60, 40.90, n),
        "dropoff_longitude": rng.uniform(-74.05, -73.75, n),
        "dropoff_latitude": rng.uniform(40.60, 40.90, n),
        "passenger_count": rng.integers(1, 6, n),
        "vendor": rng.choice(["a", "b"], n),
    })
    distance = np.hypot(frame.dropoff_longitude - frame.pickup_longitude,
                        frame.dropoff_latitude - frame.pickup_latitude)
    frame["fare_amount"] = 2.5 + 120 * distance + rng.normal(0, 1, n)
    return frame


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory: pytest.TempPathFactory):
    """A user's feature module outside the modelcycle package, importable in this process."""
    folder = tmp_path_factory.mktemp("userfeatures")
    (folder / f"{FEATURE_MODULE}.py").write_text(FEATURE_CODE)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop(FEATURE_MODULE, None)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return taxi_frame(1500)


@pytest.fixture(scope="module")
def pipeline(feature_dir: Path, raw: pd.DataFrame) -> ModelPipeline:
    from importlib import import_module

    build = import_module(FEATURE_MODULE).trip_features
    estimator = lgb.LGBMRegressor(n_estimators=25, num_leaves=15, verbose=-1)
    estimator.fit(build(raw)[FEATURES], raw["fare_amount"])
    return ModelPipeline(estimator=estimator, target="fare_amount", task="regression",
                         input_columns=INPUTS, feature_names=FEATURES,
                         features=f"{FEATURE_MODULE}:trip_features")


@pytest.fixture
def store(tmp_path: Path, template_db: Path) -> tuple[str, str]:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "mlartifacts")


@pytest.fixture
def registry(store: tuple[str, str]) -> MlflowRegistry:
    tracking_uri, artifacts = store
    return MlflowRegistry(tracking_uri, artifact_location=artifacts)


@pytest.fixture
def saved(tmp_path: Path, registry: MlflowRegistry, pipeline: ModelPipeline, raw: pd.DataFrame,
          feature_dir: Path) -> Path:
    path = tmp_path / "model"
    registry.save_model(pipeline, str(path), input_example=raw,
                        extra_code_paths=[feature_dir / f"{FEATURE_MODULE}.py"])
    return path


def champion(registry: MlflowRegistry, saved: Path, name: str = "taxifare") -> tuple[str, str]:
    """A run that logs ``saved``, registers it and makes it champion: (run id, version)."""
    run_id = registry.start_run(experiment=name, run_name="train")
    source = registry.log_model_dir(run_id, str(saved))
    version = registry.register(name, source, run_id, {"git_commit": "abc123"})
    registry.set_alias(name, "champion", version.version)
    registry.end_run(run_id)
    return run_id, version.version


def run_python(script: str, *, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


# -- runs ------------------------------------------------------------------------------------


def test_is_a_registry(registry: MlflowRegistry) -> None:
    assert isinstance(registry, MlflowRegistry)
    assert registry.tracking_uri.startswith("sqlite:///")


def test_run_lifecycle_params_metrics_tags_artifacts(registry: MlflowRegistry, tmp_path: Path) -> None:
    parent = registry.start_run(experiment="taxifare", run_name="cycle", tags={"flow_run": "f-1"})
    run_id = registry.start_run(experiment="taxifare", run_name="train", tags={"role": "challenger"},
                                parent_run_id=parent)
    registry.log_params(run_id, {"model": {"n_estimators": 300, "learning_rate": 0.05},
                                 "features": ["a", "b"], "note": "x" * 7000, "weird:key?": 1})
    registry.log_metrics(run_id, {"mae": 2.31, "rmse": np.float64(3.5)})
    registry.log_metrics(run_id, {"mae": 2.20}, step=1)
    registry.set_tags(run_id, {"git_commit": "abc123", "dvc_hash": 42})
    registry.log_dict(run_id, {"outcome": "promote", "reasons": ["better"]}, "decision.json")
    report = tmp_path / "report.txt"
    report.write_text("hello")
    registry.log_artifact(run_id, str(report), "reports")
    registry.end_run(run_id, "FINISHED")
    registry.end_run(parent, "failed")

    run = registry.get_run(run_id)
    assert run.status == "FINISHED" and run.experiment == "taxifare" and run.name == "train"
    assert run.parent_run_id == parent
    assert run.params["model.n_estimators"] == "300"
    assert run.params["model.learning_rate"] == "0.05"
    assert run.params["features"] == '["a", "b"]'
    assert len(run.params["note"]) == 6000 and run.params["note"].endswith("[truncated]")
    assert run.params["weird:key_"] == "1"
    assert run.metrics == {"mae": 2.20, "rmse": 3.5}
    assert run.tags["git_commit"] == "abc123" and run.tags["dvc_hash"] == "42" and run.tags["role"] == "challenger"
    assert set(run.artifacts) == {"decision.json", "reports/report.txt"}
    assert registry.get_run(parent).status == "FAILED"
    # experiment artifacts live under the configured folder, not the working directory
    assert (tmp_path / "mlartifacts" / "taxifare").is_dir()


def test_params_and_metrics_go_in_batches(registry: MlflowRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="batch")
    calls: list[tuple[int, int]] = []
    original = registry._client.log_batch

    def spy(run_id, metrics=(), params=(), tags=(), synchronous=None):
        calls.append((len(metrics), len(params)))
        return original(run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

    monkeypatch.setattr(registry._client, "log_batch", spy)
    registry.log_params(run_id, {f"p{i}": i for i in range(150)})
    registry.log_metrics(run_id, {f"m{i}": float(i) for i in range(40)})
    assert calls == [(0, 100), (0, 50), (40, 0)]


def test_changing_a_param_is_a_registry_error(registry: MlflowRegistry) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="p")
    registry.log_params(run_id, {"lr": 0.1})
    registry.log_params(run_id, {"lr": 0.1})  # same value: fine
    with pytest.raises(RegistryError) as info:
        registry.log_params(run_id, {"lr": 0.2})
    assert "lr" in info.value.message and "new key" in info.value.hint


def test_system_metrics_are_sampled_into_the_run(registry: MlflowRegistry) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="sys")
    with registry.system_metrics(run_id):
        time.sleep(0.3)  # shorter than the interval: the last sample is still logged
    registry.end_run(run_id)
    metrics = registry.get_run(run_id).metrics
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/system_memory_usage_megabytes" in metrics
    history = registry._client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 1  # the last sample, at the end of the block


def test_system_metrics_short_block_still_records_one_sample(registry: MlflowRegistry) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="short")
    with registry.system_metrics(run_id):
        pass
    assert "system/cpu_utilization_percentage" in registry.get_run(run_id).metrics


def test_two_threads_log_to_two_runs_at_once(registry: MlflowRegistry) -> None:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    runs: dict[str, str] = {}

    def work(role: str) -> None:
        try:
            barrier.wait()
            run_id = registry.start_run(experiment="taxifare", run_name=role, tags={"role": role})
            runs[role] = run_id
            with registry.system_metrics(run_id):
                barrier.wait()
                registry.log_params(run_id, {"role": role, "model": {"seed": len(role)}})
                for step in range(15):
                    registry.log_metrics(run_id, {"loss": float(step), f"{role}_only": 1.0}, step=step)
            registry.end_run(run_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(role,)) for role in ("champion", "challenger")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for role, other in (("champion", "challenger"), ("challenger", "champion")):
        run = registry.get_run(runs[role])
        assert run.status == "FINISHED"
        assert run.params["role"] == role and run.tags["role"] == role
        assert run.metrics["loss"] == 14.0 and f"{role}_only" in run.metrics
        assert f"{other}_only" not in run.metrics
    import mlflow

    assert mlflow.active_run() is None  # nothing fluent was started


# -- models ----------------------------------------------------------------------------------


def test_saved_model_directory(saved: Path, feature_dir: Path) -> None:
    from mlflow.models import Model

    model = Model.load(str(saved / "MLmodel"))
    assert [c.name for c in model.signature.inputs.inputs] == INPUTS  # raw records in, no target
    types = {c.name: repr(c.type) for c in model.signature.inputs.inputs}
    assert types["pickup_datetime"] == "Any" and types["pickup_longitude"] == "double"
    assert model.metadata["modelcycle"]["datetime_columns"] == {"pickup_datetime": None}
    assert model.saved_input_example_info is not None
    assert (saved / "code" / "modelcycle" / "steps" / "model.py").is_file()
    assert (saved / "code" / f"{FEATURE_MODULE}.py").is_file()
    assert not list((saved / "code").rglob("__pycache__"))
    assert (saved / "artifacts" / "pipeline.pkl").is_file()
    assert not (saved / "python_model.pkl").exists()  # models from code: no pickled wrapper
    requirements = (saved / "requirements.txt").read_text().split()
    names = {r.split("==")[0] for r in requirements}
    assert {"mlflow", "cloudpickle", "numpy", "pandas", "lightgbm", "scikit-learn"} <= names
    assert all("==" in r for r in requirements), requirements
    assert "modelcycle" not in names
    assert model.metadata["modelcycle"]["features"] == f"{FEATURE_MODULE}:trip_features"


def test_save_model_refuses_a_non_empty_folder(registry: MlflowRegistry, pipeline: ModelPipeline,
                                               raw: pd.DataFrame, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(RegistryError, match="not empty"):
        registry.save_model(pipeline, str(tmp_path / "busy"), input_example=raw)


def test_save_log_register_alias_load_predicts_like_the_pipeline(
    registry: MlflowRegistry, saved: Path, pipeline: ModelPipeline, raw: pd.DataFrame,
    capfd: pytest.CaptureFixture[str],
) -> None:
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_id = registry.start_run(experiment="taxifare", run_name="train")
        source = registry.log_model_dir(run_id, str(saved))
        assert source.startswith("models:/m-")
        version = registry.register("taxifare", source, run_id, {"git_commit": "abc123", "dvc_hash": 7})
        registry.set_alias("taxifare", "champion", version.version)
        loaded = registry.load_alias("taxifare", "champion")
        fresh = taxi_frame(200, seed=3)  # raw records, target column included
        predicted = loaded.predict(fresh)
    assert not [w for w in caught if "mlflow" in str(w.filename)], [str(w.message) for w in caught]
    assert "Downloading artifacts" not in capfd.readouterr().err

    assert version.version == "1" and version.run_id == run_id
    assert version.tags == {"git_commit": "abc123", "dvc_hash": "7"}
    assert isinstance(loaded, LoadedModel) and loaded.version.version == "1"
    assert loaded.model_id == source.removeprefix("models:/")
    assert isinstance(predicted, np.ndarray) and predicted.shape == (200,)
    np.testing.assert_allclose(predicted, pipeline.predict(fresh))
    assert loaded.pipeline.features == pipeline.features
    assert registry.get_run(run_id).model_ids == [loaded.model_id]
    # the same model through the other URIs
    np.testing.assert_allclose(registry.load_model("models:/taxifare/1").predict(fresh), predicted)
    np.testing.assert_allclose(registry.load_model(source).predict(fresh), predicted)
    np.testing.assert_allclose(registry.load_model(str(saved)).predict(fresh), predicted)


def test_integer_column_with_missing_values_is_a_data_error(registry: MlflowRegistry, saved: Path) -> None:
    loaded = registry.load_model(str(saved))
    fresh = taxi_frame(20, seed=4)
    fresh["passenger_count"] = fresh["passenger_count"].astype(float)
    fresh.loc[3, "passenger_count"] = np.nan
    with pytest.raises(DataError) as info:
        loaded.predict(fresh)
    assert "passenger_count" in info.value.message


def test_times_as_text_or_with_a_zone_are_parsed(registry: MlflowRegistry, saved: Path,
                                                pipeline: ModelPipeline) -> None:
    loaded = registry.load_model(str(saved))
    fresh = taxi_frame(30, seed=9)
    expected = pipeline.predict(fresh)
    as_text = fresh.assign(pickup_datetime=fresh["pickup_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    np.testing.assert_allclose(loaded.predict(as_text), expected)
    in_utc = fresh.assign(pickup_datetime=fresh["pickup_datetime"].dt.tz_localize("UTC"))
    np.testing.assert_allclose(loaded.predict(in_utc), expected)
    with pytest.raises(DataError, match="pickup_datetime"):
        loaded.predict(fresh.assign(pickup_datetime="not a time"))


def test_records_missing_a_column_give_a_data_error(registry: MlflowRegistry, saved: Path) -> None:
    loaded = registry.load_model(str(saved))
    with pytest.raises(DataError) as info:
        loaded.predict(taxi_frame(5).drop(columns=["vendor"]))
    assert "vendor" in str(info.value)


def test_models_uri_loads_in_a_fresh_process(registry: MlflowRegistry, saved: Path,
                                             pipeline: ModelPipeline, tmp_path: Path) -> None:
    champion(registry, saved)
    fresh = taxi_frame(50, seed=5)
    # as a web client would send them: JSON records, times as ISO text, no target
    fresh.drop(columns=["fare_amount"]).to_json(tmp_path / "rides.json", orient="records", date_format="iso")
    script = textwrap.dedent(
        """
        import numpy as np, pandas as pd, mlflow.pyfunc
        rides = pd.read_json("rides.json", orient="records")
        assert not pd.api.types.is_datetime64_any_dtype(rides["pickup_datetime"])
        model = mlflow.pyfunc.load_model("models:/taxifare@champion")
        np.save("out.npy", np.asarray(model.predict(rides)))
        """
    )
    done = run_python(script, env={"MLFLOW_TRACKING_URI": registry.tracking_uri}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), pipeline.predict(fresh))


BLOCK_MODELCYCLE = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, os, sys

    SRC = os.path.realpath({src!r})
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != SRC]

    class OnlyShippedModelcycle(importlib.abc.MetaPathFinder):
        # modelcycle may be imported only from a model's code/ directory
        def find_spec(self, name, path=None, target=None):
            if name != "modelcycle" and not name.startswith("modelcycle."):
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            origin = getattr(spec, "origin", None) or ""
            if os.sep + "code" + os.sep + "modelcycle" not in origin:
                raise ModuleNotFoundError(f"modelcycle is not installed here ({{name}})")
            return spec

    sys.meta_path.insert(0, OnlyShippedModelcycle())
    try:
        import modelcycle
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the block failed: modelcycle imported from " + modelcycle.__file__)
    """
)


def test_loads_where_modelcycle_is_not_installed(registry: MlflowRegistry, saved: Path,
                                                 pipeline: ModelPipeline, tmp_path: Path) -> None:
    import modelcycle

    champion(registry, saved)
    fresh = taxi_frame(50, seed=6)
    fresh.to_parquet(tmp_path / "fresh.parquet")
    src = str(Path(modelcycle.__file__).resolve().parent.parent)
    script = BLOCK_MODELCYCLE.format(src=src) + textwrap.dedent(
        """
        import numpy as np, pandas as pd, mlflow.pyfunc
        model = mlflow.pyfunc.load_model("models:/taxifare/1")
        np.save("out.npy", np.asarray(model.predict(pd.read_parquet("fresh.parquet"))))
        import modelcycle, mc_itest_features
        print("FROM", modelcycle.__file__, mc_itest_features.__file__)
        """
    )
    done = run_python(script, env={"MLFLOW_TRACKING_URI": registry.tracking_uri}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("FROM"))
    assert f"{os.sep}code{os.sep}modelcycle{os.sep}" in line and src not in line
    assert f"{os.sep}code{os.sep}{FEATURE_MODULE}.py" in line
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), pipeline.predict(fresh))


def test_classifier_with_string_labels(registry: MlflowRegistry, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = taxi_frame(300, seed=8)
    frame["long_trip"] = np.where(frame["fare_amount"] > frame["fare_amount"].median(), "yes", "no")
    columns = ["pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude"]
    estimator = LogisticRegression().fit(frame[columns], frame["long_trip"])
    classifier = ModelPipeline(estimator=estimator, target="long_trip", task="classification",
                               input_columns=columns, feature_names=columns, classes=["no", "yes"])
    registry.save_model(classifier, str(tmp_path / "clf"), input_example=frame)
    requirements = (tmp_path / "clf" / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "lightgbm" not in requirements
    loaded = registry.load_model(str(tmp_path / "clf"))
    assert list(loaded.predict(frame.head(20))) == list(classifier.predict(frame.head(20)))
    assert loaded.predict_proba(frame.head(3)).shape == (3, 2)


# -- registry --------------------------------------------------------------------------------


def test_aliases_move_and_get_alias_follows(registry: MlflowRegistry, saved: Path) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="train")
    source = registry.log_model_dir(run_id, str(saved))
    v1 = registry.register("taxifare", source, run_id)
    v2 = registry.register("taxifare", source, run_id)
    assert (v1.version, v2.version) == ("1", "2")
    assert registry.get_alias("taxifare", "champion") is None
    assert registry.get_alias("no-such-model", "champion") is None

    registry.set_alias("taxifare", "champion", "1")
    assert registry.get_alias("taxifare", "champion").version == "1"
    registry.set_alias("taxifare", "Production", "2")  # the seeds' word for champion
    assert registry.get_alias("taxifare", "champion").version == "2"
    registry.set_alias("taxifare", "challenger", "1")

    listed = registry.list_versions("taxifare")
    assert [v.version for v in listed] == ["2", "1"]
    assert listed[0].aliases == ("champion",) and listed[1].aliases == ("challenger",)
    assert registry.get_version("taxifare", "2").aliases == ("champion",)
    assert registry.list_versions("no-such-model") == []

    registry.set_version_tags("taxifare", "2", {"champion_by": "ana", "champion_reason": "manual"})
    assert registry.get_version("taxifare", "2").tags == {"champion_by": "ana", "champion_reason": "manual"}
    with pytest.raises(RegistryError):
        registry.set_version_tags("taxifare", "9", {"a": "b"})

    registry.delete_alias("taxifare", "challenger")
    registry.delete_alias("taxifare", "challenger")  # missing: fine
    registry.delete_alias("no-such-model", "champion")  # missing model: fine
    assert registry.get_alias("taxifare", "staging") is None


def test_delete_version(registry: MlflowRegistry, saved: Path) -> None:
    run_id, _ = champion(registry, saved)
    source = f"models:/{registry.get_run(run_id).model_ids[0]}"
    v2 = registry.register("taxifare", source, run_id)
    registry.set_alias("taxifare", "champion", v2.version)

    registry.delete_version("taxifare", v2.version)
    assert [v.version for v in registry.list_versions("taxifare")] == ["1"]
    assert registry.get_alias("taxifare", "champion") is None  # the alias went with it
    with pytest.raises(RegistryError) as info:
        registry.get_version("taxifare", v2.version)
    assert "taxifare" in info.value.message
    registry.delete_version("taxifare", v2.version)  # already gone: fine
    assert registry.register("taxifare", source, run_id).version == "3"  # numbers are not reused


def test_register_from_runs_uri_and_local_folder(registry: MlflowRegistry, saved: Path, tmp_path: Path,
                                                 raw: pd.DataFrame) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="artifacts")
    registry.log_artifact(run_id, str(saved), "exported")
    from_run = registry.register("taxifare", f"runs:/{run_id}/exported", run_id)
    from_folder = registry.register("taxifare", str(saved), None)
    for version in (from_run, from_folder):
        model = registry.load_model(f"models:/taxifare/{version.version}")
        assert model.predict(raw.head(3)).shape == (3,)


def test_load_alias_without_champion(registry: MlflowRegistry, saved: Path) -> None:
    with pytest.raises(NoChampionError) as info:
        registry.load_alias("taxifare", "champion")
    assert info.value.message == "no champion for 'taxifare' yet"
    assert "`modelcycle promote --version N`" in info.value.hint
    run_id = registry.start_run(experiment="taxifare", run_name="train")
    registry.register("taxifare", registry.log_model_dir(run_id, str(saved)), run_id)
    with pytest.raises(NoChampionError):
        registry.load_alias("taxifare", "Production")


def test_corrupt_model_artifact_is_a_registry_error(registry: MlflowRegistry, saved: Path) -> None:
    from mlflow.utils.file_utils import local_file_uri_to_path

    _, version = champion(registry, saved)
    stored = Path(local_file_uri_to_path(registry.get_version("taxifare", version).source))
    pickle_file = stored / "artifacts" / "pipeline.pkl"
    pickle_file.write_bytes(pickle_file.read_bytes()[:100])  # truncated
    with pytest.raises(RegistryError) as info:
        registry.load_alias("taxifare", "champion")
    assert "models:/taxifare@champion" in info.value.message and "version 1" in info.value.message
    assert "corrupt" in info.value.hint and "promote" in info.value.hint
    assert not isinstance(info.value, NoChampionError)


def test_missing_model_files_are_a_registry_error(registry: MlflowRegistry, saved: Path) -> None:
    from mlflow.utils.file_utils import local_file_uri_to_path

    _, version = champion(registry, saved)
    shutil.rmtree(local_file_uri_to_path(registry.get_version("taxifare", version).source))
    with pytest.raises(RegistryError, match="models:/taxifare@champion"):
        registry.load_alias("taxifare", "champion")


def test_errors_are_translated(registry: MlflowRegistry, saved: Path, tmp_path: Path) -> None:
    from mlflow.exceptions import MlflowException

    checks = [
        lambda: registry.set_alias("taxifare", "champion", "9"),
        lambda: registry.get_version("taxifare", "1"),
        lambda: registry.log_metrics("0" * 32, {"mae": 1.0}),
        lambda: registry.end_run("0" * 32),
        lambda: registry.end_run("0" * 32, "DONE"),
        lambda: registry.load_model("models:/taxifare/7"),
        lambda: registry.load_model(str(tmp_path / "nothing-here")),
        lambda: registry.log_model_dir("0" * 32, str(saved)),
        lambda: registry.log_model_dir("0" * 32, str(tmp_path)),
        lambda: registry.register("taxifare", "models:/m-0123456789abcdef", None),
    ]
    for check in checks:
        with pytest.raises(RegistryError) as info:
            check()
        assert not isinstance(info.value.__cause__, ModelcycleError) or info.value.__cause__ is None \
            or isinstance(info.value.__cause__, RegistryError)
        assert not isinstance(info.value, MlflowException)


def test_bad_tracking_uris(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'mlflow.db'}"
    with pytest.raises(RegistryError) as info:
        MlflowRegistry(missing)
    assert missing in info.value.message and "does not exist" in info.value.message

    server = MlflowRegistry("http://127.0.0.1:9")  # constructing does not touch the network
    with pytest.raises(RegistryError) as info:
        server.check(timeout=2)
    assert "http://127.0.0.1:9" in info.value.message

    with pytest.raises(RegistryError) as info:
        MlflowRegistry("postgresql://bob:s3cret@127.0.0.1:1/mlflow")
    assert "s3cret" not in str(info.value) and "postgresql://bob:***@127.0.0.1:1/mlflow" in info.value.message


def test_check_on_a_working_store(registry: MlflowRegistry) -> None:
    registry.check()


def test_deep_copy_and_pickle(registry: MlflowRegistry) -> None:
    import copy
    import pickle

    run_id = registry.start_run(experiment="taxifare", run_name="r")
    same_store = copy.deepcopy({"registry": registry})["registry"]  # a handle: the copy opens the same store
    assert same_store.tracking_uri == registry.tracking_uri
    assert same_store.get_run(run_id).run_id == run_id
    clone = pickle.loads(pickle.dumps(registry))  # e.g. sent to a worker process
    assert clone.tracking_uri == registry.tracking_uri and clone is not registry
    clone.log_metrics(run_id, {"mae": 1.5})
    assert registry.get_run(run_id).metrics == {"mae": 1.5}


def test_uri_helpers(tmp_path: Path, template_db: Path) -> None:
    tracking, artifacts = embedded_uris(tmp_path)
    assert tracking == f"sqlite:///{tmp_path.resolve()}/.modelcycle/mlflow.db"
    assert tracking.startswith("sqlite:////")
    assert artifacts == (tmp_path.resolve() / ".modelcycle" / "mlartifacts").as_uri()
    assert redact_uri("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    (tmp_path / ".modelcycle").mkdir()
    shutil.copy(template_db, tmp_path / ".modelcycle" / "mlflow.db")
    registry = MlflowRegistry(tracking)  # artifact_location defaults beside the database
    assert registry.artifact_location == artifacts
    run_id = registry.start_run(experiment="taxifare", run_name="r")
    registry.log_dict(run_id, {"a": 1}, "a.json")
    assert (tmp_path / ".modelcycle" / "mlartifacts" / "taxifare" / run_id / "artifacts" / "a.json").is_file()
    assert registry.run_url(run_id) is None  # a local store has no server page


def test_first_database_creation_is_quiet(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from modelcycle.registry.mlflow import MlflowRegistry
        MlflowRegistry("sqlite:///{tmp_path / 'new.db'}")
        """
    )
    done = run_python(script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Creating initial MLflow database tables" not in done.stderr
    assert "INFO" not in done.stderr, done.stderr[-2000:]


# -- speed -----------------------------------------------------------------------------------


@pytest.mark.bench
def test_system_metrics_do_not_slow_the_block(registry: MlflowRegistry) -> None:
    run_id = registry.start_run(experiment="taxifare", run_name="sys")
    started = time.perf_counter()
    with registry.system_metrics(run_id):
        time.sleep(3)
    elapsed = time.perf_counter() - started
    registry.end_run(run_id)
    assert elapsed < 3.6, f"system metrics added {elapsed - 3:.2f}s to a 3 s block"
    history = registry._client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 3  # ~1 s sampling + a last sample at the end


@pytest.mark.bench
def test_speed_of_packaging_and_promotion(registry: MlflowRegistry, feature_dir: Path, tmp_path: Path) -> None:
    """A LightGBM model of a few MB: save + log + register + alias, then load by alias."""
    from importlib import import_module

    frame = taxi_frame(4000, seed=7)
    build = import_module(FEATURE_MODULE).trip_features
    estimator = lgb.LGBMRegressor(n_estimators=150, num_leaves=127, min_child_samples=2, verbose=-1)
    estimator.fit(build(frame)[FEATURES], frame["fare_amount"])
    big = ModelPipeline(estimator=estimator, target="fare_amount", task="regression", input_columns=INPUTS,
                        feature_names=FEATURES, features=f"{FEATURE_MODULE}:trip_features")
    run_id = registry.start_run(experiment="speed", run_name="train")
    # warm the imports once (a long-lived flow process pays them once)
    registry.save_model(big, str(tmp_path / "warm"), input_example=frame,
                        extra_code_paths=[feature_dir / f"{FEATURE_MODULE}.py"])

    t0 = time.perf_counter()
    registry.save_model(big, str(tmp_path / "big"), input_example=frame,
                        extra_code_paths=[feature_dir / f"{FEATURE_MODULE}.py"])
    t1 = time.perf_counter()
    source = registry.log_model_dir(run_id, str(tmp_path / "big"))
    t2 = time.perf_counter()
    version = registry.register("speed", source, run_id)
    t3 = time.perf_counter()
    registry.set_alias("speed", "champion", version.version)
    t4 = time.perf_counter()
    loaded = registry.load_alias("speed", "champion")
    t5 = time.perf_counter()
    loaded.predict(frame.head(1000))
    t6 = time.perf_counter()

    size_mb = sum(p.stat().st_size for p in (tmp_path / "big").rglob("*") if p.is_file()) / 1e6
    timings = {"save_model": t1 - t0, "log_model_dir": t2 - t1, "register": t3 - t2, "set_alias": t4 - t3,
               "total": t4 - t0, "load_alias": t5 - t4, "predict_1000": t6 - t5, "model_mb": size_mb}
    print("\nTIMINGS " + json.dumps({k: round(v, 3) for k, v in timings.items()}))
    assert size_mb > 1.0
    assert timings["total"] < 3.0 and timings["load_alias"] < 2.0  # loose: shared CI machines
