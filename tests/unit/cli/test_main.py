"""The one place errors become what a user reads: one paragraph and an exit code, a traceback only
with --verbose; and the root options, read from Click's context rather than a shared object."""

from __future__ import annotations

import logging
import signal

import pytest
import typer
from typer.testing import CliRunner

from modelcycle import errors
from modelcycle.cli import common
from modelcycle.cli import main as cli_main

from .conftest import one_paragraph


@pytest.fixture
def stage_raises(monkeypatch):
    """`modelcycle step fetch` raises what the test says."""
    from modelcycle.lifecycle import stages

    box: list[BaseException] = []

    def run_stage(_ws, _stage):
        raise box[0]

    monkeypatch.setattr(stages, "run_stage", run_stage)
    return box.append


@pytest.mark.parametrize(("error", "code"), [
    (errors.ConfigError, 2), (errors.WorkspaceError, 2), (errors.SourceError, 3), (errors.DataError, 4),
    (errors.SchemaError, 4), (errors.ModelError, 5), (errors.RegistryError, 6), (errors.NoChampionError, 6),
    (errors.VersioningError, 7), (errors.NotifyError, 8),
])
def test_each_kind_of_error_has_its_exit_code_and_reads_as_one_paragraph(cli, ws, stage_raises, error, code):
    stage_raises(error("what happened, naming the file", "what to do about it"))
    ran = cli("-w", ws, "step", "fetch")
    one_paragraph(ran, code)
    assert ran.err == "error: what happened, naming the file\nwhat to do about it\n"


def test_an_error_without_a_hint_is_one_line(cli, ws, stage_raises):
    stage_raises(errors.DataError("the window holds no rows"))
    assert cli("-w", ws, "step", "fetch").err == "error: the window holds no rows\n"


def test_a_users_error_with_verbose_adds_the_traceback(cli, ws, stage_raises):
    stage_raises(errors.SourceError("cannot open data/*.csv", "check source.url"))
    ran = cli("--verbose", "-w", ws, "step", "fetch")
    assert ran.code == 3
    assert "Traceback" in ran.err and "run_stage" in ran.err
    assert ran.err.endswith("error: cannot open data/*.csv\ncheck source.url\n")


def test_an_unexpected_error_is_one_paragraph_that_asks_for_verbose(cli, ws, stage_raises):
    stage_raises(KeyError("champion_score"))
    ran = cli("-w", ws, "step", "fetch")
    assert ran.code == 70
    assert "Traceback" not in ran.err
    assert ran.error == ("unexpected error: KeyError: 'champion_score' "
                         "run again with --verbose for the traceback, and please report it")


@pytest.mark.parametrize("flags", [["-v", "-w", "{ws}"], ["-w", "{ws}", "--verbose"], ["-vw", "{ws}"]])
def test_an_unexpected_error_with_verbose_shows_the_traceback(cli, ws, stage_raises, flags):
    stage_raises(KeyError("champion_score"))
    ran = cli(*[f.format(ws=ws) for f in flags], "step", "fetch")
    assert ran.code == 70
    assert "Traceback" in ran.err
    assert "run_stage" in ran.err and "KeyError: 'champion_score'" in ran.err
    assert "unexpected error" not in ran.err


def test_an_interrupted_command_says_so_and_exits_130(cli, ws, stage_raises):
    from modelcycle.lifecycle import interrupts

    stage_raises(interrupts.Interrupted(signal.SIGINT))
    ran = cli("-w", ws, "step", "fetch")
    assert ran.code == 130
    assert ran.error.startswith("interrupted (Ctrl-C):")
    assert "Traceback" not in ran.err


@pytest.mark.parametrize(("argv", "verbose"), [
    (["-v", "run"], True),
    (["--verbose", "status"], True),
    (["-w", "ws", "-v", "status"], True),
    (["-vw", "ws", "status"], True),
    (["-w", "-v", "status"], False),  # "-v" is the workspace's name here
    (["run", "-v"], False),  # an option after the verb is the verb's
    (["status"], False),
    ([], False),
    (["-w"], False),
    (["--no-such-option", "-v"], False),
])
def test_main_reads_verbose_as_the_root_command_does(argv, verbose):
    cli_main._register()
    assert cli_main._asked_verbose(argv) is verbose


