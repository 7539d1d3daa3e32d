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
