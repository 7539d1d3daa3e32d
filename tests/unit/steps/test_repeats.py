"""Repeated rows found through row hashes give pandas' own answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelcycle.steps.repeats import repeated


def _same_as_pandas(frame: pd.DataFrame) -> None:
    expected = frame.duplicated(keep="first").to_numpy()
    got = repeated(frame)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)


def test_the_values_pandas_calls_equal_are_found_equal() -> None:
    nan_payload = np.frombuffer(np.array([0x7FF8000000000001], dtype="u8").tobytes(), dtype="f8")[0]
    _same_as_pandas(pd.DataFrame({"x": [0.0, -0.0, np.nan, float("nan"), nan_payload, 1.0, 1.0]}))
    _same_as_pandas(pd.DataFrame({"x": pd.array([1, None, 1, None, 2], dtype="Int64")}))
    _same_as_pandas(pd.DataFrame({"x": pd.to_datetime(["2020-01-01", None, None, "2020-01-01"])}))
    _same_as_pandas(pd.DataFrame({"x": pd.Categorical(["a", "b", "a", None, None])}))
    _same_as_pandas(pd.DataFrame({"x": pd.array(["a", None, "a", None], dtype="string")}))


def test_values_that_hash_alike_but_differ_are_not_repeats() -> None:
    # None, NaN and pd.NA in an object column hash alike; pandas tells them apart
    frame = pd.DataFrame({"x": ["a", None, np.nan, pd.NA, "a", None]}, dtype=object)
    _same_as_pandas(frame)
    assert repeated(frame).tolist() == [False, False, False, False, True, True]


def test_rows_equal_in_some_columns_only_are_not_repeats() -> None:
    rng = np.random.default_rng(4)
    n = 5_000
    frame = pd.DataFrame({"a": rng.integers(0, 3, n), "b": rng.integers(0, 3, n).astype(float),
                          "c": rng.choice(["x", "y"], n), "t": pd.Timestamp("2020-01-01")
                          + pd.to_timedelta(rng.integers(0, 4, n), unit="s")})
    _same_as_pandas(frame)
    assert 0 < repeated(frame).sum() < n


def test_cells_pandas_cannot_hash_fall_back_to_its_grouping() -> None:
    frame = pd.DataFrame({"x": [(1, 2), (1, 2), (3,)]})
    _same_as_pandas(frame)


@pytest.mark.parametrize("n", [0, 1])
def test_no_rows_or_one_row_repeats_nothing(n: int) -> None:
    assert repeated(pd.DataFrame({"x": range(n)})).tolist() == [False] * n


def _same_among(frame: pd.DataFrame, among: np.ndarray, order_by: str | None) -> None:
    expected = np.zeros(len(frame), dtype=bool)
    expected[among] = frame[among].duplicated(keep="first").to_numpy()
    np.testing.assert_array_equal(repeated(frame, among, order_by=order_by), expected)


@pytest.mark.parametrize("order_by", [None, "t"])
@pytest.mark.parametrize("sort", [True, False])
def test_among_some_rows_sorted_or_not_the_answer_is_pandas_own(order_by: str | None, sort: bool) -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    frame = pd.DataFrame({
        "t": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3_000, n), unit="s"),
        "fare": rng.choice([0.0, -0.0, np.nan, 5.5, 7.25], n), "n": rng.integers(0, 3, n),
        "ok": rng.random(n) < 0.5, "zone": rng.choice(["a", "b", None], n),
        "k": pd.array(rng.choice([1, 2, None], n), dtype="Int64")})
    if sort:
        frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
    among = rng.random(n) < 0.9
    _same_among(frame, among, order_by)
    _same_among(frame, np.ones(n, dtype=bool), order_by)
    assert repeated(frame, among, order_by=order_by).sum() > 100  # there were repeats to find


def test_rows_with_a_missing_time_or_only_text_columns_are_still_compared() -> None:
    frame = pd.DataFrame({"t": pd.to_datetime(["2015-01-01", None, None, "2015-01-01"]),
                          "s": ["a", "b", "b", "a"]})
    _same_among(frame, np.ones(4, dtype=bool), "t")
    text = pd.DataFrame({"s": ["a", "b", "a", None, None]})
    _same_among(text, np.ones(5, dtype=bool), None)
