"""A taxifare workspace made before the examples package keeps running its cycles."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from modelcycle.lifecycle import flows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_an_older_taxifare_workspace_runs_with_its_noise_floor(taxi_ws: Path):
    """Its modelcycle.yaml has the older `simulation:` section and names the feature builder in
    modelcycle.steps.features; the champion logged by its first cycle keeps that old path inside
    the model, and the next cycle scores it."""
    cfg = taxi_ws / "modelcycle.yaml"
    head, _, _ = cfg.read_text().partition("\nreference:")
    head = head.replace("modelcycle.examples.taxifare.features:taxi_features",
                        "modelcycle.steps.features:taxi_features")
    cfg.write_text(head + '\nsimulation:\n  seed: 7\n  rows_per_month: 3000\n  start: "2009-01"\n  end: "2015-06"\n')
    subprocess.run(["git", "commit", "-qam", "the older modelcycle.yaml"], cwd=taxi_ws, check=True)

    first = flows.run(taxi_ws, "2014-12")
    assert first.outcome == "promote", first.reasons
    assert first.noise_floor and first.challenger_score > first.noise_floor * 0.9
    second = flows.run(taxi_ws, "2015-01")
    assert second.outcome in ("keep", "promote"), second.reasons
    assert second.champion_version == "1" and second.champion_score and second.noise_floor
    assert "simulation:" in cfg.read_text()  # nothing rewrote the user's file
