"""The torch image classifier as an MLflow model: saved by the registry's writer, registered, and
loaded by a plain MLflow client in a fresh process that sends an `image` column of file paths or
base64 text; the served image column; the learning curve as MLflow steps. Real MLflow on SQLite."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.steps.train import Trained, TrainSpec
from modelcycle.steps.trainers import trainer_for
from tests.team.servers import Proc, wait_http

torch = pytest.importorskip("torch", reason="the torch extra is not installed: pip install 'modelcycle[torch]'")

pytestmark = pytest.mark.slow

NAME = "digits"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    data = load_digits()
    folder = tmp_path_factory.mktemp("digit-images")
    paths = []
    for i in range(160):
        path = folder / f"{i:04d}.png"
        Image.fromarray((data.images[i] * 255 / 16).astype(np.uint8), mode="L").save(path)
        paths.append(str(path))
    return pd.DataFrame({"image": paths, "label": data.target[:160].astype(int),
                         "added_at": pd.date_range("2024-01-01", periods=160, freq="h")})


@pytest.fixture(scope="module")
def trained(digits: pd.DataFrame) -> Trained:
    spec = TrainSpec(estimator="", target="label", task="classification", input_columns=list(digits.columns),
                     feature_columns=["image"], params={"epochs": 2, "learning_rate": 0.01}, seed=3)
    return trainer_for("torch").fit(digits.iloc[:120], spec)


@pytest.fixture
def registry(tmp_path: Path, template_db: Path) -> MlflowRegistry:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    return MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "mlartifacts"))


def run_python(script: str, *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300)


def test_the_saved_model_predicts_paths_and_base64_in_a_fresh_process(
        registry: MlflowRegistry, trained: Trained, digits: pd.DataFrame, tmp_path: Path) -> None:
    trainer = trainer_for("torch")
    path = tmp_path / "model"
    example = digits.iloc[:120].drop(columns=["label"]).tail(5)
    trainer.save(trained, str(path), input_example=example, extra_code_paths=None, writer=registry.save_model)

    requirements = (path / "requirements.txt").read_text().splitlines()
    torch_lines = [r for r in requirements if r.lower().startswith("torch")]
    assert torch_lines == [f"torch=={torch.__version__.split('+')[0]}"], requirements
    assert any(r.startswith("pillow==") for r in requirements), requirements
    example_text = (path / "input_example.json").read_text()
    assert str(Path(digits["image"][0]).parent) not in example_text  # base64 PNGs, no paths of this machine
    meta = (path / "MLmodel").read_text()
    assert "image_columns" in meta and "classification" in meta

    run_id = registry.start_run(experiment=NAME, run_name="train")
    version = registry.register(NAME, registry.log_model_dir(run_id, str(path)), run_id, {})
    registry.set_alias(NAME, "champion", version.version)
    registry.end_run(run_id)

    fresh = digits.iloc[120:].drop(columns=["label"]).reset_index(drop=True)
    fresh[["image"]].to_json(tmp_path / "paths.json", orient="records")
    encoded = [base64.b64encode(Path(p).read_bytes()).decode() for p in fresh["image"]]
    pd.DataFrame({"image": encoded}).to_json(tmp_path / "base64.json", orient="records")
    script = textwrap.dedent(
        """
        import json, numpy as np, pandas as pd, mlflow.pyfunc
        model = mlflow.pyfunc.load_model("models:/digits@champion")
        out = {}
        for name in ("paths", "base64"):
            frame = pd.read_json(name + ".json", orient="records")
            out[name] = np.asarray(model.predict(frame)).tolist()
            out[name + "_proba"] = model.predict(frame, params={"output": "proba"}).to_numpy().tolist()
        import modelcycle
        out["modelcycle"] = modelcycle.__file__
        json.dump(out, open("out.json", "w"))
        """
    )
    done = run_python(script, env={"MLFLOW_TRACKING_URI": registry.tracking_uri}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert f"{os.sep}code{os.sep}modelcycle" in out["modelcycle"]  # the copy shipped with the model
    want = trainer.predict(trained.model, fresh)
    want_proba = trainer.predict(trained.model, fresh, proba=True)
    for name in ("paths", "base64"):
        assert out[name] == want.tolist(), name
        np.testing.assert_allclose(out[name + "_proba"], want_proba, atol=1e-6)
    assert (np.asarray(out["paths"]) == digits["label"].iloc[120:].to_numpy()).mean() > 0.3  # chance is 0.1


def test_a_served_image_column_takes_base64_text_and_paths_only_when_the_server_reads_them(
        registry: MlflowRegistry, trained: Trained, digits: pd.DataFrame, tmp_path: Path) -> None:
    from modelcycle.errors import DataError
    from modelcycle.serving import inputs
    from modelcycle.serving.loader import load_version

    path = tmp_path / "model"
    trainer_for("torch").save(trained, str(path), input_example=digits.head(3), extra_code_paths=None,
                              writer=registry.save_model)
    run_id = registry.start_run(experiment=NAME, run_name="train")
    version = registry.register(NAME, registry.log_model_dir(run_id, str(path)), run_id, {})
    registry.end_run(run_id)
    served = load_version(registry, NAME, version)
    assert served.columns == {"image": "image"} and served.gives_probabilities
    cells = [digits["image"][150], base64.b64encode(Path(digits["image"][151]).read_bytes()).decode()]
    body = json.dumps({"records": [{"image": c} for c in cells]}).encode()
    columns = inputs.check(inputs.parse(body, "application/json"), served.columns)
    predictions = served.predict(pd.DataFrame(columns))
    assert predictions.tolist() == trainer_for("torch").predict(trained.model, digits.iloc[150:152]).tolist()
    with pytest.raises(inputs.InputError, match=r"'image' must be an image: a file path or base64 text, but "
                                                r"record 1 holds a number") as caught:
        inputs.check(inputs.parse(b'{"records": [{"image": "a.png"}, {"image": 3}]}', None), served.columns)
    assert caught.value.status == 422 and caught.value.row == 1
    with pytest.raises(DataError, match=r"row 0 of 'image': the image file .*missing.png does not exist"):
        served.predict(pd.DataFrame({"image": [str(tmp_path / "missing.png")]}))

    # through the HTTP app: a path is refused unless serve.image_paths is true; base64 answers the same
    from fastapi.testclient import TestClient

    from modelcycle.serving.app import Server, create_app

    class Follower:
        name, alias, poll_seconds, served = NAME, "champion", 2.0, None
        loaded_at = last_poll = poll_error = failure = notice = None
        swaps = 0

    follower = Follower()
    follower.served = served
    want = predictions.tolist()
    refusing = TestClient(create_app(Server(follower)))  # type: ignore[arg-type]
    answer = refusing.post("/predict", json={"records": [{"image": c} for c in cells]})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "image_path_refused"
    assert answer.json()["error"]["row"] == 0 and "serve.image_paths: true" in answer.json()["error"]["message"]
    encoded = [base64.b64encode(Path(digits["image"][150]).read_bytes()).decode(), cells[1]]
    answer = refusing.post("/predict", json={"records": [{"image": c} for c in encoded]})
    assert answer.status_code == 200 and answer.json()["predictions"] == want
    sharing = TestClient(create_app(Server(follower, image_paths=True)))  # type: ignore[arg-type]
    answer = sharing.post("/predict", json={"records": [{"image": c} for c in cells]})
    assert answer.status_code == 200 and answer.json()["predictions"] == want


def test_a_learning_curve_is_logged_as_steps_in_one_batch(registry: MlflowRegistry, trained: Trained) -> None:
    run_id = registry.start_run(experiment=NAME, run_name="curve")
    registry.log_metric_steps(run_id, trained.history)
    registry.end_run(run_id)
    for metric in ("train_loss", "val_loss", "val_accuracy"):
        history = sorted(registry._client.get_metric_history(run_id, metric), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx([h[metric] for h in trained.history])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_mlflow_models_serve_predicts_base64_and_paths_as_the_loaded_model_does(
        registry: MlflowRegistry, trained: Trained, digits: pd.DataFrame, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlflow models serve` on a registered version, as a team serves it without modelcycle:
    a dataframe_split of base64 PNG text or file paths gives the labels (and, with the output
    param, the probabilities) that `mlflow.pyfunc.load_model(...).predict` gives."""
    import mlflow.pyfunc

    path = tmp_path / "model"
    trainer_for("torch").save(trained, str(path), input_example=digits.iloc[:120].drop(columns=["label"]).tail(3),
                              extra_code_paths=None, writer=registry.save_model)
    run_id = registry.start_run(experiment=NAME, run_name="train")
    version = registry.register(NAME, registry.log_model_dir(run_id, str(path)), run_id, {})
    registry.end_run(run_id)
    uri = f"models:/{NAME}/{version.version}"

    held_out = digits["image"].iloc[140:146].tolist()
    encoded = [base64.b64encode(Path(p).read_bytes()).decode() for p in held_out[:3]]
    cells = [*encoded, *held_out[3:]]  # three as base64 text, three as file paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"}
    env.update(MLFLOW_TRACKING_URI=registry.tracking_uri, MLFLOW_DISABLE_TELEMETRY="true",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")  # uvicorn
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = Proc("mlflow models serve", subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "-h",
             "127.0.0.1", "-p", str(port)], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True), log)
    try:
        wait_http(server, f"http://127.0.0.1:{port}/ping", 90)
        split = {"columns": ["image"], "data": [[c] for c in cells]}
        status, labels = post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": split})
        assert status == 200, labels
        status, proba = post(f"http://127.0.0.1:{port}/invocations",
                             {"dataframe_split": split, "params": {"output": "proba"}})
        assert status == 200, proba
        status, refused = post(f"http://127.0.0.1:{port}/invocations",
                               {"dataframe_split": {"columns": ["image"], "data": [[str(tmp_path / "none.png")]]}})
        # a cell the model cannot read is answered with what is wrong, not MLflow's "unexpected error"
        assert status == 400 and refused["error_code"] == "INVALID_PARAMETER_VALUE", refused
        assert re.search(r"row 0 of 'image': the image file \S*none\.png does not exist", refused["message"])
        status, refused = post(f"http://127.0.0.1:{port}/invocations",
                               {"dataframe_split": split, "params": {"output": "probs"}})
        assert status == 400 and "the param output='probs' is not known" in refused["message"], refused
    finally:
        server.stop()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    model = mlflow.pyfunc.load_model(uri)
    frame = pd.DataFrame({"image": cells})
    want = np.asarray(model.predict(frame)).tolist()
    assert labels["predictions"] == want
    assert want == trainer_for("torch").predict(trained.model, digits.iloc[140:146]).tolist()
    want_proba = model.predict(frame, params={"output": "proba"})
    served_proba = pd.DataFrame(proba["predictions"])
    assert list(served_proba.columns) == list(want_proba.columns) == [f"proba_{c}" for c in trained.model.classes]
    np.testing.assert_allclose(served_proba.to_numpy(), want_proba.to_numpy(), atol=1e-6)
