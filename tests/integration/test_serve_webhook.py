"""`modelcycle serve` against a real MLflow tracking server: the server creates a registry
webhook at start, an alias move is followed at once (the poll is ten minutes away) through a
delivery MLflow signed, and the webhook is gone once the server stopped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.serving import runner
from tests.integration.conftest import running_mlflow_server

pytestmark = pytest.mark.slow
NAME = "wh"


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    """A real tracking server that may deliver webhooks to this machine's loopback."""
    with running_mlflow_server(tmp_path, MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
                               MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https") as (url, _artifacts):
        yield url


def test_an_alias_move_on_the_tracking_server_is_followed_at_once(tracking_server: str, tmp_path: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=tracking_server, registry_uri=tracking_server)
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, source="s3://modelcycle-nowhere/wh/1").version
    moves: list[tuple[str | None, str | None]] = []
    lines: list[str] = []
    moved, started, stop = threading.Event(), threading.Event(), threading.Event()

    def on_move(before: str | None, after: str | None) -> None:
        moves.append((before, after))
        moved.set()

    reg = MlflowRegistry(tracking_server, artifact_location=str(tmp_path / "artifacts"))
    settings = runner.Settings(port=0, poll_seconds=600)
    serving = threading.Thread(target=runner.serve, args=(reg, NAME, tmp_path, settings,
                                                          runner.Hooks(say=lines.append, on_move=on_move)),
                               kwargs={"ready": lambda _url: started.set(), "stop": stop}, daemon=True)
    serving.start()
    try:
        assert started.wait(60), lines
        [hook] = [h for h in client.list_webhooks() if h.name.startswith("modelcycle-serve-wh-")]
        assert hook.url.endswith("/hooks/mlflow") and hook.url.startswith("http://127.0.0.1:")
        assert any("MLflow webhook created" in line and "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS" in line for line in lines)
        client.set_registered_model_alias(NAME, "champion", version)
        assert moved.wait(20), lines  # the poll would come in ten minutes: the delivery woke the follower
        assert moves == [(None, version)]
    finally:
        stop.set()
        serving.join(60)
    assert not serving.is_alive()
    assert [h for h in client.list_webhooks() if h.name.startswith("modelcycle-serve-wh-")] == []
