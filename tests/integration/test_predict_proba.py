"""Class probabilities from the logged MLflow model: `params={"output": "proba"}` on any MLflow
client, the scoring server (`mlflow models serve`), the registry's LoadedModel and
`modelcycle predict --proba`; labels stay the default. Real MLflow on SQLite in tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelcycle.errors import DataError
from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.registry.workspace import open_registry
from modelcycle.steps.evaluate import evaluate
from modelcycle.steps.model import ModelPipeline
from modelcycle.steps.train import TrainSpec, fit
from tests.integration.helpers import cli

pytestmark = pytest.mark.slow

COLUMNS = ["sold_at", "size_m2", "rooms", "district"]


def sales(n: int = 900, seed: int = 0) -> pd.DataFrame:
    """Flats with a price band (three classes, text labels) and a price."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(30, 200, n)
    rooms = rng.integers(1, 6, n)
    district = rng.choice(["north", "south", "centre"], n)
    score = size / 50 + rooms * 0.5 + np.where(district == "centre", 1.5, 0) + rng.normal(0, 0.7, n)
    return pd.DataFrame({
        "sold_at": pd.date_range("2023-07-01", "2024-02-28", periods=n).round("s"),
        "size_m2": size.round(1), "rooms": rooms, "district": district,
        "band": np.where(score > 4.5, "high", np.where(score > 3, "mid", "low")),
        "price": (2000 * size + 15000 * rooms).round(0),
    })


def train(frame: pd.DataFrame, target: str, task: str, estimator: str) -> ModelPipeline:
    spec = TrainSpec(estimator=estimator, target=target, task=task, input_columns=[*COLUMNS, target],
                     feature_columns=["size_m2", "rooms", "district"], params={"n_estimators": 30})
    return fit(frame[[*COLUMNS, target]], spec).model


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sales()


@pytest.fixture(scope="module")
def classifier(frame: pd.DataFrame) -> ModelPipeline:
    return train(frame, "band", "classification", "lightgbm:LGBMClassifier")


@pytest.fixture(scope="module")
def regressor(frame: pd.DataFrame) -> ModelPipeline:
    return train(frame, "price", "regression", "lightgbm:LGBMRegressor")


@pytest.fixture
def registry(tmp_path: Path, template_db: Path) -> MlflowRegistry:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    return MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "mlartifacts"))


def register_champion(registry: MlflowRegistry, pipeline: ModelPipeline, example: pd.DataFrame, folder: Path,
                      name: str) -> str:
    registry.save_model(pipeline, str(folder), input_example=example)
    run_id = registry.start_run(experiment=name, run_name="train")
    version = registry.register(name, registry.log_model_dir(run_id, str(folder)), run_id)
    registry.set_alias(name, "champion", version.version)
    registry.end_run(run_id)
    return version.version


