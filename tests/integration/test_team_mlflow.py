"""A workspace moved to a team's MLflow server by its URL alone (the server: ``mlflow_server`` of
conftest.py): the models go where the server keeps artifacts, and a plain MLflow client in another folder (another machine's view) loads the
champion; doctor warns about an experiment whose artifacts are a folder of one machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.helpers import cli
from tests.unit.cli.conftest import flat

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def point_at(ws: Path, url: str) -> None:
    """Change the workspace's tracking URI (and nothing else: the template's yaml still names the
    embedded artifact folder) and commit it, as a team would."""
    config = ws / "modelcycle.yaml"
    text = config.read_text()
    assert "mlflow_tracking_uri: sqlite:///.modelcycle/mlflow.db" in text
    assert "mlflow_artifacts: .modelcycle/mlartifacts" in text
    config.write_text(text.replace("sqlite:///.modelcycle/mlflow.db", url))
    subprocess.run(["git", "commit", "-q", "-m", "the team's MLflow server", "modelcycle.yaml"], cwd=ws, check=True)


LOAD = textwrap.dedent("""
    import json, sys
    import mlflow, pandas as pd
    from mlflow import MlflowClient

    url, holdout = sys.argv[1], sys.argv[2]
    mlflow.set_tracking_uri(url)
    client = MlflowClient(url)
    version = client.get_model_version_by_alias("taxifare", "champion")
    model = mlflow.pyfunc.load_model("models:/taxifare@champion")
    rows = pd.read_parquet(holdout).head(5)
    print(json.dumps({"version": version.version, "source": version.source,
                      "experiment": client.get_experiment_by_name("taxifare").artifact_location,
                      "predictions": [float(p) for p in pd.Series(list(model.predict(rows))).head(5)]}))
""")


def test_a_cycle_on_a_team_server_keeps_its_model_where_another_machine_loads_it(
        taxi_ws, mlflow_server, tmp_path, capsys, monkeypatch):
    url, served = mlflow_server
    point_at(taxi_ws, url)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = cli(capsys, "-w", str(taxi_ws), "run", "--window", "2014-12")
    assert code == 0, err
    assert "promote" in out

    # nothing of the model stayed in the workspace: the server keeps it
    assert not [p for p in (taxi_ws / ".modelcycle" / "mlartifacts").rglob("*") if p.is_file()]
    assert [p for p in served.rglob("MLmodel")]

    elsewhere = tmp_path / "another-machine"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    holdout = tmp_path / "holdout.parquet"  # the cycle's held-out rows, as a user gets them
    code, _out, err = cli(capsys, "-w", str(taxi_ws), "rows", "holdout", "--out", str(holdout))
    assert code == 0, err
    proc = subprocess.run([sys.executable, "-c", LOAD, url, str(holdout)],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["version"] == "1"
    assert loaded["experiment"].startswith("mlflow-artifacts:"), loaded
    assert not loaded["source"].startswith("file:"), loaded
    assert len(loaded["predictions"]) == 5 and all(0 < p < 500 for p in loaded["predictions"])


def test_doctor_warns_of_an_experiment_whose_models_only_one_machine_can_load(taxi_ws, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    url, _ = mlflow_server
    point_at(taxi_ws, url)
    name = "taxifare-experiments"  # the workspace's DVC experiments, made before the move
    if MlflowClient(url).get_experiment_by_name(name) is None:
        MlflowClient(url).create_experiment(name, artifact_location=(tmp_path / "local-artifacts").as_uri())
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    proc = subprocess.run([sys.executable, "-m", "modelcycle.cli.main", "-w", str(taxi_ws), "doctor"], env=env,
                          capture_output=True, text=True, timeout=300, check=False, start_new_session=True)
    said = flat(proc.stdout + proc.stderr)
    assert "MLflow ok answers" in said and f"({url})" in said
    assert (f"MLflow warning the experiment '{name}' keeps its artifacts at {(tmp_path / 'local-artifacts').as_uri()}, "
            "a folder of this machine: other machines that use the tracking server cannot load its models") in said
    assert "rename it" in said
    assert proc.returncode in (0, 1), said  # a warning alone does not fail doctor
