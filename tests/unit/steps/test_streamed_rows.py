"""The cycle's rows held once: validation, the split and the features give the same rows as the
copying code did, and copy no more than they must (counted in copies and in tracemalloc's peak,
never in seconds)."""

from __future__ import annotations

import tracemalloc
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from modelcycle.config.models import DataConfig
from modelcycle.examples.taxifare.features import TAXI_FEATURES, taxi_features
from modelcycle.lifecycle.driftcheck import _marked
from modelcycle.steps import split as sp
from modelcycle.steps import validate as va
from modelcycle.steps.features import FeatureBlock

START, END = datetime(2015, 3, 1), datetime(2015, 4, 1)
COLUMNS = {"y": "float", "ts": "datetime", "x": "float", "n": "int", "kind": "category", "flag": "bool"}


def _data(**rules: dict) -> DataConfig:
    return DataConfig(timestamp="ts", target="y", task="regression", columns=COLUMNS,
                      rules={"x": {"min": 0, "max": 100}, **rules})


def _frame(n: int = 400, seed: int = 0, shuffle: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Series(pd.date_range("2015-01-15", "2015-04-10", periods=n)).dt.floor("D")  # many ties
    frame = pd.DataFrame({"y": rng.normal(10, 2, n), "ts": ts, "x": rng.uniform(-5, 105, n),
                          "n": rng.integers(0, 5, n), "kind": pd.Categorical(rng.choice(["a", "b"], n)),
                          "flag": rng.choice([True, False], n)})
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True) if shuffle else frame


def _messy(shuffle: bool) -> pd.DataFrame:
    """Nulls, cells of the wrong type, a repeated row, rows outside the window, ties."""
    f = _frame(shuffle=shuffle).astype({"y": object, "n": object, "ts": object})
    f.loc[3, "y"] = None
    f.loc[5, "y"] = "1O.5"          # not a float
    f.loc[7, "n"] = 2.5             # not an int
    f.loc[9, "ts"] = "yesterday"    # not a datetime
    f.loc[11, "kind"] = None
    f.loc[13, "x"] = np.nan
    f.loc[15, "x"] = 50.0
    f.loc[16] = f.loc[15]           # an exact repeat of a valid row
    return f


def _old_validate_rows(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """The rows as validation took them before: a copy of the kept rows, sorted, re-indexed."""
    typed, keep, _ = va.row_mask(frame, data, window_start=START)
    clean = typed[keep].sort_values(data.timestamp, kind="stable").reset_index(drop=True)
    for name, kind in data.columns.items():
        if kind == "int" and clean[name].dtype == "float64" and not clean[name].isna().any():
            clean[name] = clean[name].astype("int64")
    return clean


@pytest.mark.parametrize("shuffle", [False, True])
def test_validation_keeps_the_same_rows_as_the_copying_code(shuffle: bool) -> None:
    frame, data = _messy(shuffle), _data()
    typed, keep, report = va.row_mask(frame, data, window_start=START)
    clean, again = va.validate(frame, data, window_start=START)
    pd.testing.assert_frame_equal(clean, _old_validate_rows(frame, data), check_exact=True)
    assert keep.index.equals(frame.index) and keep.dtype == bool
    assert report.rows_out == int(keep.sum()) == len(clean) == again.rows_out
    assert report.dropped == again.dropped and report.dropped["duplicate row"] == 1
    for label in ("y is not a float", "n is not an int", "ts is not a datetime", "y is empty", "x < 0", "x > 100"):
        assert report.dropped[label] >= 1, label
    assert not keep[[3, 5, 7, 9, 16]].any() and keep[15]   # the first of two equal rows stays
    assert clean["ts"].is_monotonic_increasing and clean["n"].dtype == "int64"
    assert clean["kind"].dtype == "category" and clean["kind"].isna().sum() == 1   # empty, not dropped


def test_a_valid_frame_in_time_order_is_not_copied() -> None:
    frame = _frame()
    frame = frame[(frame["x"] >= 0) & (frame["x"] <= 100)].reset_index(drop=True)  # every row valid
    clean, report = va.validate(frame, _data(), window_start=START)
    assert report.rows_dropped == 0
    for column in ("y", "x", "n"):
        assert np.shares_memory(clean[column].to_numpy(), frame[column].to_numpy()), column


def _old_split(frame: pd.DataFrame, fraction: float) -> sp.Split:
    """The split as it was computed before: masks, a sorted copy of the window, a concatenation."""
    ts = frame["ts"]
    history = frame[ts < START]
    window = frame[(ts >= START) & (ts < END)].sort_values("ts", kind="stable")
    n_holdout = int(round(len(window) * fraction))
    cut = window["ts"].iloc[len(window) - n_holdout]
    fresh, holdout = window[window["ts"] < cut], window[window["ts"] >= cut]
    return sp.Split(pd.concat([history, fresh], ignore_index=True), holdout.reset_index(drop=True),
                    len(history), len(fresh), cut)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9])
