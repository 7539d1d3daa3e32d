"""The taxi feature builder: columns, known geometry, time parsing, NaN safety, import cost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from modelcycle.examples.taxifare.features import (
    INPUT_COLUMNS,
    TAXI_FEATURES,
    taxi_features,
)
from modelcycle.steps.features import EARTH_RADIUS_KM

JFK = (40.6413, -73.7781)
MIDTOWN = (40.7549, -73.9840)


def rides(times, points=None, passengers=None) -> pd.DataFrame:
    n = len(times)
    points = points or [(40.7580, -73.9855, 40.7128, -74.0060)] * n
    plat, plon, dlat, dlon = (list(c) for c in zip(*points, strict=True))
    return pd.DataFrame(
        {
            "fare_amount": np.linspace(5, 50, n),
            "pickup_datetime": times,
            "pickup_longitude": plon,
            "pickup_latitude": plat,
            "dropoff_longitude": dlon,
            "dropoff_latitude": dlat,
            "passenger_count": passengers if passengers is not None else [1] * n,
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    times = pd.to_datetime(["2009-01-01 00:00:00", "2015-03-02 13:30:00", "2012-07-14 23:15:00"])
    points = [
        (40.0, -74.0, 41.0, -74.0),  # one degree of meridian
        (MIDTOWN[0], MIDTOWN[1], JFK[0], JFK[1]),
        (40.7580, -73.9855, 40.7580, -73.9000),
    ]
    return rides(times, points, passengers=[1, 2, 5])


def test_columns_order_dtypes_and_index(frame):
    frame.index = [10, 11, 12]
    out = taxi_features(frame)
    assert list(out.columns) == TAXI_FEATURES
    assert all(out[c].dtype == np.float64 for c in out.columns)
    assert list(out.index) == [10, 11, 12]
    assert "fare_amount" not in out.columns
    assert set(INPUT_COLUMNS) == {"pickup_datetime", "pickup_longitude", "pickup_latitude",
                                  "dropoff_longitude", "dropoff_latitude", "passenger_count"}


def test_known_distances_and_bearings(frame):
    out = taxi_features(frame)
    one_degree = EARTH_RADIUS_KM * np.pi / 180.0  # 111.195 km
    assert out.loc[0, "distance_km"] == pytest.approx(one_degree, rel=1e-9)
    assert out.loc[0, "bearing_deg"] == pytest.approx(0.0, abs=1e-9)  # due north
    # Midtown -> JFK is about 21.3 km to the east-south-east.
    assert out.loc[1, "distance_km"] == pytest.approx(21.3, abs=0.3)
    assert 100 < out.loc[1, "bearing_deg"] < 130
    assert out.loc[1, "dropoff_jfk_km"] == pytest.approx(0.0, abs=1e-9)
    assert out.loc[1, "pickup_midtown_km"] == pytest.approx(0.0, abs=1e-9)
    assert out.loc[1, "pickup_jfk_km"] == pytest.approx(out.loc[1, "distance_km"])
    # Due east: bearing 90; the street grid is rotated, so the grid distance exceeds the line.
    assert out.loc[2, "bearing_deg"] == pytest.approx(90.0, abs=0.1)
    ratio = out.loc[2, "grid_distance_km"] / out.loc[2, "distance_km"]
    assert ratio == pytest.approx(np.cos(np.radians(29)) + np.sin(np.radians(29)), rel=0.01)
    assert (out["grid_distance_km"] >= out["distance_km"] - 1e-9).all()


def test_time_features_of_known_timestamps(frame):
    out = taxi_features(frame)
    assert out.loc[0, "years_since_2009"] == 0.0
    assert out.loc[0, "hour"] == 0.0 and out.loc[0, "weekday"] == 3.0  # a Thursday
    assert out.loc[1, "hour"] == 13.5 and out.loc[1, "weekday"] == 0.0  # a Monday
    assert out.loc[2, "weekday"] == 5.0  # a Saturday
    assert out.loc[1, "years_since_2009"] == pytest.approx(6.17, abs=0.01)
    assert out.loc[1, "hour_sin"] == pytest.approx(np.sin(2 * np.pi * 13.5 / 24))
    assert out.loc[0, "dayofyear_cos"] == pytest.approx(1.0)
    assert list(out["passenger_count"]) == [1.0, 2.0, 5.0]
    assert out["pickup_cell"].notna().all() and (out["pickup_cell"] % 1 == 0).all()


def test_same_cell_for_close_points_different_for_far():
    out = taxi_features(rides(pd.to_datetime(["2015-01-01"] * 2),
                              [(40.7581, -73.9851, 40.7583, -73.9853), (40.7581, -73.9851, 40.70, -73.80)]))
    assert out.loc[0, "pickup_cell"] == out.loc[0, "dropoff_cell"]
    assert out.loc[1, "pickup_cell"] != out.loc[1, "dropoff_cell"]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_any_datetime_unit_gives_the_same_features(frame, unit):
    expected = taxi_features(frame)
    other = frame.assign(pickup_datetime=frame["pickup_datetime"].astype(f"datetime64[{unit}]"))
    pd.testing.assert_frame_equal(taxi_features(other), expected)


def test_string_timestamps_as_json_records_give_them(frame):
    expected = taxi_features(frame)
    for strings in (
        ["2009-01-01T00:00:00", "2015-03-02T13:30:00", "2012-07-14T23:15:00"],
        ["2009-01-01 00:00:00 UTC", "2015-03-02 13:30:00 UTC", "2012-07-14 23:15:00 UTC"],
        ["2009-01-01T00:00:00Z", "2015-03-02T13:30:00.000Z", "2012-07-14T23:15:00+00:00"],
        ["2009-01-01", "2015-03-02T13:30:00", "2012-07-14 23:15:00"],
    ):
        got = taxi_features(frame.assign(pickup_datetime=strings))
        pd.testing.assert_frame_equal(got, expected)
    records = frame.assign(pickup_datetime=frame["pickup_datetime"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    from_json = pd.DataFrame(records.to_dict(orient="records"))
    pd.testing.assert_frame_equal(taxi_features(from_json), expected)


def test_tz_aware_timestamps_are_converted_to_utc(frame):
    expected = taxi_features(frame)
    aware = frame.assign(pickup_datetime=frame["pickup_datetime"].dt.tz_localize("UTC"))
    pd.testing.assert_frame_equal(taxi_features(aware), expected)
    eastern = aware.assign(pickup_datetime=aware["pickup_datetime"].dt.tz_convert("America/New_York"))
    pd.testing.assert_frame_equal(taxi_features(eastern), expected)
    offsets = frame.assign(pickup_datetime=["2008-12-31T19:00:00-05:00", "2015-03-02T14:30:00+01:00",
                                            "2012-07-14T23:15:00Z"])
    pd.testing.assert_frame_equal(taxi_features(offsets), expected)


def test_epoch_numbers(frame):
    expected = taxi_features(frame)
    ms = frame["pickup_datetime"].astype("datetime64[ms]").astype("int64")
    pd.testing.assert_frame_equal(taxi_features(frame.assign(pickup_datetime=ms)), expected)


def test_nan_in_nan_out_without_exception(frame):
    broken = frame.copy()
    broken["pickup_datetime"] = broken["pickup_datetime"].astype(object)
    broken.loc[0, "pickup_latitude"] = np.nan
    broken.loc[1, "pickup_datetime"] = None
    broken.loc[2, "passenger_count"] = None
    out = taxi_features(broken)
    assert list(out.columns) == TAXI_FEATURES
    assert np.isnan(out.loc[0, "distance_km"]) and np.isnan(out.loc[0, "pickup_cell"])
    assert np.isnan(out.loc[0, "pickup_jfk_km"]) and not np.isnan(out.loc[0, "dropoff_jfk_km"])
    assert not np.isnan(out.loc[0, "hour"])
    for col in ("hour", "hour_sin", "weekday_cos", "dayofyear_sin", "years_since_2009"):
        assert np.isnan(out.loc[1, col])
    assert not np.isnan(out.loc[1, "distance_km"])
    assert np.isnan(out.loc[2, "passenger_count"])
    garbage = frame.assign(pickup_datetime=["not a date", "", "2015-13-45"],
                           dropoff_longitude=["x", None, "-73.9"])
    out = taxi_features(garbage)
    assert out["hour"].isna().all()
    assert out["distance_km"].isna().tolist() == [True, True, False]


def test_all_nan_and_empty_frames():
    times = pd.Series([pd.NaT, pd.NaT], dtype="datetime64[us]")
    out = taxi_features(rides(times, [(np.nan,) * 4] * 2, passengers=[np.nan, np.nan]))
    assert out.isna().all().all()
    empty = taxi_features(rides(times, [(np.nan,) * 4] * 2).iloc[:0])
    assert list(empty.columns) == TAXI_FEATURES and len(empty) == 0


def test_missing_column_gives_nan_features(frame):
    out = taxi_features(frame.drop(columns=["passenger_count", "pickup_datetime"]))
    assert out["passenger_count"].isna().all() and out["hour"].isna().all()
    assert out["distance_km"].notna().all()


def test_import_is_light():
    code = ("import sys, modelcycle.examples.taxifare.features; "
            "heavy = [m for m in ('lightgbm', 'sklearn', 'duckdb', 'scipy', 'mlflow', 'prefect', "
            "'modelcycle.sources', 'modelcycle.lifecycle', 'modelcycle.examples.taxifare.simulator') "
            "if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
