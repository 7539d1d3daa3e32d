"""What init decides from a sample of the source: calendar columns and their YAML; its .gitignore."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from modelcycle.lifecycle.sampling import calendar_columns
from modelcycle.lifecycle.workspace import _features_block, _write_gitignore


def frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Series(pd.to_datetime("2023-11-01") + pd.to_timedelta(rng.integers(0, 150 * 24 * 60, n), unit="min"))
    return pd.DataFrame({
        "pickup_datetime": ts.dt.strftime("%Y-%m-%d %H:%M:%S UTC"),  # text with a zone, as CSVs give it
        "pickup_hour": ts.dt.hour,
        "mo": ts.dt.month,
        "dow_sun1": (ts.dt.day_of_week + 1) % 7 + 1,  # MySQL's DAYOFWEEK: Sunday = 1
        "yyyymm": ts.dt.year * 100 + ts.dt.month,
        "hour_noisy": np.where(rng.random(n) < 0.01, 99, ts.dt.hour),  # 99% equal: still a copy
        "year": rng.integers(1990, 2020, n),  # a car's model year, not the timestamp's
        "passengers": rng.integers(1, 5, n),
        "day": rng.integers(1, 29, n).astype(float),  # a float column of whole numbers, unrelated
        "distance": rng.uniform(1, 20, n),
    })


def test_calendar_columns_by_name_and_by_content():
    sample = frame()
    found = {c.column: c for c in calendar_columns(sample, "pickup_datetime", list(sample.columns[1:]))}
    assert found["pickup_hour"].part == "hour" and found["pickup_hour"].by == "name and content"
    assert found["mo"].part == "month" and found["mo"].by == "content" and found["mo"].share == 1.0
    assert found["dow_sun1"].part == "day_of_week"
    assert found["yyyymm"].part == "year_month"
    assert found["hour_noisy"].part == "hour" and 0.98 <= found["hour_noisy"].share < 1.0
    # a name alone is not enough when the sample shows the values are something else
    assert "year" not in found and "day" not in found
    assert "passengers" not in found and "distance" not in found


def test_a_name_decides_when_the_sample_cannot():
    sample = pd.DataFrame({"ts": pd.to_datetime(["2015-03-01"] * 50), "YEAR": [2015] * 50, "MONTH": [3] * 50,
                           "rooms": [3] * 50})
    found = calendar_columns(sample, "ts", ["YEAR", "MONTH", "rooms"])
    assert [(c.column, c.part, c.by) for c in found] == [("YEAR", "year", "name"), ("MONTH", "month", "name")]


def test_features_block_lists_the_rest_and_says_what_was_left_out():
    sample = frame()
    left = [c for c in calendar_columns(sample, "pickup_datetime", ["pickup_hour", "mo", "passengers"])]
    text = _features_block(["passengers", "distance"], left, "pickup_datetime")
    parsed = yaml.safe_load(text)
    assert parsed == {"features": {"builder": None, "columns": ["passengers", "distance"]}}
    flat = " ".join(line.strip().removeprefix("# ") for line in text.splitlines())
    assert "pickup_hour (the hour), mo (the month)" in flat
    assert "add it to `columns` below" in flat and "sin and cos of 2*pi*pickup_hour/24" in flat
    assert all(len(line) <= 100 for line in text.splitlines())
    assert yaml.safe_load(_features_block(["a"], [], "ts"))["features"]["columns"] is None


def test_gitignore_gets_only_the_lines_it_lacks(tmp_path):
    (tmp_path / ".gitignore").write_text("/.modelcycle/\n*.tmp")
    _write_gitignore(tmp_path)
    text = (tmp_path / ".gitignore").read_text()
    lines = text.splitlines()
    assert lines[:2] == ["/.modelcycle/", "*.tmp"] and ".env" in lines and "__pycache__/" in lines
    assert lines.count("/.modelcycle/") == 1
    _write_gitignore(tmp_path)
    assert (tmp_path / ".gitignore").read_text() == text