def test_the_split_of_sorted_rows_is_the_split_by_masks(fraction: float) -> None:
    clean, _ = va.validate(_messy(shuffle=True), _data(), window_start=START)  # rows after END too
    assert (clean["ts"] >= END).any() and (clean["ts"] < START).any()
    got, want = (sp.chronological(clean, timestamp="ts", window_start=START, window_end=END, holdout_fraction=fraction),
                 _old_split(clean, fraction))
    pd.testing.assert_frame_equal(got.train, want.train, check_exact=True)
    pd.testing.assert_frame_equal(got.holdout, want.holdout, check_exact=True)
    assert (got.history_rows, got.fresh_train_rows, got.cut) == (want.history_rows, want.fresh_train_rows, want.cut)
    assert (got.holdout["ts"] == got.cut).sum() > 1   # ties at the cut: all held out, as before
    # the training rows are a slice of the clean rows; only the held-out rows are copied
    assert np.shares_memory(got.train["x"].to_numpy(), clean["x"].to_numpy())
    assert not np.shares_memory(got.holdout["x"].to_numpy(), clean["x"].to_numpy())


def test_unsorted_rows_are_still_split_by_masks() -> None:
    frame = _frame(shuffle=True)
    got = sp.chronological(frame, timestamp="ts", window_start=START, window_end=END, holdout_fraction=0.3)
    want = _old_split(frame, 0.3)
    pd.testing.assert_frame_equal(got.train, want.train, check_exact=True)
    pd.testing.assert_frame_equal(got.holdout, want.holdout, check_exact=True)


def test_the_split_still_refuses_too_few_held_out_rows_and_no_training_rows() -> None:
    few = _frame(n=40)
    with pytest.raises(sp.DataError, match="would be held out"):
        sp.chronological(few, timestamp="ts", window_start=START, window_end=END, holdout_fraction=0.3)
    only_window = _frame(n=400)
    only_window = only_window[only_window["ts"] >= START].reset_index(drop=True)
    only_window["ts"] = pd.Timestamp(START)   # every row ties: all of them at the cut
    with pytest.raises(sp.DataError, match="no rows to train on"):
        sp.chronological(only_window, timestamp="ts", window_start=START, window_end=END, holdout_fraction=0.3)


def test_rows_for_drift_are_a_slice_when_they_are_one_run_and_a_mask_otherwise() -> None:
    frame = _frame()
    leading = frame["ts"] < START
    assert np.shares_memory(_marked(frame, leading)["x"].to_numpy(), frame["x"].to_numpy())
    pd.testing.assert_frame_equal(_marked(frame, leading), frame[leading])
    inner = (frame["ts"] >= START) & (frame["ts"] < END)  # a time range inside sorted rows
    assert np.shares_memory(_marked(frame, inner)["x"].to_numpy(), frame["x"].to_numpy())
    pd.testing.assert_frame_equal(_marked(frame, inner), frame[inner])
    scattered = frame["n"] == 1
    pd.testing.assert_frame_equal(_marked(frame, scattered), frame[scattered])
    pd.testing.assert_frame_equal(_marked(frame, frame["ts"] < pd.Timestamp("1900-01-01")), frame.iloc[:0])


# memory: tracemalloc's peak (numpy's buffers are traced), on 200,000 rows -------------------------

N = 200_000


def _rides(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "fare_amount": rng.uniform(3, 50, n),
        "pickup_datetime": pd.date_range("2014-03-01", "2015-03-31", periods=n).astype("datetime64[us]"),
        "pickup_longitude": rng.uniform(-74.1, -73.8, n), "pickup_latitude": rng.uniform(40.6, 40.85, n),
        "dropoff_longitude": rng.uniform(-74.1, -73.8, n), "dropoff_latitude": rng.uniform(40.6, 40.85, n),
        "passenger_count": rng.integers(1, 6, n)})
    frame.loc[7, "pickup_latitude"] = np.nan
    return frame


def _peak(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        out = fn(*args, **kwargs)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_splitting_copies_the_held_out_rows_only() -> None:
    clean = _rides()
    size = clean.memory_usage(index=False).sum()
    split, peak = _peak(sp.chronological, clean, timestamp="pickup_datetime", window_start=START, window_end=END,
                        holdout_fraction=0.3)
    held = split.holdout.memory_usage(index=False).sum()
    assert len(split.train) + len(split.holdout) == N
    # The held-out rows (30% of the window's ~8%: 2.3% of the rows) and a few bytes of positions.
    # The copying split peaked at 2x the frame (history, window, fresh, concatenation).
    assert held < 0.03 * size
    assert peak < 0.1 * size, f"the split allocated {peak / size:.2f}x the frame"


def test_the_taxi_features_are_built_in_one_block_lightgbm_reads_as_it_is() -> None:
    rides = _rides()
    feats, peak = _peak(taxi_features, rides)
    out = feats.to_numpy(dtype="float64", copy=False)   # what LightGBM's pandas input does
    assert list(feats.columns) == TAXI_FEATURES and out.flags["F_CONTIGUOUS"]
    assert len(feats._mgr.blocks) == 1   # one block: no interleaving copy on the way to LightGBM
    size = out.nbytes
    # The block itself (27 float64 columns) plus a few columns' worth of temporaries; a dict of
    # arrays turned into a DataFrame held the features twice (2.2x measured before).
    assert peak < 1.7 * size, f"the features peaked at {peak / size:.2f}x their size"


def test_a_feature_block_hands_over_its_memory() -> None:
    block = FeatureBlock(3, ["a", "b"])
    block["a"] = [1.0, 2.0, 3.0]
    frame = block.frame(pd.RangeIndex(10, 13))
    assert frame["a"].tolist() == [1.0, 2.0, 3.0] and frame["b"].isna().all()   # a column never set: NaN
    assert list(frame.index) == [10, 11, 12]
    assert np.shares_memory(frame.to_numpy(copy=False), block.values)
