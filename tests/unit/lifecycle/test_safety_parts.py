"""The pieces that make cycles safe, one by one: the workspace lock, held-back signals, the journal."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from modelcycle.errors import WorkspaceError
from modelcycle.lifecycle import interrupts, lock
from modelcycle.lifecycle.journal import DONE, INTENT, UNDONE, Journal
from modelcycle.versioning.base import VersionState
from tests.unit.lifecycle.conftest import holding


@pytest.fixture
def holder_process(tmp_path: Path):
    with holding(tmp_path) as proc:
        yield proc


def test_a_busy_workspace_names_its_holder_and_no_wait_refuses(tmp_path: Path, holder_process) -> None:
    who = lock.holder(tmp_path)
    assert who is not None and who.pid == holder_process.pid
    assert "modelcycle run --window 2015-02" in who.describe() and f"pid {holder_process.pid}" in who.describe()
    with pytest.raises(WorkspaceError, match="is busy") as err, lock.hold(tmp_path, "modelcycle doctor", wait=False):
        pass
    assert "2015-02" in err.value.message and "--no-wait" in (err.value.hint or "")


def test_a_waiting_command_is_told_once_and_starts_when_the_holder_ends(tmp_path: Path, holder_process) -> None:
    told = []
    threading.Timer(1.0, holder_process.kill).start()
    started = time.monotonic()
    with lock.hold(tmp_path, "modelcycle run", on_wait=told.append):
        assert lock.held_here(tmp_path)
    assert len(told) == 1 and told[0].pid == holder_process.pid
    assert time.monotonic() - started >= 0.9


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holder_process) -> None:
    holder_process.send_signal(signal.SIGKILL)
    holder_process.wait()
    assert lock.holder(tmp_path) is None  # lock.json may remain; the kernel freed the lock
    with lock.hold(tmp_path, "modelcycle run", wait=False):
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with lock.hold(tmp_path, "modelcycle backtest"):
        with lock.hold(tmp_path, "modelcycle cycle 2015-01", wait=False):
            assert lock.read_holder(tmp_path).command == "modelcycle backtest"
        assert lock.held_here(tmp_path)
    assert not lock.held_here(tmp_path)
    assert not (tmp_path / ".modelcycle" / "lock.json").exists()


def test_a_signal_inside_a_deferred_block_arrives_when_it_ends() -> None:
    steps = []
    # Python's own Ctrl-C handler before the block, whatever an earlier test in this process left
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), interrupts.deferred() as held:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("finished the side effect")
            assert held.signals == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, before)
    assert steps == ["finished the side effect"]


def test_sigterm_becomes_interrupted_with_its_exit_code(monkeypatch) -> None:
    previous = interrupts.install()
    try:
        with pytest.raises(interrupts.Interrupted) as err, interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert interrupts.signal_of(err.value) == signal.SIGTERM
        assert interrupts.EXIT_CODES[signal.SIGTERM] == 143
    finally:
        interrupts.restore(previous)
    assert signal.getsignal(signal.SIGTERM) is previous[signal.SIGTERM]


def test_deferred_outside_the_main_thread_runs_the_block_as_it_is() -> None:
    done = []

    def work() -> None:
        with interrupts.deferred() as held:
            done.append(len(held))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert done == [0]


class _Ws:
    def __init__(self, root: Path) -> None:
        self.state_dir = root / ".modelcycle"


def test_the_journal_records_intent_done_undone_and_the_commit_in_one_write(tmp_path: Path) -> None:
    ws = _Ws(tmp_path)
    state = VersionState(head="abc", tags=frozenset({"t1"}), files={"params.yaml": b"window: 1\n"},
                         outputs={"data/raw.parquet": "md5"}, branch="refs/heads/main")
    j = Journal.begin(ws, window="2015-02", state=state, command="modelcycle run", effects=["workspace"])
    with pytest.raises(WorkspaceError, match="exists"):
        Journal.begin(ws, window="2015-03", state=state, command="another")
    j.intent("register", run_id="r1")
    j.done("register", {"version": "7"})
    j.intent("alias:champion", before="3", to="7")
    j.done("alias:champion", last=True)
    again = Journal.open(ws)
    assert again is not None and again.committed and again.state == state
    assert [(e.name, e.status) for e in again.effects()] == [("workspace", INTENT), ("register", DONE),
                                                            ("alias:champion", DONE)]
    assert again.effect("register").info == {"run_id": "r1", "version": "7"}
    again.undone("workspace")
    assert Journal.open(ws).effect("workspace").status == UNDONE
    assert not again.owner_alive()  # this process: never its own live owner
    again.end()
    assert Journal.open(ws) is None


def test_a_damaged_journal_is_a_clear_error(tmp_path: Path) -> None:
    ws = _Ws(tmp_path)
    ws.state_dir.mkdir()
    (ws.state_dir / "journal.json").write_text("{half")
    with pytest.raises(WorkspaceError, match="not a readable journal") as err:
        Journal.open(ws)
    assert "doctor" in (err.value.hint or "")


@pytest.mark.parametrize("errno_,path,words", [
    (28, "/ws/data/clean.parquet", ["/ws/data/clean.parquet", "No space left", "free some space"]),
    (13, "/ws/reports/validation.json", ["/ws/reports/validation.json", "Permission denied", "write permission"]),
    (30, "/ws/reports/metrics.json", ["/ws/reports/metrics.json", "Read-only", "writable disk"]),
])
def test_a_file_the_command_cannot_write_is_named_not_an_unexpected_error(monkeypatch, capsys, tmp_path,
                                                                         errno_, path, words) -> None:
    from modelcycle.cli import main as cli_main

    def boom(*_a, **_k):
        raise OSError(errno_, os.strerror(errno_), path)

    import typer

    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("boom")(lambda: boom())
    app.command("other")(lambda: None)  # two commands: typer then expects the verb
    monkeypatch.setattr(cli_main, "app", app)
    monkeypatch.setattr(cli_main, "_register", lambda: None)
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(["boom"])
    err = capsys.readouterr().err
    assert exit_.value.code == 74
    assert "unexpected error" not in err and "Traceback" not in err
    for w in words:
        assert w in err, err
