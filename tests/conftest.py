"""Test settings shared by every test.

Prefect is pointed at a throw-away home before anything imports it, with the same settings the
CLI uses for its embedded server; integration tests that run flows use one session-wide
``prefect_test_harness`` (a real temporary Prefect server and database).
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
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
    """A real temporary Prefect server for the whole session (one per xdist worker: each picks
    its own free port and database).

    Its database starts from the migrated empty one modelcycle keeps for new workspaces
    (:mod:`modelcycle.dbcache`), when there is one: Prefect's migrations then have nothing to do
    (they take ~10 s). Without it, the harness migrates a new database as usual."""
    from prefect.testing import utilities

    from modelcycle import dbcache

    def seeded_tempdir() -> str:
        folder = tempfile.mkdtemp()
        dbcache.seed("prefect", Path(folder) / "prefect-test.db")  # the harness's database there
        return folder

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(utilities, "mkdtemp", seeded_tempdir, raising=False)
        with utilities.prefect_test_harness(server_startup_timeout=180):
            mp.undo()
            yield


# The files whose tests take the longest (real `modelcycle` processes, deployed cycles, real
# servers; a backtest) run first, the longest first: the xdist workers then share out the many
# short tests at the end, instead of one worker waiting while the other finishes a long test it
# started last. (Each file's minutes were measured with `pytest --durations=0`.)
_LONGEST_FIRST = ("tests/team/test_team_servers.py", "tests/integration/test_deployed.py",
                  "tests/integration/test_several_workers.py", "tests/integration/test_safety.py",
                  "tests/integration/test_up.py", "tests/integration/test_candidates.py",
                  "tests/integration/test_scenario.py", "tests/integration/test_backends_migrate.py",
                  "tests/integration/test_digits.py", "tests/integration/test_image_experiments.py",
                  "tests/integration/test_team_mlflow.py", "tests/integration/test_dvc_experiments.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return _LONGEST_FIRST.index(path) if path in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each file, and of the other files, is kept


@pytest.fixture
def silent() -> Iterator[int]:
    """A loopback port where a socket accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()
