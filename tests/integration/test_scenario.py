"""The scenario check on a small backtest: decisions against the simulator's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelcycle.config import Workspace
from modelcycle.lifecycle import flows, reference
from modelcycle.registry.workspace import open_registry
from tests.integration.helpers import cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_small_backtest_decides_as_the_ground_truth_says(demo_size_ws: Path, capsys):
    """Four months at the demo's size: keep, promote on the fare change, keep, escalate on the
    broken data. (With much smaller months the March challenger has seen too few rides at the
    new fares, and April's challenger is then really better: the gate rightly promotes it.)"""
    taxi_ws = demo_size_ws
    first = flows.run(taxi_ws, "2015-01")
    assert first.outcome == "promote"
    code, out, err = cli(capsys, "-w", str(taxi_ws), "backtest", "--from", "2015-02", "--to", "2015-05",
                         "--approve-escalations")
    assert code == 0, err
    assert "4 of 4 decisions match the simulator's ground truth" in out, out
    assert "fare rules change" in out and "30% of rows broken" in out
    assert (taxi_ws / "reports/backtest-2015-02-2015-05.png").stat().st_size > 10_000
    rows = json.loads((taxi_ws / "reports/backtest-2015-02-2015-05.json").read_text())
    assert [(r["window"], r["outcome"], r["truth"]["expected"], r["truth"]["right"]) for r in rows] == [
        ("2015-02", "keep", "keep", True), ("2015-03", "promote", "promote", True),
        ("2015-04", "keep", "keep", True), ("2015-05", "escalate", "escalate", True)]

    # the escalated challenger of the broken month was approved: it serves, and the approval is
    # announced as a human decision, apart from the cycles' decisions
    assert "(approved)" in out
    ws = Workspace.load(taxi_ws)
    reg = open_registry(ws)
    champion = reg.get_alias(ws.config.name, "champion")
    assert champion.tags["window"] == "2015-05" and champion.tags["champion_by"] == "backtest"
    events = [json.loads(line) for line in (taxi_ws / ".modelcycle/notifications.log").read_text().splitlines()]
    assert [e.get("kind") for e in events].count("approval") == 1
    assert events[-1]["kind"] == "approval" and events[-1]["version"] == champion.version


def test_expected_decisions_follow_the_configured_policy(taxi_ws: Path):
    ws = Workspace.load(taxi_ws)
    ref = reference.load(ws)
    truth = reference.expected_decisions(ws, ref, ["2015-02", "2015-03", "2015-04", "2015-05"])
    assert {w: t.expected for w, t in truth.items()} == {
        "2015-02": "keep", "2015-03": "promote", "2015-04": "keep", "2015-05": "escalate"}
    cfg = taxi_ws / "modelcycle.yaml"
    cfg.write_text(cfg.read_text().replace("on_bad_data: escalate", "on_bad_data: keep"))
    keep = Workspace.load(taxi_ws)
    truth = reference.expected_decisions(keep, reference.load(keep), ["2015-05"])
    assert truth["2015-05"].expected == "keep"
    first = reference.expected_decisions(ws, ref, ["2014-12", "2015-01"], first_has_champion=False)
    assert first["2014-12"].expected == "promote" and first["2015-01"].expected == "keep"
