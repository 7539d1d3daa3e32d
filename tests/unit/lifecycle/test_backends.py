"""The backends check: each configured backend reported reachable or not, with its URL, within
seconds whatever the server does (refuses, accepts and never answers), and nearly free on the
embedded defaults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelcycle.config import Workspace
from modelcycle.errors import RegistryError, VersioningError, WorkspaceError
from modelcycle.lifecycle import backends
from modelcycle.lifecycle.runtime import free_port
from tests.unit.minimal import CONFIG, no_backend_variables


@pytest.fixture(autouse=True)
def _no_backend_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    no_backend_variables(monkeypatch, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MODELCYCLE_BACKENDS_TIMEOUT")


def workspace(tmp_path: Path, backends_yaml: str = "", *, made: bool = True) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "modelcycle.yaml").write_text(CONFIG + backends_yaml, encoding="utf-8")
    if made:  # as `modelcycle init` leaves it
        (root / ".modelcycle" / "dvc-remote").mkdir(parents=True, mode=0o700)
    return Workspace.load(root)


@pytest.fixture
def healthy() -> Iterator[str]:
    """An HTTP server answering 200 at /health and /api/health, 403 elsewhere (as an object store
    answers an anonymous request)."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.endswith("/health") else 403)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def by_name(reaches: list[backends.Reach]) -> dict[str, backends.Reach]:
    return {r.name: r for r in reaches}


def test_the_embedded_defaults_are_checked_on_disk_in_well_under_a_millisecond_each(tmp_path):
    ws = workspace(tmp_path)
    backends.check(ws)  # warm
    started = time.perf_counter()
    for _ in range(20):
        reaches = backends.require(ws)
    per_check = (time.perf_counter() - started) / 20
    assert per_check < 0.01, f"{per_check * 1000:.2f} ms a check"  # measured: ~0.2 ms
    found = by_name(reaches)
    assert set(found) == {"mlflow", "dvc"}  # no Prefect server configured: the local one is started
    assert found["mlflow"].ok and found["mlflow"].url.startswith("sqlite:///")
    assert found["dvc"].ok and found["dvc"].text == "the folder exists and is writable"
    assert not any(t.name.startswith("modelcycle-check") for t in threading.enumerate())  # no thread


def test_a_workspace_whose_embedded_folders_are_not_made_yet_is_fine(tmp_path):
    ws = workspace(tmp_path, made=False)
    assert all(r.ok for r in backends.require(ws))
    assert not ws.state_dir.exists()  # checking makes nothing


def test_a_refused_port_and_a_silent_server_are_reported_together_within_the_time_out(tmp_path, silent):
    refused = free_port()
    ws = workspace(tmp_path, f"backends:\n  mlflow_tracking_uri: http://ana:s3cret@127.0.0.1:{refused}\n"
                             f"  prefect_api_url: http://127.0.0.1:{silent}/api\n"
                             "  dvc_remote: /nonexistent/modelcycle-remote\n")
    started = time.monotonic()
    found = by_name(backends.check(ws, timeout=1.0))
    assert time.monotonic() - started < 2.5  # concurrently: one time-out, not three
    assert not found["mlflow"].ok and "Connection refused" in found["mlflow"].text
    assert found["mlflow"].url == f"http://ana:***@127.0.0.1:{refused}"
    assert not found["prefect"].ok and "no answer within 1 s" in found["prefect"].text
    assert not found["dvc"].ok and found["dvc"].text == "the folder /nonexistent/modelcycle-remote does not exist"
    with pytest.raises(RegistryError) as raised:
        backends.require(ws, timeout=1.0)
    said = str(raised.value)
    assert f"MLflow http://ana:***@127.0.0.1:{refused} does not answer" in said
    assert f"Prefect http://127.0.0.1:{silent}/api does not answer" in said
    assert "DVC remote /nonexistent/modelcycle-remote is not usable" in said
    assert "s3cret" not in said
    assert "backends.mlflow_tracking_uri in modelcycle.yaml" in said and "`prefect server start`" in said


def test_each_backend_ends_a_command_with_its_own_kind_of_error(tmp_path, silent, monkeypatch):
    ws = workspace(tmp_path)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{silent}/api")
    with pytest.raises(WorkspaceError, match="fix or unset \\$PREFECT_API_URL"):
        backends.require(ws, ("prefect",), timeout=0.5)
    monkeypatch.setenv("MODELCYCLE_DVC_REMOTE", str(tmp_path / "gone"))
    with pytest.raises(VersioningError, match="the folder .*gone does not exist"):
        backends.require(ws, ("dvc", "mlflow"))
    assert backends.require(ws, ("mlflow",))  # only what the command uses is asked


def test_with_a_best_effort_push_a_missing_remote_is_said_and_the_command_goes_on(tmp_path, monkeypatch, caplog):
    ws = workspace(tmp_path, "versioning: {push: best-effort}\n")
    monkeypatch.setenv("MODELCYCLE_DVC_REMOTE", str(tmp_path / "gone"))
    with caplog.at_level("WARNING", logger="modelcycle.lifecycle.backends"):
        reaches = backends.require(ws, ("dvc",))
    assert [r.ok for r in reaches] == [False]
    assert "gone does not exist" in caplog.text and "best-effort" in caplog.text


def test_servers_that_answer_are_reachable(tmp_path, healthy, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", healthy)  # an S3-compatible endpoint answers 403 anonymously
    ws = workspace(tmp_path, f"backends:\n  mlflow_tracking_uri: {healthy}\n  prefect_api_url: {healthy}/api\n"
                             "  dvc_remote: s3://bucket/models\n")
    found = by_name(backends.require(ws, timeout=2.0))
    assert all(r.ok for r in found.values()), found
    assert found["dvc"].text.endswith(f"at {healthy}")


def test_a_silent_s3_endpoint_is_reported_with_the_remote(tmp_path, silent, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent}")
    ws = workspace(tmp_path, "backends:\n  dvc_remote: s3://bucket/models\n")
    with pytest.raises(VersioningError) as raised:
        backends.require(ws, timeout=0.5)
    assert "DVC remote s3://bucket/models does not answer: no answer within 0.5 s" in str(raised.value)
    assert "AWS_ENDPOINT_URL" in str(raised.value)


def test_a_database_store_is_asked_for_a_connection(tmp_path):
    port = free_port()
    ws = workspace(tmp_path, f"backends:\n  mlflow_tracking_uri: postgresql+psycopg://u:pw@127.0.0.1:{port}/mlflow\n")
    found = by_name(backends.check(ws, timeout=1.0))
    assert not found["mlflow"].ok and f"cannot connect to 127.0.0.1:{port}" in found["mlflow"].text
    assert found["mlflow"].url == f"postgresql+psycopg://u:***@127.0.0.1:{port}/mlflow"
