"""The data contract on messy real tables: a cell of the wrong type or a repeated row drops its
row (counted, with examples) instead of stopping every window; a column that is wholly of
another type still stops the cycle with a SchemaError naming it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.integration.helpers import assert_clean_failure, cli, head, mutate_warehouse, sales

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_a_column_with_no_value_of_its_type_stops_the_cycle(taxi_ws: Path, capsys):
    mutate_warehouse(taxi_ws, "ALTER TABLE rides ALTER COLUMN fare_amount TYPE VARCHAR; "
                      "UPDATE rides SET fare_amount = CASE WHEN hash(pickup_datetime) % 2 = 0 "
                      "THEN 'about ten' ELSE 'twelve-ish' END")
    before = head(taxi_ws)
    code, _, err = cli(capsys, "-w", str(taxi_ws), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "column 'fare_amount' (window 2015-01) should be float, but none of its",
                         "values is a float", "about ten", "`fare_amount: str`")
    assert code == 4  # a DataError
    assert head(taxi_ws) == before


def test_a_csv_with_a_bad_cell_past_the_type_sample_and_duplicates_runs(tmp_path: Path, capsys, monkeypatch):
    """A flights-like CSV: 30,000 rows (DuckDB sniffs types from the first 20,480), a cell that
    is not a number in the history and one in the window, and repeated rows in the window."""
    frame = sales(30_000)
    frame["size_m2"] = frame["size_m2"].astype(object)
    frame.loc[22_000, "size_m2"] = "1O5.5"  # 2023-12: history
    frame.loc[25_000, "size_m2"] = "n.a."   # 2024-01: the window
    window = np.flatnonzero(frame["sold_at"].str.startswith("2024-01"))
    assert 25_000 in window and 22_000 not in window
    copies = frame.iloc[window[:5]]
    frame = pd.concat([frame, copies], ignore_index=True)
    (tmp_path / "data").mkdir()
    frame.to_csv(tmp_path / "data/sales.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "init", "prices", "--source", "data/*.csv", "--timestamp", "sold_at",
                       "--target", "price", "--threshold", "25000")
    assert code == 0, err
    assert "size_m2: float" in (tmp_path / "prices/modelcycle.yaml").read_text()

    code, out, err = cli(capsys, "-w", str(tmp_path / "prices"), "run", "--window", "2024-01")
    assert code == 0, err
    assert "Traceback" not in err and "leaked" not in err
    report = json.loads((tmp_path / "prices/reports/validation.json").read_text())
    assert report["dropped"] == {"size_m2 is not a float": 2, "duplicate row": 5}
    assert report["examples"]["size_m2 is not a float"] == ["'1O5.5'", "'n.a.'"]
    assert report["window_rows_in"] == len(window) + 5
    assert report["window_rows_out"] == len(window) - 1
