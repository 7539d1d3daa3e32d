"""`modelcycle worker` keeps one log per worker, named after it, so that workers sharing a
workspace (several machines on a shared filesystem) never write into one file; and the helpers
that show on which machine a cycle ran."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelcycle.cli.deploy import worker_log
from modelcycle.cli.render import decision_line, host_text
from modelcycle.notify import CycleOutcome, Event, EventKind


def _state(root: Path) -> Any:
    return SimpleNamespace(state_dir=root / ".modelcycle")


# the log's name -------------------------------------------------------------------------------

def test_a_worker_log_is_named_after_the_worker(tmp_path):
    assert worker_log(_state(tmp_path), "host-a-4711") == tmp_path / ".modelcycle" / "workers" / "host-a-4711.log"
    assert worker_log(_state(tmp_path), "gpu_box.lab-2").name == "gpu_box.lab-2.log"


@pytest.mark.parametrize("name", ["../../etc/passwd", "team/a b", ".hidden", "ünï", "a" * 300, "/", "-"])
def test_a_name_unsafe_for_a_file_stays_in_the_workers_folder(tmp_path, name):
    path = worker_log(_state(tmp_path), name)
    assert path.parent == tmp_path / ".modelcycle" / "workers"
    assert not path.name.startswith((".", "-")) and len(path.name) < 120
    assert set(path.stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def test_two_names_never_share_a_log(tmp_path):
    names = ["team/a", "team_a", "team a", "team-a", "TEAM/A"]
    paths = {worker_log(_state(tmp_path), n) for n in names}
    assert len(paths) == len(names)
    assert worker_log(_state(tmp_path), "team/a") == worker_log(_state(tmp_path), "team/a")  # the same each start


# the worker verb ------------------------------------------------------------------------------

@pytest.fixture
def started(monkeypatch) -> list[dict[str, Any]]:
    """No Prefect: the worker process it starts exits at once (so the verb ends by itself)."""
    from modelcycle.cli import common, deploy
    from modelcycle.lifecycle import services, watch

    calls: list[dict[str, Any]] = []

    def start(pool: str, *, log_path: Path, name: str | None = None) -> Any:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            out.write(f"worker {name} started\n".encode())
        calls.append({"pool": pool, "log": log_path, "name": name})
        return SimpleNamespace(poll=lambda: 1, returncode=1)

    monkeypatch.setattr(common, "check_backends", lambda ws, *which: None)
    monkeypatch.setattr(deploy, "connect_prefect", lambda ws, *, verbose, what: "http://prefect:4200/api")
    monkeypatch.setattr(watch, "start_worker", start)
    monkeypatch.setattr(watch, "wait_started", lambda process, log_path, **kw: None)
    monkeypatch.setattr(watch, "stop_worker", lambda process, timeout=30.0: None)
    monkeypatch.setattr(services, "open_services",
                        lambda root, committable=True: SimpleNamespace(source=SimpleNamespace(describe=lambda: "x")))
    return calls


def test_two_workers_on_one_workspace_write_two_logs_and_say_where(cli, ws, started):
    old = ws / ".modelcycle" / "worker.log"
    old.parent.mkdir()
    old.write_text("an older worker's lines\n")
    said = [cli("-w", ws, "worker", "--no-watch", "--name", n) for n in ("host-a-1", "host-b-2")]
    logs = [c["log"] for c in started]
    assert logs == [ws.resolve() / ".modelcycle" / "workers" / f"{n}.log" for n in ("host-a-1", "host-b-2")]
    for ran, log, name in zip(said, logs, ("host-a-1", "host-b-2"), strict=True):
        assert f"worker {name} on " in ran.said and f"(its log: {log})" in ran.said, ran
        assert f"Prefect's worker stopped (exit code 1); its log is {log}" in ran.said  # the error names it too
        assert log.read_text() == f"worker {name} started\n"  # its own lines only
    assert old.read_text() == "an older worker's lines\n"  # an older workspace's log is left alone


def test_a_worker_without_a_name_logs_under_its_host_and_process(cli, ws, started, monkeypatch):
    import os

    monkeypatch.setenv("MODELCYCLE_HOST", "host-c")
    ran = cli("-w", ws, "worker", "--no-watch")
    assert started[0]["name"] == f"host-c-{os.getpid()}"
    assert started[0]["log"].name == f"host-c-{os.getpid()}.log"
    assert str(started[0]["log"]) in ran.said


def test_the_runs_a_worker_starts_inherit_its_name(tmp_path, monkeypatch):
    """Prefect's process worker starts each flow run with its own environment (os.environ, then
    the job's env): the name put there reaches the cycle, which tags its run with it."""
    import subprocess

    from modelcycle.lifecycle import watch

    seen: dict[str, Any] = {}

    def popen(args, **kw):
        seen.update(args=args, env=kw["env"])
        return SimpleNamespace(pid=1)

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setenv("MODELCYCLE_WORKER", "an-outer-worker")
    watch.start_worker("modelcycle", log_path=tmp_path / "w.log", name="host-a-4711")
    assert seen["env"]["MODELCYCLE_WORKER"] == "host-a-4711"
    assert seen["args"][-2:] == ["--name", "host-a-4711"]  # the same name on the Prefect server


