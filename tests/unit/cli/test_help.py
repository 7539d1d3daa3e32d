"""`modelcycle VERB --help` says what the verb is for and lists its options."""

from __future__ import annotations

import pytest

HELP = {
    "init": ("Create a workspace", ["--example", "--source", "--password-var", "--table", "--timestamp",
                                    "--target", "--task", "--metric", "--threshold", "--name",
                                    "--rows-per-month", "--force"]),
    "config": ("Describe every key of modelcycle.yaml", ["--params"]),
    "status": ("Show the champion and challenger versions with their lineage", ["--last"]),
    "doctor": ("Repair what a killed or interrupted cycle left half-done", ["--no-wait"]),
    "run": ("Run one cycle: fetch the window, validate it", ["--window", "--no-wait"]),
    "backtest": ("Replay the cycle over history, one month at a time", ["--from", "--to", "--plot",
                                                                         "--approve-escalations", "--no-wait"]),
    "promote": ("Point an alias (the champion by default) at a registered model version",
                ["--version", "--alias", "--reason", "--no-wait"]),
    "history": ("Show the history of the champion and challenger aliases", ["--alias", "--limit", "--json"]),
    "rollback": ("Move the champion alias back to the previous champion", ["--to", "--reason", "--no-wait"]),
    "predict": ("Predict with the champion", ["--alias", "--version", "--output", "--proba"]),
    "step": ("Run one pipeline stage from files", ["--no-wait"]),
    "demo": ("Build a workspace of simulated New York cab rides", ["--rows-per-month"]),
    "report": ("Write a report comparing this workspace's params", ["--out"]),
}


@pytest.mark.parametrize("verb", sorted(HELP))
def test_each_verb_explains_itself_and_its_options(cli, verb):
    purpose, options = HELP[verb]
    ran = cli(verb, "--help")
    assert ran.code == 0, ran
    assert f"Usage: modelcycle {verb}" in ran.said or f"{verb} [OPTIONS]" in ran.said
    assert purpose in ran.said
    for option in [*options, "--help"]:
        assert option in ran.said, (verb, option)
    assert cli(verb, "-h").out == ran.out  # the short form says the same


def test_the_root_help_lists_every_verb_with_its_one_line_purpose_and_the_global_options(cli):
    ran = cli("--help")
    assert ran.code == 0
    for verb in HELP:
        assert verb in ran.said
    assert "Run one cycle for a window: validate, compare, decide, version, register, notify." in ran.said
    assert "Point the champion (or challenger) alias at a model version: a human's decision." in ran.said
    for option in ("--verbose", "-v", "--workspace", "-w", "--version", "--help"):
        assert option in ran.said
    assert "Start with modelcycle demo" in ran.said


def test_no_arguments_shows_the_help(cli):
    ran = cli()
    assert "Usage:" in ran.said and "Commands" in ran.said
    assert "Traceback" not in ran.err


def test_version_prints_the_version_once(cli):
    from modelcycle import __version__

    ran = cli("--version")
    assert ran.code == 0
    assert ran.out == f"modelcycle {__version__}\n"  # main()'s look at the options printed nothing


def test_worker_and_deploy_help_explain_several_machines(cli) -> None:
    worker = cli("worker", "--help")
    assert worker.code == 0
    for words in ("Several machines", "the same PREFECT_API_URL", "the same MLflow tracking server and DVC remote",
                  "the workspace at the same absolute path", "modelcycle-<model>", "--name", "<host>-<pid>"):
        assert words in worker.said, words
    deploy = cli("deploy", "--help")
    assert "names the workspace by its absolute path" in deploy.said and "shared filesystem" in deploy.said
