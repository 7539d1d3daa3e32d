"""The taxi simulator's ground truth through the `reference` seam, and older taxifare workspaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.config import Workspace, load_config
from modelcycle.config.models import Params
from modelcycle.examples.taxifare import simulator
from modelcycle.examples.taxifare.scenario import TaxiReference
from modelcycle.examples.taxifare.workspace import config_text
from modelcycle.lifecycle import reference, stages
from modelcycle.steps.imports import resolve


def taxi_workspace(tmp_path: Path, text: str) -> Workspace:
    (tmp_path / "modelcycle.yaml").write_text(text)
    return Workspace(tmp_path, load_config(tmp_path / "modelcycle.yaml"), Params())


def older(text: str) -> str:
    """The example's modelcycle.yaml as modelcycle wrote it before the examples package."""
    head, _, _ = text.partition("\nreference:")
    head = head.replace("modelcycle.examples.taxifare.features:taxi_features",
                        "modelcycle.steps.features:taxi_features")
    return head + '\nsimulation:\n  seed: 11\n  rows_per_month: 1000\n  start: "2009-01"\n  end: "2015-06"\n'


def test_the_truth_follows_the_simulators_changes_and_the_gates_policy(tmp_path):
    ws = taxi_workspace(tmp_path, config_text(rows_per_month=1000))
    ref = reference.load(ws)
    assert isinstance(ref, TaxiReference) and ref.label == "the simulator's ground truth"
    truth = reference.expected_decisions(ws, ref, ["2014-12", "2015-01", "2015-03", "2015-05"],
                                         first_has_champion=False)
    assert {w: (t.expected, t.event) for w, t in truth.items()} == {
        "2014-12": ("promote", False), "2015-01": ("keep", False), "2015-03": ("promote", True),
        "2015-05": ("escalate", True)}
    assert truth["2015-03"].what == "fare rules change (+18%)" and truth["2015-05"].what == "30% of rows broken"
    keep = ws.config.model_copy(update={"gate": ws.config.gate.model_copy(update={"on_bad_data": "keep"})})
    assert ref.truth("2015-05", has_champion=True, config=keep).expected == "keep"


def test_the_noise_floor_is_the_simulators_for_mae_only(tmp_path):
    ws = taxi_workspace(tmp_path, config_text(rows_per_month=1000))
    rows = simulator.TaxiSimulator(seed=3, rows_per_month=300).month(2015, 2)
    report = stages.noise_floor(ws, rows)
    assert report is not None and report.noise_floor == pytest.approx(simulator.noise_floor(rows))
    assert 1.0 < report.noise_floor < 2.5
    assert TaxiReference().noise_floor(rows, "rmse") is None


def test_an_older_taxifare_workspace_still_loads_with_its_ground_truth(tmp_path):
    """Before the examples package, a taxifare modelcycle.yaml had a `simulation:` section and
    named the feature builder in modelcycle.steps.features; both still work."""
    ws = taxi_workspace(tmp_path, older(config_text(rows_per_month=1000)))
    assert ws.config.reference is not None
    assert ws.config.reference.params == {"seed": 11, "rows_per_month": 1000}
    ref = reference.load(ws)
    assert isinstance(ref, TaxiReference) and ref.simulator.seed == 11 and ref.simulator.rows_per_month == 1000
    from modelcycle.examples.taxifare.features import taxi_features

    # the old builder path, in the config and inside models logged by the older modelcycle
    assert ws.config.features.builder == "modelcycle.steps.features:taxi_features"
    assert resolve(ws.config.features.builder, what="feature builder") is taxi_features
