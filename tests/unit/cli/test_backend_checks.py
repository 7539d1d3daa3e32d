"""Every verb that uses a backend asks it first, and one that does not answer ends the verb in
seconds, before anything starts, as one paragraph with the exit code of its kind."""

from __future__ import annotations

import os
import socket
import time

import pytest

from .conftest import one_paragraph


@pytest.fixture
def refused(monkeypatch) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    return url


def test_run_stops_before_prefect_starts_when_mlflow_refuses(cli, ws, flows, prefect, refused):
    started = time.monotonic()
    ran = cli("-w", ws, "run", "--window", "2015-03")
    assert time.monotonic() - started < 5
    one_paragraph(ran, 6, f"MLflow {refused} does not answer", "Connection refused",
                  "fix or unset $MLFLOW_TRACKING_URI", "`modelcycle doctor` checks every backend")
    assert not flows.calls and not prefect  # nothing started
    assert not (ws / ".modelcycle").exists()  # not even the lock was taken


@pytest.mark.parametrize("verb", [["promote", "--version", "2"], ["rollback"], ["history"], ["status"], ["report"]])
def test_verbs_on_the_registry_stop_when_mlflow_refuses(cli, ws, refused, verb):
    ran = cli("-w", ws, *verb)
    one_paragraph(ran, 6, f"MLflow {refused} does not answer")


def test_a_missing_remote_folder_stops_a_backtest(cli, ws, flows, prefect, monkeypatch, tmp_path):
    monkeypatch.setenv("MODELCYCLE_DVC_REMOTE", str(tmp_path / "gone"))
    ran = cli("-w", ws, "backtest", "--from", "2015-03", "--to", "2015-04")
    one_paragraph(ran, 7, f"DVC remote {tmp_path / 'gone'} is not usable", "create or mount the remote")
    assert not flows.calls and not prefect


def test_mlflow_gives_up_on_a_server_that_went_away_in_seconds_not_minutes(cli, ws, flows, prefect, monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")  # the user's own value wins
    cli("-w", ws, "run", "--window", "2015-03")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"  # 2 + 4 + 8 s of waits, not 4 minutes
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_backends_check_says_each_backend_and_exits_1_when_one_is_down(cli, ws, refused, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELCYCLE_DVC_REMOTE", str(tmp_path))
    started = time.monotonic()
    ran = cli("-w", ws, "backends", "check")
    assert time.monotonic() - started < 5
    assert ran.code == 1, ran
    assert f"MLflow down {refused} does not answer" in ran.said
    assert "fix or unset $MLFLOW_TRACKING_URI" in ran.said
    assert f"DVC remote ok the folder exists and is writable ({tmp_path})" in ran.said


def test_migrating_to_a_server_that_refuses_is_one_paragraph(cli, ws, refused):
    ran = cli("-w", ws, "backends", "migrate", "--to", refused)  # the store in use: the same URL
    one_paragraph(ran, 6, f"--to {refused} is the store this workspace uses already")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
    ran = cli("-w", ws, "backends", "migrate", "--to", gone)
    one_paragraph(ran, 6, f"MLflow {gone} does not answer", "fix the URL given to --to")
