"""The alias history on the real MLflow registry: what a cycle, `promote`, `rollback` and a move
made with a plain MlflowClient leave in it, as `modelcycle history` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from modelcycle.cli.render import HOST_WIDTH, host_text
from modelcycle.config import Workspace
from modelcycle.lifecycle import flows, modellock
from modelcycle.registry import history
from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.registry.workspace import open_registry
from tests.unit.cli.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
NAME = "taxifare"


def moves_json(ws: Path, *args: str) -> list[dict]:
    ran = run_cli("-w", ws, "history", "--json", *args)
    assert ran.code == 0, ran
    return json.loads(ran.out)


def test_history_after_a_cycle_promote_rollback_and_a_move_made_outside(cli_champion_ws: Path):
    ws = cli_champion_ws
    reg = open_registry(Workspace.load(ws))

    # the first cycle, run by the `modelcycle` command: both aliases, with its window and runs
    first = moves_json(ws)
    assert [(m["alias"], m["before"], m["after"], m["by"], m["window"]) for m in first] == [
        ("challenger", None, "1", "cycle", "2014-12"), ("champion", None, "1", "cycle", "2014-12")]
    run = reg.get_run(first[-1]["run_id"])
    assert run.tags["modelcycle.window"] == "2014-12"
    assert first[-1]["flow_run_id"] == run.tags["modelcycle.flow_run_id"] != ""
    client = mlflow.MlflowClient(reg.tracking_uri)
    v1 = client.get_model_version(NAME, "1")
    assert v1.tags["champion_by"] == "cycle 2014-12" and v1.tags["champion_since"] == first[-1]["time"]
    assert sum(k.startswith("modelcycle.move.") for k in client.get_registered_model(NAME).tags) == 2

    # a second cycle promotes v2 (the fare change)
    assert flows.run(ws, "2015-03").outcome == "promote"
    assert [(m["before"], m["after"], m["window"]) for m in moves_json(ws, "--alias", "champion")][-1] == \
        ("1", "2", "2015-03")

    # each cycle's moves say on which machine it ran (its MLflow run's modelcycle.host), as status does
    here = modellock.machine()
    assert {m["host"] for m in moves_json(ws) if m["by"] == "cycle"} == {here}
    assert reg.get_run(moves_json(ws)[-1]["run_id"]).tags["modelcycle.host"] == here
    shown = run_cli("-w", ws, "status")
    assert shown.code == 0, shown
    assert "champion v2 2015-03" in shown.said and host_text(here, HOST_WIDTH) in shown.said.split("champion v2")[1]
    assert "2015-03 ▲ promote" in shown.said and f"on {here}" in shown.said.split("recent decisions")[1]

    # a human's promote, then a rollback
    ran = run_cli("-w", ws, "promote", "--version", "1", "--reason", "the fare change looks off")
    assert ran.code == 0, ran
    ran = run_cli("-w", ws, "rollback", "--reason", "the fares are right after all")
    assert ran.code == 0, ran
    assert "taxifare v2 is now the champion (was v1)" in ran.said
    tail = moves_json(ws, "--alias", "champion", "--limit", "2")
    assert [(m["before"], m["after"], m["by"], m["reason"]) for m in tail] == [
        ("2", "1", "human", "the fare change looks off"), ("1", "2", "rollback", "the fares are right after all")]
    assert tail[0]["who"] and tail[0]["who"] == tail[1]["who"]
    log = [json.loads(line) for line in (ws / ".modelcycle" / "notifications.log").read_text().splitlines()]
    assert [e["kind"] for e in log[-2:]] == ["approval", "rollback"]

    # someone moves the champion with MLflow's own client: the next `history` records it
    client.set_registered_model_alias(NAME, "champion", "1")
    ran = run_cli("-w", ws, "history", "--limit", "1")
    assert ran.code == 0, ran
    assert "champion v2 v1 outside moved outside modelcycle (the MLflow UI or API)" in ran.said
    assert client.get_model_version(NAME, "1").tags["champion_by"].startswith("outside modelcycle")
    everything = moves_json(ws)
    assert [m["by"] for m in everything].count("outside") == 1
    assert len(everything) == 7 and everything == sorted(everything, key=lambda m: m["time"])
    log = [json.loads(line) for line in (ws / ".modelcycle" / "notifications.log").read_text().splitlines()]
    assert log[-1]["kind"] == "outside" and log[-1]["champion"] == "1"
    assert "moved outside modelcycle (the MLflow UI or API) from v2 to v1" in log[-1]["reasons"][0]

    # and a rollback from there goes back to the version the outside move came from
    assert run_cli("-w", ws, "rollback").code == 0
    assert reg.get_alias(NAME, "champion").version == "2"


def test_the_mlflow_registry_keeps_moves_in_order_with_a_long_reason(tmp_path: Path):
    reg = MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}")
    reg.set_model_tags(NAME, {})
    for n in range(3):
        history.record(reg, NAME, history.Move("challenger", None, None, history.now(), "outside",
                                               reason=f"{n} " + "why " * 3000))
    moves = history.moves(reg, NAME)
    assert [m.reason.split()[0] for m in moves] == ["0", "1", "2"]
    assert all(len(history.encode(m)) <= history.VALUE_LIMIT for m in moves)
