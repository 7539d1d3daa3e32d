"""Test settings shared by every test.

Prefect is pointed at a throw-away home before anything imports it, with the same settings the
CLI uses for its embedded server; integration tests that run flows use one session-wide
``prefect_test_harness`` (a real temporary Prefect server and database).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="modelcycle-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MODELCYCLE_DVC_REMOTE"):
    os.environ.pop(var, None)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["COLUMNS"] = "200"  # the CLI's tables and messages are not wrapped in captured output
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
os.environ.setdefault("GIT_AUTHOR_NAME", "modelcycle tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@modelcycle.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "modelcycle tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@modelcycle.invalid")

from modelcycle.lifecycle import runtime  # noqa: E402  (sets Prefect's env before its import)

runtime.configure(prefect_home=_HOME / "prefect", api_url=None, verbose=False)


@pytest.fixture(scope="session")
def prefect_server():
    """A real temporary Prefect server for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