def records(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[COLUMNS].tail(40).reset_index(drop=True)


def test_mlflow_client_gets_labels_by_default_and_probabilities_on_request(
        registry: MlflowRegistry, classifier: ModelPipeline, frame: pd.DataFrame, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc

    register_champion(registry, classifier, frame[COLUMNS], tmp_path / "model", "bands")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/bands@champion")
    params = {p.name: p.default for p in model.metadata.get_params_schema().params}
    assert params == {"output": "label"}  # declared, so MLflow passes it on rather than dropping it

    rows = records(frame)
    labels = model.predict(rows)
    assert list(labels) == list(classifier.predict(rows))  # the default is unchanged: labels
    proba = model.predict(rows, params={"output": "proba"})
    assert isinstance(proba, pd.DataFrame) and len(proba) == len(rows)
    assert list(proba.columns) == ["proba_high", "proba_low", "proba_mid"]  # proba_<class>, classes_ order
    np.testing.assert_allclose(proba.to_numpy(), classifier.predict_proba(rows))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(proba.idxmax(axis=1).str.removeprefix("proba_")) == list(labels)
    # dates sent as text (JSON/CSV clients) work for probabilities too
    as_text = rows.assign(sold_at=rows["sold_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    np.testing.assert_allclose(model.predict(as_text, params={"output": "proba"}).to_numpy(), proba.to_numpy())
    with pytest.raises(Exception, match="output='probs' is not known"):
        model.predict(rows, params={"output": "probs"})


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_scoring_server_takes_the_output_param(registry: MlflowRegistry, classifier: ModelPipeline,
                                               frame: pd.DataFrame, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """What `mlflow models serve` runs: the same app, called over HTTP in-process."""
    import mlflow.pyfunc
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    registry.save_model(classifier, str(tmp_path / "model"), input_example=frame[COLUMNS])
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")  # restored after init sets it
    client = TestClient(scoring_server.init(mlflow.pyfunc.load_model(str(tmp_path / "model"))))
    rows = json.loads(records(frame).head(5).to_json(orient="records", date_format="iso"))
    plain = client.post("/invocations", json={"dataframe_records": rows})
    assert plain.status_code == 200, plain.text
    assert plain.json()["predictions"] == list(classifier.predict(records(frame).head(5)))
    asked = client.post("/invocations", json={"dataframe_records": rows, "params": {"output": "proba"}})
    assert asked.status_code == 200, asked.text
    got = pd.DataFrame(asked.json()["predictions"])
    assert list(got.columns) == ["proba_high", "proba_low", "proba_mid"]
    np.testing.assert_allclose(got.to_numpy(), classifier.predict_proba(records(frame).head(5)))


def test_registry_champion_gives_probabilities_and_scores_log_loss(
        registry: MlflowRegistry, classifier: ModelPipeline, frame: pd.DataFrame, tmp_path: Path) -> None:
    register_champion(registry, classifier, frame[COLUMNS], tmp_path / "model", "bands")
    loaded = registry.load_alias("bands", "champion")
    assert loaded.classes == ["high", "low", "mid"]
    holdout = frame[[*COLUMNS, "band"]].tail(200)
    np.testing.assert_allclose(loaded.predict_proba(holdout), classifier.predict_proba(holdout))
    # the gate scores the loaded champion and the fresh challenger with the same code
    for metric in ("log_loss", "roc_auc"):
        served = evaluate(loaded, holdout, target="band", metric=metric).value
        assert served == pytest.approx(evaluate(classifier, holdout, target="band", metric=metric).value)


def test_model_saved_without_the_param_still_gives_probabilities(
        registry: MlflowRegistry, classifier: ModelPipeline, frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "model"
    registry.save_model(classifier, str(path), input_example=frame[COLUMNS])
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    del mlmodel["signature"]["params"]  # as models saved by earlier modelcycle versions are
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    loaded = registry.load_model(str(path))
    rows = records(frame)
    assert list(loaded.probabilities(rows).columns) == ["proba_high", "proba_low", "proba_mid"]
    np.testing.assert_allclose(loaded.predict_proba(rows), classifier.predict_proba(rows))


def test_regression_model_says_it_has_no_probabilities(registry: MlflowRegistry, regressor: ModelPipeline,
                                                      frame: pd.DataFrame, tmp_path: Path) -> None:
    import mlflow.pyfunc

    registry.save_model(regressor, str(tmp_path / "model"), input_example=frame[COLUMNS])
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    rows = records(frame)
    np.testing.assert_allclose(model.predict(rows), regressor.predict(rows))
    with pytest.raises(ValueError, match="regression model: class probabilities .* exist only for classifiers"):
        model.predict(rows, params={"output": "proba"})
    loaded = registry.load_model(str(tmp_path / "model"))
    with pytest.raises(DataError, match="is a regression model: class probabilities exist only for classifiers"):
        loaded.probabilities(rows)


# -- modelcycle predict --proba ---------------------------------------------------------------


def workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str], frame: pd.DataFrame, *args: str) -> Path:
    frame.assign(sold_at=frame["sold_at"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(tmp_path / "sales.csv",
                                                                                   index=False)
    code, _, err = cli(capsys, "init", str(tmp_path / "ws"), "--source", str(tmp_path / "sales.csv"),
                       "--timestamp", "sold_at", *args)
    assert code == 0, err
    return tmp_path / "ws"


def test_cli_predict_proba_writes_a_column_per_class(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     frame: pd.DataFrame, classifier: ModelPipeline) -> None:
    from modelcycle.config.load import Workspace

    root = workspace(tmp_path, capsys, frame.drop(columns=["price"]), "--target", "band",
                     "--task", "classification", "--metric", "log_loss", "--threshold", "0.9")
    ws = Workspace.load(root)
    registry = open_registry(ws)
    register_champion(registry, classifier, frame[COLUMNS], tmp_path / "model", ws.config.name)
    records(frame).head(6).to_json(tmp_path / "new.json", orient="records", date_format="iso")

    code, _, err = cli(capsys, "-w", str(root), "predict", str(tmp_path / "new.json"), "--proba",
                       "-o", str(tmp_path / "out.csv"))
    assert code == 0, err
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == [*COLUMNS, "prediction", "proba_high", "proba_low", "proba_mid"]
    np.testing.assert_allclose(out[["proba_high", "proba_low", "proba_mid"]].to_numpy(),
                               classifier.predict_proba(records(frame).head(6)))
    assert list(out["prediction"]) == list(classifier.predict(records(frame).head(6)))

    code, out_text, err = cli(capsys, "-w", str(root), "predict", str(tmp_path / "new.json"))
    assert code == 0, err
    assert out_text.splitlines()[0] == ",".join([*COLUMNS, "prediction"])  # without --proba: as before


def test_cli_predict_proba_on_a_regression_workspace_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], frame: pd.DataFrame) -> None:
    root = workspace(tmp_path, capsys, frame.drop(columns=["band"]), "--target", "price", "--threshold", "20000")
    records(frame).head(3).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = cli(capsys, "-w", str(root), "predict", str(tmp_path / "new.csv"), "--proba")
    assert code == 2 and not out
    assert "Traceback" not in err
    assert "--proba: class probabilities exist only for classifiers" in err and "regression" in err
