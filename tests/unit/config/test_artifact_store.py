"""Where a new experiment keeps its models: with a tracking server, where the server says unless
the user names an artifact store; with a local store, the workspace's own folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.config import Workspace
from tests.unit.minimal import CONFIG, no_backend_variables


@pytest.fixture(autouse=True)
def _no_backend_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    no_backend_variables(monkeypatch)


def workspace(tmp_path: Path, *lines: str) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    backends = "backends:\n" + "".join(f"  {line}\n" for line in lines) if lines else ""
    (root / "modelcycle.yaml").write_text(CONFIG + backends, encoding="utf-8")
    return Workspace.load(root)


@pytest.mark.parametrize("artifacts", [None, "mlflow_artifacts: .modelcycle/mlartifacts", "mlflow_artifacts: null",
                                       "mlflow_artifacts: ./.modelcycle/mlartifacts/"])
def test_a_tracking_server_chooses_when_no_artifact_store_is_named(tmp_path, artifacts):
    ws = workspace(tmp_path, "mlflow_tracking_uri: http://mlflow.example.com:5000", *([artifacts] if artifacts else []))
    assert ws.tracking_server
    assert ws.experiment_artifacts is None  # the server's served artifacts (mlflow-artifacts:), not file://


@pytest.mark.parametrize(("named", "expected"), [
    ("s3://models-bucket/mlflow", "s3://models-bucket/mlflow"),
    ("gs://models-bucket/mlflow", "gs://models-bucket/mlflow"),
    ("/mnt/shared/mlartifacts", "file:///mnt/shared/mlartifacts"),
])
def test_an_artifact_store_the_user_names_is_used_with_a_server(tmp_path, named, expected):
    ws = workspace(tmp_path, "mlflow_tracking_uri: https://mlflow.example.com", f"mlflow_artifacts: {named}")
    assert ws.experiment_artifacts == expected


def test_the_environment_s_server_counts_as_the_configured_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert workspace(tmp_path).experiment_artifacts is None


@pytest.mark.parametrize("artifacts", [None, "mlflow_artifacts: null"])
def test_a_local_store_keeps_the_workspace_s_folder(tmp_path, artifacts):
    ws = workspace(tmp_path, *([artifacts] if artifacts else []))
    own = (ws.root / ".modelcycle" / "mlartifacts").resolve().as_uri()
    assert not ws.tracking_server
    assert ws.experiment_artifacts == own == ws.artifact_location
    pg = workspace(tmp_path, "mlflow_tracking_uri: postgresql://db/mlflow", *([artifacts] if artifacts else []))
    assert pg.experiment_artifacts == own  # no server to serve them: the client writes them
