"""The shadow report on the taxi workspace: its DuckDB warehouse holds the labels (fares), and
requests about its rides are identified by their pickup time and place."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd

from modelcycle.registry.base import ModelVersion
from modelcycle.serving.shadow import ShadowLog, predictions_dir
from tests.integration.helpers import cli

KEYS = ["pickup_datetime", "pickup_longitude", "pickup_latitude"]


class Challenger:
    """Off by one dollar, up on even rows of a request and down on odd ones: MAE 1."""

    version = ModelVersion("taxifare", "2", "memory://v2")

    def __init__(self, fares: dict[str, float]) -> None:
        self.fares = fares

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        fares = np.array([self.fares[t] for t in frame["pickup_datetime"]])
        return fares + np.where(np.arange(len(frame)) % 2 == 0, 1.0, -1.0)


def _serve_section(root, monkeypatch) -> None:
    with open(root / "modelcycle.yaml", "a", encoding="utf-8") as f:
        f.write(f"\nserve:\n  shadow: true\n  key_columns: [{', '.join(KEYS)}]\n")


def test_the_report_joins_the_log_with_the_fares_in_the_warehouse(taxi_ws, capsys, monkeypatch):
    warehouse = taxi_ws / ".modelcycle" / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    rides = con.execute("SELECT * FROM rides WHERE pickup_datetime >= '2015-01-01' AND fare_amount IS NOT NULL "
                        "ORDER BY pickup_datetime LIMIT 300").df()
    con.close()
    assert len(rides) == 300 and not rides.duplicated(subset=KEYS).any()
    # requests as a JSON client sends them: times as text, no fare
    requests = rides.drop(columns=["fare_amount"]).assign(
        pickup_datetime=rides["pickup_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S.%f"))
    fares = dict(zip(requests["pickup_datetime"], rides["fare_amount"], strict=True))
    log = ShadowLog(predictions_dir(taxi_ws), challenger=lambda: Challenger(fares), key_columns=KEYS,
                    clock=lambda: datetime(2025, 6, 1, 12, tzinfo=UTC))
    with log:
        for start in range(0, 300, 50):
            frame = requests.iloc[start:start + 50].reset_index(drop=True)
            champion = rides["fare_amount"].iloc[start:start + 50].to_numpy() + 2.0   # MAE 2
            assert log.submit(f"req-{start}", frame, champion, "1")
    assert log.counters()["written_rows"] == 300

    # the fares of the last 20 rides have not arrived yet
    con = duckdb.connect(str(warehouse))
    con.register("late", rides.iloc[280:][KEYS])
    con.execute("UPDATE rides SET fare_amount = NULL FROM late WHERE rides.pickup_datetime = late.pickup_datetime "
                "AND rides.pickup_longitude = late.pickup_longitude AND rides.pickup_latitude = late.pickup_latitude")
    con.close()

    _serve_section(taxi_ws, monkeypatch)
    code, out, err = cli(capsys, "-w", str(taxi_ws), "shadow-report", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["rows"], report["labelled"], report["unlabelled"]) == (300, 280, 20)
    assert report["labels_from"].startswith("2015-01-01")          # the logged pickup times say where to look
    (pair,) = report["pairs"]
    assert (pair["champion_version"], pair["challenger_version"], pair["requests"]) == ("1", "2", 6)
    assert pair["compared"] == 280
    assert abs(pair["champion"] - 2.0) < 1e-9
    assert abs(pair["challenger"] - 1.0) < 1e-9
    assert abs(pair["interval"]["improvement"] - 0.5) < 1e-9 and pair["interval"]["ci_low"] > 0
    assert pair["reading"] == "the challenger is better on 280 live rows"

    code, out, err = cli(capsys, "-w", str(taxi_ws), "shadow-report")
    assert code == 0, err
    assert "v1 → v2: the challenger is better on 280 live rows" in " ".join(out.split())
    assert "20 of 300 logged rows have no label in the source yet" in " ".join(out.split())
