"""Drift in a real cycle: measured against the champion's training rows, logged to the cycle's
MLflow run, said beside the decision and shown by `modelcycle status`."""

from __future__ import annotations

import json

import duckdb
import pytest

from modelcycle.config import Workspace
from modelcycle.lifecycle import flows
from modelcycle.registry.workspace import open_registry
from tests.integration.helpers import cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

COLUMNS = ("fare_amount", "pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude",
           "passenger_count")


def test_a_shifted_column_is_reported_logged_and_shown(champion_ws, capsys):
    # 2015-01's pickups moved 0.05 degrees east (about 4 km; still inside the validation bounds)
    con = duckdb.connect(str(champion_ws / ".modelcycle/warehouse.duckdb"))
    con.execute("UPDATE rides SET pickup_longitude = pickup_longitude + 0.05 "
                "WHERE pickup_datetime >= '2015-01-01' AND pickup_datetime < '2015-02-01'")
    con.close()

    result = flows.run(champion_ws, "2015-01")

    assert result.champion_version == "1"
    assert list(result.drifted) == ["pickup_longitude"] and result.drifted["pickup_longitude"] > 1.0
    assert result.drift_max_psi == result.drifted["pickup_longitude"] and result.drift_error is None
    assert any(r.startswith("inputs drifted: pickup_longitude (PSI") for r in result.reasons)

    run = open_registry(Workspace.load(champion_ws)).get_run(result.mlflow_run_id or "")
    for column in COLUMNS:
        assert f"drift_psi_{column}" in run.metrics
    assert "drift_psi_pickup_datetime" not in run.metrics  # the timestamp is not compared
    assert run.metrics["drift_psi_pickup_longitude"] == pytest.approx(result.drifted["pickup_longitude"])
    assert run.metrics["drift_psi_fare_amount"] < 0.1
    assert run.metrics["drift_max_psi"] == pytest.approx(result.drift_max_psi)
    assert "drift.json" in run.artifacts
    assert "inputs drifted: pickup_longitude" in run.tags["modelcycle.reasons"]

    latest = json.loads((champion_ws / ".modelcycle/drift.json").read_text())
    assert latest["window"] == "2015-01" and latest["champion_version"] == "1"
    assert "history rows" in latest["reference"]  # v1 was trained on 2014-12: nothing fetched again
    metrics = json.loads((champion_ws / "reports/metrics.json").read_text())
    assert list(metrics["drift"]["drifted"]) == ["pickup_longitude"]

    code, out, err = cli(capsys, "-w", str(champion_ws), "status")
    assert code == 0, err
    said = " ".join(out.split())
    assert "drift window 2015-01 against v1's training rows (trained to 2014-12): 1 column(s) drifted" in said
    assert "pickup_longitude PSI" in said
