"""Shadow scoring end to end: `modelcycle serve` with `serve.shadow: true` logs the champion's
and the challenger's predictions of every request it answers, and `modelcycle shadow-report`
scores both on the labels the warehouse holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pandas as pd
import pytest

from modelcycle.config import Workspace
from modelcycle.registry.workspace import open_registry

from .helpers import cli
from .test_serve import NAME, Running

pytestmark = pytest.mark.slow
KEYS = ["pickup_datetime", "pickup_longitude", "pickup_latitude"]


def test_the_server_logs_both_models_and_the_report_scores_them_on_the_fares(cli_champion_ws: Path,
                                                                             capsys) -> None:
    root = cli_champion_ws
    reg = open_registry(Workspace.load(root))
    champion = reg.get_alias(NAME, "champion")
    assert champion is not None
    reg.set_alias(NAME, "challenger", champion.version)  # the challenger: the same model, so equal scores
    with (root / "modelcycle.yaml").open("a") as yaml:
        yaml.write(f"\nserve:\n  port: 0\n  shadow: true\n  key_columns: [{', '.join(KEYS)}]\n")
    con = duckdb.connect(str(root / ".modelcycle/warehouse.duckdb"), read_only=True)
    rides = con.execute("SELECT * FROM rides WHERE pickup_datetime >= '2015-01-01' AND fare_amount IS NOT NULL "
                        "ORDER BY pickup_datetime LIMIT 120").df()
    con.close()
    assert not rides.duplicated(subset=KEYS).any()
    requests = rides.drop(columns=["fare_amount"]).assign(
        pickup_datetime=rides["pickup_datetime"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f"))

    exe = str(Path(sys.executable).with_name("modelcycle"))
    env = {k: v for k, v in os.environ.items() if k != "MODELCYCLE_SERVE_TOKEN"}
    proc = subprocess.Popen([exe, "-w", str(root), "serve"], env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line.strip())
            if line.startswith("serving "):
                break
        url = lines[-1].split(" at ")[1].split()[0]
        srv = Running(url, root, None, lines)
        predictions: list[float] = []
        for start in range(0, 120, 30):  # four requests of 30 rides
            status, headers, answer = srv.post({"records": requests.iloc[start:start + 30].to_dict("records")})
            assert status == 200 and headers["x-request-id"]
            predictions.extend(answer["predictions"])
        _, health = srv.health()
        assert health["shadow"]["submitted"] == 4 and health["shadow"]["dropped"] == 0
        proc.send_signal(signal.SIGTERM)  # the log is flushed on the way out
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

    log = pd.read_parquet(root / ".modelcycle" / "predictions")
    assert len(log) == 120 and log["request_id"].nunique() == 4
    assert set(log["champion_version"]) == {champion.version} == set(log["challenger_version"])
    np.testing.assert_allclose(log["challenger_prediction"], log["champion_prediction"])
    np.testing.assert_allclose(np.sort(log["champion_prediction"].to_numpy()), np.sort(predictions))
    inputs = ["pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude", "passenger_count"]
    assert {f"input.{c}" for c in inputs} <= set(log.columns) and "input.fare_amount" not in log.columns
    for column in inputs:  # the model inputs as the requests sent them
        np.testing.assert_allclose(np.sort(log[f"input.{column}"].to_numpy(dtype=float)),
                                   np.sort(rides[column].to_numpy(dtype=float)))

    code, out, err = cli(capsys, "-w", str(root), "shadow-report", "--json")
    assert code == 0, err
    report = json.loads(out)
    (pair,) = report["pairs"]
    mae = float(np.mean(np.abs(np.asarray(predictions) - rides["fare_amount"].to_numpy())))
    assert pair["compared"] == 120 and report["unlabelled"] == 0
    assert abs(pair["champion"] - mae) < 1e-6 and abs(pair["challenger"] - mae) < 1e-6
    assert pair["reading"].startswith("no clear difference")
    assert orjson.dumps(report)  # plain JSON for scripts
