"""A backend that does not answer ends a command in seconds with what to do, in its own process as
a user's terminal runs it: an MLflow server or a Prefect API that refuses connections or accepts
them and never replies, a DVC remote folder that is not there; and doctor's line per backend."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.cli.conftest import flat
from tests.unit.lifecycle.test_backends import free_port

BACKEND_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PREFECT_API_URL", "MODELCYCLE_DVC_REMOTE",
                     "MODELCYCLE_BACKENDS_TIMEOUT")


def modelcycle(ws: Path, *args: str, timeout: float = 60, **env: str) -> tuple[int, str, float]:
    """``modelcycle -w WS ARGS`` in its own process: exit code, stdout + stderr flattened, seconds."""
    environ = {k: v for k, v in os.environ.items() if k not in BACKEND_VARIABLES}
    environ.update(env)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "modelcycle.cli.main", "-w", str(ws), *args], env=environ,
                          capture_output=True, text=True, timeout=timeout, start_new_session=True, check=False)
    return proc.returncode, flat(proc.stdout + "\n" + proc.stderr), time.monotonic() - started


@pytest.mark.parametrize("kind", ["refuses", "never answers"])
def test_run_ends_in_seconds_when_the_mlflow_server_does_not_answer(taxi_ws, silent, kind):
    port = free_port() if kind == "refuses" else silent
    url = f"http://127.0.0.1:{port}"
    code, said, seconds = modelcycle(taxi_ws, "run", "--window", "2014-12", MLFLOW_TRACKING_URI=url)
    assert code == 6, said  # a RegistryError, as MLflow's other failures
    assert seconds < 10, f"{seconds:.1f} s"
    assert f"error: MLflow {url} does not answer:" in said
    assert ("Connection refused" if kind == "refuses" else "no answer within 3 s") in said
    assert "start the MLflow server (`mlflow server ...`), or fix or unset $MLFLOW_TRACKING_URI" in said
    assert "unexpected error" not in said and "Traceback" not in said


@pytest.mark.parametrize("kind", ["refuses", "never answers"])
def test_run_ends_in_seconds_when_the_prefect_server_does_not_answer(taxi_ws, silent, kind):
    port = free_port() if kind == "refuses" else silent
    url = f"http://127.0.0.1:{port}/api"
    code, said, seconds = modelcycle(taxi_ws, "run", "--window", "2014-12", PREFECT_API_URL=url)
    assert code == 2, said  # not 70, "unexpected error"
    assert seconds < 10, f"{seconds:.1f} s"
    assert f"error: Prefect {url} does not answer:" in said
    assert "start the Prefect server (`prefect server start`), or fix or unset $PREFECT_API_URL" in said
    assert "unexpected error" not in said


def test_run_ends_at_once_when_the_dvc_remote_folder_is_missing(taxi_ws, tmp_path):
    gone = tmp_path / "unmounted" / "remote"
    code, said, seconds = modelcycle(taxi_ws, "run", "--window", "2014-12", MODELCYCLE_DVC_REMOTE=str(gone))
    assert code == 7, said  # a VersioningError
    assert seconds < 10
    assert f"error: DVC remote {gone} is not usable: the folder {gone} does not exist" in said
    assert "create or mount the remote" in said
    assert not (taxi_ws / "models" / "challenger").exists()  # nothing ran


def test_doctor_says_which_backends_do_not_answer_in_seconds(taxi_ws, silent, tmp_path):
    mlflow, prefect = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{silent}/api"
    code, said, seconds = modelcycle(taxi_ws, "doctor", MLFLOW_TRACKING_URI=mlflow, PREFECT_API_URL=prefect,
                                     MODELCYCLE_DVC_REMOTE=str(tmp_path / "gone"))
    assert code == 1, said
    assert seconds < 10, f"{seconds:.1f} s"  # was over two minutes
    assert f"MLflow problem {mlflow} does not answer: [Errno 111] Connection refused" in said
    assert f"Prefect problem {prefect} does not answer: no answer within 3 s" in said
    assert f"DVC remote problem {tmp_path / 'gone'} is not usable: the folder {tmp_path / 'gone'} does not exist" in said
    assert "repair problem skipped: the MLflow store does not answer" in said
    assert "git ok" in said and "source ok" in said  # the rest is still checked


@pytest.mark.slow
def test_doctor_on_the_embedded_defaults_has_a_line_per_backend(taxi_ws):
    code, said, _ = modelcycle(taxi_ws, "doctor", timeout=300)
    assert code == 0, said
    assert f"MLflow ok the folder exists (sqlite:///{(taxi_ws / '.modelcycle').resolve()}/mlflow.db)" in said
    assert "Prefect ok the workspace's own server answers" in said
    assert (f"DVC remote ok the folder exists and is writable ({(taxi_ws / '.modelcycle' / 'dvc-remote').resolve()})"
            in said)