# where a cycle ran, as the tables and lines show it --------------------------------------------

@pytest.mark.parametrize(("host", "width", "shown"), [
    (None, 20, "—"), ("", 20, "—"), ("  ", 20, "—"),  # a cycle from before runs named their host
    ("host-a", 20, "host-a"),
    ("ip-10-0-3-7.eu-west-1.compute.internal", 20, "ip-10-0-3-7"),  # a long name: its first label
    ("a-very-long-machine-name-without-dots", 16, "a-very-long-mac…"),
    ("host\nb", 20, "host b"),  # a tag value is one line in a table
    ("ip-10-0-3-7.eu-west-1.compute.internal", None, "ip-10-0-3-7.eu-west-1.compute.internal"),
])
def test_host_text(host, width, shown):
    assert host_text(host, width) == shown
    if width is not None:
        assert len(host_text(host, width)) <= width


FQDN = "ip-10-0-3-7.eu-west-1.compute.internal"


@pytest.mark.parametrize(("host", "worker", "width", "shown"), [
    ("host-a", "host-a-4711", None, "host-a (host-a-4711)"),  # started by a worker: both
    ("host-a", "host-a-4711", 24, "host-a (host-a-4711)"),
    ("host-a", None, 24, "host-a"), ("host-a", " ", 24, "host-a"),  # typed in a terminal: the machine alone
    (None, "host-a-4711", 24, "—"), ("", "host-a-4711", 24, "—"),  # no machine: a dash, as before
    ("host-a", "host-a-4711", 16, "host-a (…-4711)"),  # the worker's own part after its machine's name
    (FQDN, f"{FQDN}-4711", 24, "ip-10-0-3-7 (…-4711)"),  # the machine to its first label too
    (FQDN, f"{FQDN}-4711", 16, "ip-10-0… (…4711)"),
    ("host-a", "gpu-runner-east-2", 16, "host-a (…east-2)"),  # another name: its end
    ("host-a", "w\n2", 24, "host-a (w 2)"),  # one line in a table
    ("host-a", "host-a-4711", 8, "host-a"),  # too narrow for both: the machine
    ("a-very-long-machine-name", "w1", 16, "a-very-lon… (w1)"),  # a short worker whole, the machine cut
])
def test_host_text_with_the_worker(host, worker, width, shown):
    assert host_text(host, width, worker) == shown
    if width is not None:
        assert len(host_text(host, width, worker)) <= width


def test_a_decision_line_says_where_its_cycle_ran():
    event = Event(model="rides", window="2015-03", outcome=CycleOutcome.KEEP, metric="mae",
                  champion_score=2.5, challenger_score=2.4, reasons=("not better",))
    first = decision_line(event, "host-b").plain.splitlines()[0]
    assert first == "2015-03  ● keep  champion MAE 2.500  challenger 2.400  on host-b"
    assert decision_line(event).plain.splitlines()[0].endswith("challenger 2.400")  # unknown: nothing said
    human = Event(model="rides", window="2015-03", outcome=CycleOutcome.PROMOTE, kind=EventKind.APPROVAL)
    assert "on host-b" not in decision_line(human, "host-b").plain  # a human's move ran in no cycle
    deployed = decision_line(event, "host-b", "host-b-4711").plain.splitlines()[0]
    assert deployed.endswith("challenger 2.400  on host-b (host-b-4711)")  # the line is not cut
    assert decision_line(event, None, "host-b-4711").plain.splitlines()[0].endswith("challenger 2.400")
