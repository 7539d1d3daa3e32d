"""Mistakes on the command line: exit code 2, one paragraph that names the mistake and says what
to do, no traceback, and nothing started."""

from __future__ import annotations

import pytest

from .conftest import one_paragraph

WORKSPACE_VERBS = [
    ("run", ["--window", "2015-03"]),
    ("backtest", ["--from", "2015-01", "--to", "2015-02"]),
    ("status", []),
    ("doctor", []),
    ("promote", ["--version", "3"]),
    ("rollback", []),
    ("history", ["--json"]),
    ("predict", ["records.csv"]),
    ("step", ["fetch"]),
]


@pytest.mark.parametrize(("verb", "args"), WORKSPACE_VERBS, ids=[v for v, _ in WORKSPACE_VERBS])
def test_a_workspace_folder_that_does_not_exist(cli, tmp_path, flows, prefect, verb, args):
    missing = tmp_path / "nowhere"
    ran = cli("--workspace", missing, verb, *args)
    one_paragraph(ran, 2, f"no modelcycle.yaml in {missing} or any folder above it",
                  "pass --workspace DIR", "modelcycle init DIR --example taxifare")
    assert ran.err.count("error:") == 1
    assert not flows.calls and not prefect
    assert not missing.exists()


@pytest.mark.parametrize(("verb", "args"), WORKSPACE_VERBS, ids=[v for v, _ in WORKSPACE_VERBS])
def test_outside_any_workspace_the_verbs_say_where_they_looked(cli, tmp_path, monkeypatch, flows, verb, args):
    monkeypatch.chdir(tmp_path)
    ran = cli(verb, *args)
    one_paragraph(ran, 2, f"no modelcycle.yaml in {tmp_path.resolve()}", "pass --workspace DIR")


def test_a_workspace_that_is_a_file(cli, tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    ran = cli("-w", path, "status")
    one_paragraph(ran, 2, "Invalid value for '--workspace' / '-w'", "is a file")


@pytest.mark.parametrize("window", ["January", "2015-13", "2015-3-1", "2015-03-10..2015-03-01"])
def test_run_with_a_window_that_is_not_one(cli, ws, flows, prefect, window):
    ran = cli("-w", ws, "run", "--window", window)
    one_paragraph(ran, 2, window, "YYYY-MM" if ".." not in window else "ends before it starts")
    assert not flows.calls and not prefect  # nothing started
    assert not (ws / ".modelcycle").exists()  # not even the lock was taken


@pytest.mark.parametrize(("first", "last", "words"), [
    ("2015-1", "2015-03", ["'2015-1' is not a", "YYYY-MM"]),
    ("2015-03", "2015-01", ["--to 2015-01 is before --from 2015-03", "swap them"]),
    ("2015-01-01..2015-01-15", "2015-03", ["a backtest runs over months", "write --from and --to as YYYY-MM"]),
])
def test_backtest_with_months_that_do_not_make_a_range(cli, ws, flows, prefect, first, last, words):
    ran = cli("-w", ws, "backtest", "--from", first, "--to", last)
    one_paragraph(ran, 2, *words)
    assert not flows.calls and not prefect


# The parser's wording is Click's and Typer's and changes between their versions: the message
# must say what kind of problem it is and name the option, argument or value, in any case.
@pytest.mark.parametrize(("args", "words"), [
    (["backtest", "--from", "2015-01"], ["missing", "--to"]),
    (["status", "--last", "0"], ["invalid value", "--last", "1"]),
    (["demo", "x", "--rows-per-month", "10"], ["invalid value", "--rows-per-month", "1000"]),
    (["init", "x", "--threshold", "low"], ["invalid value", "--threshold"]),
    (["step"], ["missing argument", "stage"]),
    (["predict"], ["missing argument", "source"]),
    (["init"], ["missing argument", "directory"]),
    (["promote"], ["missing option", "--version"]),
    (["run", "--wndow", "2015-03"], ["no such option", "--wndow"]),
    (["run", "-v"], ["no such option", "-v"]),  # --verbose belongs before the verb
    (["bogus"], ["no such command", "bogus"]),
])
def test_options_the_parser_refuses(cli, flows, prefect, args, words):
    ran = cli(*args)
    one_paragraph(ran, 2)
    said = ran.error.lower()
    for word in words:
        assert word in said, ran.error
    assert "-h' for help" in ran.error or "Usage:" in ran.error
    assert not flows.calls and not prefect


def test_promote_a_version_that_is_not_a_number(cli, ws):
    ran = cli("-w", ws, "promote", "--version", "v7")
    one_paragraph(ran, 2, "--version 'v7' is not a version number", "e.g. --version 7")


def test_step_with_a_stage_that_does_not_exist(cli, ws):
    ran = cli("-w", ws, "step", "trian")
    one_paragraph(ran, 2, "there is no stage 'trian'", "fetch, validate, prepare, train, evaluate")


def test_step_with_no_window_in_params(cli, ws):
    (ws / "params.yaml").write_text("{}\n")
    ran = cli("-w", ws, "step", "fetch")
    one_paragraph(ran, 2, "params.yaml has no `window:`", "modelcycle run --window 2015-03")


def test_predict_probabilities_from_a_regression_model(cli, ws, tmp_path):
    ran = cli("-w", ws, "predict", tmp_path / "x.csv", "--proba")
    one_paragraph(ran, 2, "--proba: class probabilities exist only for classifiers",
                  "this workspace's model is a regression model", "drop --proba")


@pytest.mark.parametrize(("args", "words"), [
    (["--example", "nope"], ["there is no example 'nope'", "examples: digits, taxifare"]),
    (["--example", "taxifare", "--source", "a.csv"], ["give --example or --source, not both"]),
    ([], ["say what the workspace is for", "use --example taxifare, or --source"]),
    (["--source", "a.csv"], ["needs --timestamp, --target, --threshold", "modelcycle init prices --source"]),
    (["--source", "a.csv", "--timestamp", "t", "--target", "y", "--threshold", "1", "--password-var", "MY-PW"],
     ["--password-var 'MY-PW' is not a variable name", "SALES_DB_PASSWORD"]),
    (["--source", "postgresql://me@db/sales", "--timestamp", "t", "--target", "y", "--threshold", "1"],
     ["a SQL source needs --table"]),
    (["--source", "sales.duckdb", "--timestamp", "t", "--target", "y", "--threshold", "1"],
     ["a DuckDB source needs --table"]),
])
def test_init_with_options_that_do_not_describe_a_workspace(cli, tmp_path, monkeypatch, args, words):
    from modelcycle.cli import examples
    from modelcycle.lifecycle import workspace as wsmod

    def must_not_run(*_a, **_k):
        raise AssertionError("nothing is created")

    monkeypatch.setattr(examples, "create", must_not_run)
    monkeypatch.setattr(wsmod, "create_from_source", must_not_run)
    ran = cli("init", tmp_path / "new", *args)
    one_paragraph(ran, 2, *words)
    assert not (tmp_path / "new").exists()


def test_demo_refuses_a_folder_that_is_not_a_demo(cli, tmp_path, prefect):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    ran = cli("demo", mine)
    one_paragraph(ran, 2, f"{mine} exists and is not a demo workspace", "pick another folder")
    assert (mine / "notes.txt").read_text() == "keep me"
    assert not prefect
