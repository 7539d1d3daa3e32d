import math
import time

import numpy as np
import pandas as pd
import pytest

from modelcycle.errors import DataError
from modelcycle.steps.drift import DEFAULT_THRESHOLD, column_drift, drift_report, psi

COLUMNS = {"ts": "datetime", "y": "float", "x": "float", "n": "int", "city": "str", "kind": "category",
           "member": "bool"}


def rides(n=5000, seed=0, *, start="2015-01-01", x_mean=10.0, city_p=(0.6, 0.3, 0.1), peak_hour=None,
          x_missing=0.0):
    """A frame with one column of every kind; each argument changes one column's distribution."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 28, n)
    hours = rng.integers(0, 24, n) if peak_hour is None else np.clip(rng.normal(peak_hour, 1.5, n), 0, 23).astype(int)
    ts = pd.Timestamp(start) + pd.to_timedelta(days, "D") + pd.to_timedelta(hours, "h") \
        + pd.to_timedelta(rng.integers(0, 3600, n), "s")
    x = rng.normal(x_mean, 2.0, n)
    x[rng.random(n) < x_missing] = np.nan
    return pd.DataFrame({
        "ts": ts, "y": rng.gamma(2.0, 5.0, n), "x": x, "n": rng.choice([1, 2, 3, 4], n, p=[0.7, 0.15, 0.1, 0.05]),
        "city": rng.choice(["NYC", "LA", "SF"], n, p=list(city_p)),
        "kind": pd.Categorical(rng.choice(["a", "b"], n)), "member": rng.random(n) < 0.3})


def test_the_same_distribution_never_drifts_over_50_seeded_pairs():
    alarms = []
    for seed in range(50):
        # a later month: the dates never overlap, only hour-of-day and weekday are compared
        report = drift_report(rides(seed=2 * seed), rides(seed=2 * seed + 1, start="2015-03-02"), COLUMNS,
                              threshold=DEFAULT_THRESHOLD)
        alarms += report.drifted
        assert max(c.psi for c in report.columns.values()) < DEFAULT_THRESHOLD / 2
    assert alarms == []


@pytest.mark.parametrize(("change", "column"), [
    ({"x_mean": 11.5}, "x"),  # the mean moves by 0.75 standard deviations
    ({"city_p": (0.3, 0.3, 0.4)}, "city"),
    ({"peak_hour": 18}, "ts"),
    ({"x_missing": 0.1}, "x"),
])
def test_a_change_drifts_exactly_its_column(change, column):
    report = drift_report(rides(seed=1), rides(seed=2, start="2015-03-02", **change), COLUMNS,
                          threshold=DEFAULT_THRESHOLD)
    assert report.drifted == [column]
    assert report.columns[column].psi > 2 * DEFAULT_THRESHOLD


def test_numeric_column_reports_ks_and_missing_shares():
    ref, cur = rides(seed=1), rides(seed=2, x_mean=11.5, x_missing=0.1)
    result = column_drift(ref["x"], cur["x"], "float")
    assert result.column == "x" and result.kind == "float"
    assert 0.2 < result.stats["ks"] < 0.5 and result.stats["ks_pvalue"] < 1e-6
    assert result.stats["missing_reference"] == 0.0
    assert result.stats["missing_current"] == pytest.approx(0.1, abs=0.02)
    assert result.stats["missing_change"] == result.stats["missing_current"]


def test_values_outside_the_reference_range_count_as_drift():
    # the broken-export case: a share of the coordinates set to 0, far below every reference value
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(40.75, 0.03, 20_000), name="lat")
    cur = pd.Series(rng.normal(40.75, 0.03, 5000), name="lat")
    cur[:750] = 0.0
    assert column_drift(ref, cur, "float").psi > 0.3
    assert column_drift(ref, cur[750:], "float").psi < 0.02


def test_an_int_column_with_few_values_is_compared_by_value():
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.choice([1, 2, 3], 5000, p=[0.8, 0.15, 0.05]))
    same = pd.Series(rng.choice([1, 2, 3], 5000, p=[0.8, 0.15, 0.05]))
    more_twos = pd.Series(rng.choice([1, 2, 3], 5000, p=[0.5, 0.45, 0.05]))
    new_value = pd.Series(rng.choice([1, 2, 3, 7], 5000, p=[0.6, 0.15, 0.05, 0.2]))
    assert column_drift(ref, same, "int").psi < 0.01
    assert column_drift(ref, more_twos, "int").psi > DEFAULT_THRESHOLD
    assert column_drift(ref, new_value, "int").psi > DEFAULT_THRESHOLD


def test_categorical_reports_a_chi_square_pvalue_and_handles_new_categories():
    ref = pd.Series(["a"] * 500 + ["b"] * 500)
    cur = pd.Series(["a"] * 400 + ["b"] * 400 + ["c"] * 200)
    result = column_drift(ref, cur, "str")
    assert math.isfinite(result.psi) and result.psi > DEFAULT_THRESHOLD
    assert result.stats["chi2_pvalue"] < 1e-10
    assert column_drift(ref, ref.sample(frac=1, random_state=0), "str").stats["chi2_pvalue"] > 0.99


def test_bool_column_drifts_when_the_share_of_true_changes():
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.random(5000) < 0.3)
    assert column_drift(ref, pd.Series(rng.random(5000) < 0.3), "bool").psi < 0.01
    assert column_drift(ref, pd.Series(rng.random(5000) < 0.6), "bool").psi > DEFAULT_THRESHOLD


def test_datetime_compares_hour_and_weekday_not_the_dates():
    ref = pd.Series(pd.date_range("2014-01-01", periods=24 * 7 * 20, freq="h"))
    later = ref + pd.Timedelta(days=7 * 60)  # the same hours and weekdays a year later
    result = column_drift(ref, later, "datetime")
    assert result.psi == pytest.approx(0.0, abs=1e-12)
    weekends = later[later.dt.dayofweek >= 5]
    shifted = column_drift(ref, weekends, "datetime")
    assert shifted.stats["psi_weekday"] > 1 and shifted.stats["psi_hour"] < 0.01


def test_datetime_text_is_parsed():
    ref = pd.Series(pd.date_range("2014-01-01", periods=2000, freq="h"))
    assert column_drift(ref.astype(str), ref + pd.Timedelta(days=364), "datetime").psi < 0.01


def test_psi_is_zero_for_equal_mixes_and_finite_for_empty_bins():
    assert psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    assert math.isfinite(psi(np.array([10, 0]), np.array([0, 10])))


def test_subsampling_is_deterministic():
    rng = np.random.default_rng(0)
    ref, cur = pd.Series(rng.normal(size=100_000)), pd.Series(rng.normal(0.1, 1, 100_000))
    first, again = column_drift(ref, cur, "float"), column_drift(ref, cur, "float")
    assert first == again
    assert first.rows_reference == 100_000


def test_metrics_are_flat_finite_floats_per_column():
    report = drift_report(rides(seed=1), rides(seed=2, x_mean=12.0), COLUMNS, threshold=0.1)
    metrics = report.to_metrics()
    assert metrics["drift.x.drifted"] == 1.0 and metrics["drift.y.drifted"] == 0.0
    assert metrics["drift.columns_drifted"] == 1.0 and metrics["drift.threshold"] == 0.1
    assert metrics["drift.x.psi"] == report.columns["x"].psi
    assert {"drift.x.ks", "drift.city.chi2_pvalue", "drift.ts.psi_hour", "drift.n.missing_current"} <= set(metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert "x: PSI" in report.summary() and "DRIFT" in report.summary()


def test_the_threshold_decides():
    ref, cur = rides(seed=1), rides(seed=2, x_mean=11.0)
    score = column_drift(ref["x"], cur["x"], "float").psi
    assert drift_report(ref, cur, {"x": "float"}, threshold=score * 0.9).drifted == ["x"]
    assert drift_report(ref, cur, {"x": "float"}, threshold=score * 1.1).drifted == []


def test_a_missing_column_or_an_empty_frame_is_a_data_error():
    with pytest.raises(DataError, match="the window lack column"):
        drift_report(rides(), rides().drop(columns=["x"]), COLUMNS)
    with pytest.raises(DataError, match="'x'.*the window has no rows"):
        column_drift(rides()["x"], rides()["x"].iloc[:0], "float")


@pytest.mark.bench
def test_a_column_of_200k_rows_takes_a_few_milliseconds():
    ref, cur = rides(200_000, seed=1), rides(200_000, seed=2, start="2015-03-02")
    drift_report(ref, cur, COLUMNS)  # warm up
    began = time.perf_counter()
    drift_report(ref, cur, COLUMNS)
    per_column = (time.perf_counter() - began) / len(COLUMNS)
    assert per_column < 0.05, f"{per_column * 1000:.1f} ms per column"