def test_the_verbs_get_the_root_options_from_clicks_context(cli, ws, monkeypatch):
    """What the root callback stored in ctx.obj reaches the verb's context, and the workspace is
    found from it."""
    from modelcycle.lifecycle import stages

    seen = []
    load = common.load_workspace

    def spy(ctx):
        workspace = load(ctx)
        seen.append((common.options(ctx), workspace.root))
        return workspace

    monkeypatch.setattr(common, "load_workspace", spy)
    monkeypatch.setattr(stages, "run_stage", lambda _ws, _stage: "ok")
    (ws / "sub").mkdir()
    assert cli("-v", "-w", ws / "sub", "step", "fetch").code == 0
    monkeypatch.chdir(ws)
    assert cli("step", "fetch").code == 0
    assert seen == [(common.CliOptions(verbose=True, workspace=ws / "sub"), ws.resolve()),
                    (common.CliOptions(verbose=False, workspace=None), ws.resolve())]


def test_a_verb_run_without_the_root_command_gets_the_default_options():
    seen = []
    app = typer.Typer()

    @app.command()
    def verb(ctx: typer.Context) -> None:
        seen.append(common.options(ctx))

    assert CliRunner().invoke(app, []).exit_code == 0
    assert seen == [common.CliOptions(verbose=False, workspace=None)]


def test_prefect_records_reach_the_terminal_only_with_verbose():
    def passes(verbose: bool, name: str) -> bool:
        cli_main._log_to_stderr(verbose)
        handler = next(h for h in logging.getLogger().handlers if isinstance(h, cli_main._StderrHandler))
        record = logging.LogRecord(name, logging.ERROR, __file__, 1, "task failed", None, None)
        return bool(handler.filter(record))

    assert not passes(False, "prefect.task_runs")
    assert passes(False, "modelcycle.lifecycle")
    assert passes(True, "prefect.task_runs")


def test_running_twice_in_one_process_keeps_one_log_handler(cli, ws):
    cli("-v", "-w", ws, "config")
    cli("-w", ws, "config")
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, cli_main._StderrHandler)]
    assert len(handlers) == 1
    assert handlers[0].level == logging.WARNING  # the second command was not verbose
    assert logging.getLogger("mlflow").level == logging.ERROR


def test_library_warnings_show_and_info_only_with_verbose(cli, ws, monkeypatch):
    from modelcycle.lifecycle import stages

    def run_stage(_ws, _stage):
        logging.getLogger("modelcycle.sources").info("read 1200 rows")
        logging.getLogger("modelcycle.sources").warning("3 rows have no timestamp")
        return "ok"

    monkeypatch.setattr(stages, "run_stage", run_stage)
    quiet = cli("-w", ws, "step", "fetch")
    assert "WARNING modelcycle.sources: 3 rows have no timestamp" in quiet.err
    assert "read 1200 rows" not in quiet.err
    loud = cli("-v", "-w", ws, "step", "fetch")
    assert "INFO modelcycle.sources: read 1200 rows" in loud.err


_PAGES = """
import modelcycle.cli.main as m

def command(args=None, standalone_mode=True):
    from numpy._core import multiarray
    print("hugepage advice:", multiarray._set_madvise_hugepage(False))

m.app, m._register = command, lambda: None
m.main([])
"""


@pytest.mark.parametrize(("given", "advice"), [(None, "False"), ("1", "True")])
def test_commands_run_numpy_without_its_hugepage_advice_unless_the_user_asks(given: str | None, advice: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if given is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = given
    out = subprocess.run([sys.executable, "-c", _PAGES], env=env, capture_output=True, text=True, timeout=60)
    assert f"hugepage advice: {advice}" in out.stdout, out.stderr[-2000:]
