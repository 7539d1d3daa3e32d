"""The Dask scheduler a workspace's candidates train on, asked by the backends check (what
`modelcycle doctor` and `modelcycle backends check` show) with the cycles' own check: reachable
or not, named by orchestration.dask_address, within seconds; not asked when nothing trains on it."""

from __future__ import annotations

import importlib.util
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelcycle.config import Workspace
from modelcycle.errors import ConfigError
from modelcycle.lifecycle import backends, runners
from modelcycle.lifecycle.runtime import free_port
from tests.unit.minimal import CONFIG, no_backend_variables, with_candidates

CANDIDATES = {"stump": {"num_leaves": 2}, "trees": {}}


@pytest.fixture(autouse=True)
def _no_backend_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    no_backend_variables(monkeypatch, "MODELCYCLE_BACKENDS_TIMEOUT")


def workspace(tmp_path: Path, candidates: dict | None = None, **orchestration: object) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    (root / "modelcycle.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "params.yaml").write_text("window: 2015-02\n", encoding="utf-8")
    (root / ".modelcycle" / "dvc-remote").mkdir(parents=True, exist_ok=True, mode=0o700)
    with_candidates(root, CANDIDATES if candidates is None else candidates, **orchestration)
    return Workspace.load(root)


@pytest.fixture
def listening() -> Iterator[int]:
    """A socket that accepts connections and says nothing (not a Dask scheduler)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def dask(reaches: list[backends.Reach]) -> list[backends.Reach]:
    return [r for r in reaches if r.name == "dask"]


needs_prefect_dask = pytest.mark.skipif(importlib.util.find_spec("prefect_dask") is None,
                                        reason="prefect-dask is not installed")


@needs_prefect_dask
def test_a_dead_scheduler_is_reported_unreachable_in_seconds_with_its_setting(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    ws = workspace(tmp_path, task_runner="dask", dask_address=address)
    started = time.monotonic()
    [reach] = dask(backends.check(ws))
    assert time.monotonic() - started < 10
    assert not reach.ok and reach.url == address and reach.title == "Dask"
    assert reach.problem() == (f"{address} does not answer: Connection refused (modelcycle.yaml "
                               "orchestration.dask_address): the 2 candidates cannot train there")
    assert "`dask scheduler`" in (reach.hint or "") and "orchestration.task_runner: threads" in (reach.hint or "")
    with pytest.raises(ConfigError, match="orchestration.dask_address"):  # a command that needs it stops
        backends.require(ws, ("dask",))


@needs_prefect_dask
def test_a_scheduler_that_does_not_accept_within_the_time_out_is_not_waited_for(tmp_path, monkeypatch):
    def hangs(address, timeout=None):  # a host that drops the connection's packets
        time.sleep(timeout or 0)
        raise TimeoutError("timed out")

    monkeypatch.setattr(runners.socket, "create_connection", hangs)
    ws = workspace(tmp_path, task_runner="dask", dask_address="tcp://scheduler.example:8786")
    started = time.monotonic()
    [reach] = dask(backends.check(ws, timeout=0.5))
    assert time.monotonic() - started < 2
    assert not reach.ok and "no connection within 0.5 s (modelcycle.yaml orchestration.dask_address)" in reach.text


@needs_prefect_dask
def test_a_listening_socket_is_reachable(tmp_path, listening):
    ws = workspace(tmp_path, task_runner="dask", dask_address=f"tcp://127.0.0.1:{listening}")
    [reach] = dask(backends.check(ws))
    assert reach.ok, reach
    assert reach.text.startswith("the scheduler accepts connections (")


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None or importlib.util.find_spec("prefect_dask") is None,
                    reason="distributed and prefect-dask are not installed")
def test_a_real_dask_scheduler_is_reachable(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        ws = workspace(tmp_path, task_runner="dask", dask_address=cluster.scheduler_address)
        [reach] = dask(backends.check(ws))
    assert reach.ok and reach.url == cluster.scheduler_address, reach


@needs_prefect_dask
def test_a_local_cluster_is_said_and_not_asked(tmp_path):
    ws = workspace(tmp_path, task_runner="dask", dask_workers=3)
    [reach] = dask(backends.check(ws))
    assert reach.ok and reach.local and reach.url == "orchestration.dask_address: null"
    assert reach.text == "each cycle starts a LocalCluster of 3 worker processes on this machine"


def test_without_prefect_dask_the_check_says_what_to_install(tmp_path, monkeypatch, listening):
    monkeypatch.setattr(runners, "installed", lambda: False)
    ws = workspace(tmp_path, task_runner="dask", dask_address=f"tcp://127.0.0.1:{listening}")
    [reach] = dask(backends.check(ws))
    assert not reach.ok and "prefect-dask is not installed" in reach.text
    assert "pip install 'modelcycle[dask]'" in (reach.hint or "")


@pytest.mark.parametrize(("candidates", "orchestration"), [
    ({}, {"task_runner": "dask", "dask_address": "tcp://127.0.0.1:9"}),  # nothing trains on it
    (CANDIDATES, {"task_runner": "threads", "dask_address": "tcp://127.0.0.1:9"}),
    (CANDIDATES, {}),
])
def test_a_workspace_whose_candidates_do_not_train_on_dask_has_no_dask_line(tmp_path, candidates, orchestration):
    ws = workspace(tmp_path, candidates, **orchestration)
    assert dask(backends.check(ws)) == []
    assert runners.check(ws) is None
