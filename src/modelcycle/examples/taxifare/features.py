"""Feature builder for New York taxi rides (the demo's and the seeds' schema).

``taxi_features(frame)`` turns raw ride records -- ``pickup_datetime``, pickup/dropoff
longitude/latitude and ``passenger_count`` -- into numeric columns a tree model learns fares from:
trip distances (great-circle and along Manhattan's street grid), bearing, distances of both ends to
the airports and Midtown, cyclic time of day / week / year, a time trend, the passenger count and
coarse location cells.

The taxifare example's modelcycle.yaml names it as its feature builder,
``features.builder: modelcycle.examples.taxifare.features:taxi_features``, as your own
modelcycle.yaml would name ``features:build``. The module is shipped inside logged models and
imported by every prediction, so it depends on numpy, pandas and modelcycle's light helpers
(:mod:`modelcycle.steps.features`) only and does its work in a few vectorised passes. It is
NaN-safe: a missing or unparsable value gives NaN in the features it feeds and never an
exception.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelcycle.steps.features import FeatureBlock, bearing_deg, haversine_km, to_naive_timestamps

#: Raw columns the builder reads (any other column, such as ``fare_amount``, is ignored).
INPUT_COLUMNS: list[str] = [
    "pickup_datetime",
    "pickup_longitude",
    "pickup_latitude",
    "dropoff_longitude",
    "dropoff_latitude",
    "passenger_count",
]

#: Places whose distance to either end of a ride is a feature, as (latitude, longitude).
LANDMARKS: dict[str, tuple[float, float]] = {
    "jfk": (40.6413, -73.7781),
    "lga": (40.7769, -73.8740),
    "ewr": (40.6895, -74.1745),
    "midtown": (40.7549, -73.9840),
}

#: Manhattan's street grid is rotated about 29 degrees clockwise from true north.
GRID_ANGLE_DEG = 29.0
#: Reference point of the local flat-earth projection (Midtown).
REF_LAT, REF_LON = 40.758, -73.9855
KM_PER_DEG_LAT = 111.2
KM_PER_DEG_LON = 111.2 * float(np.cos(np.radians(REF_LAT)))

#: Size of the coarse location cells (degrees) and the origin of their integer numbering.
CELL_DEG = 0.02
_CELL_LAT0, _CELL_LON0 = 40.0, -75.0
_CELL_NLON = 1000  # cell id = lat_index * _CELL_NLON + lon_index

_EPOCH = np.datetime64("2009-01-01T00:00:00", "s")
_SECONDS_PER_YEAR = 365.25 * 86400.0

TAXI_FEATURES: list[str] = [
    "distance_km",
    "grid_distance_km",
    "bearing_deg",
    "pickup_jfk_km",
    "pickup_lga_km",
    "pickup_ewr_km",
    "pickup_midtown_km",
    "dropoff_jfk_km",
    "dropoff_lga_km",
    "dropoff_ewr_km",
    "dropoff_midtown_km",
    "pickup_longitude",
    "pickup_latitude",
    "dropoff_longitude",
    "dropoff_latitude",
    "hour",
    "hour_sin",
    "hour_cos",
    "weekday",
    "weekday_sin",
    "weekday_cos",
    "dayofyear_sin",
    "dayofyear_cos",
    "years_since_2009",
    "passenger_count",
    "pickup_cell",
    "dropoff_cell",
]


def grid_coordinates(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Local km coordinates rotated onto Manhattan's grid: (along the avenues, across them).

    Midtown is the origin; the first axis points up-town along the avenues, the second across
    the streets toward the East River.
    """
    x = (np.asarray(lon, dtype=float) - REF_LON) * KM_PER_DEG_LON
    y = (np.asarray(lat, dtype=float) - REF_LAT) * KM_PER_DEG_LAT
    theta = np.radians(GRID_ANGLE_DEG)
    along = x * np.sin(theta) + y * np.cos(theta)
    across = x * np.cos(theta) - y * np.sin(theta)
    return along, across


def grid_distance_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """"Manhattan" (L1) distance in km measured along the rotated street grid."""
    a1, c1 = grid_coordinates(lat1, lon1)
    a2, c2 = grid_coordinates(lat2, lon2)
    return np.abs(a2 - a1) + np.abs(c2 - c1)


def location_cell(lat, lon) -> np.ndarray:
    """Integer id of the ``CELL_DEG`` x ``CELL_DEG`` grid cell of a point (float, NaN if unknown)."""
    i = np.floor((np.asarray(lat, dtype=float) - _CELL_LAT0) / CELL_DEG)
    j = np.floor((np.asarray(lon, dtype=float) - _CELL_LON0) / CELL_DEG)
    j = np.clip(j, 0, _CELL_NLON - 1)
    return i * _CELL_NLON + j


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def taxi_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric features for each ride, in the order of ``TAXI_FEATURES`` (all float64).

    Missing input columns and unparsable values give NaN features (LightGBM handles them);
    the output index is the input's.
    """
    plat, plon = _column(frame, "pickup_latitude"), _column(frame, "pickup_longitude")
    dlat, dlon = _column(frame, "dropoff_latitude"), _column(frame, "dropoff_longitude")

    out = FeatureBlock(len(frame), TAXI_FEATURES)  # the features held once, in the layout LightGBM reads
    with np.errstate(invalid="ignore"):
        out["distance_km"] = haversine_km(plat, plon, dlat, dlon)
        out["grid_distance_km"] = grid_distance_km(plat, plon, dlat, dlon)
        out["bearing_deg"] = bearing_deg(plat, plon, dlat, dlon)
        for end, (lat, lon) in (("pickup", (plat, plon)), ("dropoff", (dlat, dlon))):
            for name, (llat, llon) in LANDMARKS.items():
                out[f"{end}_{name}_km"] = haversine_km(lat, lon, llat, llon)
        out["pickup_longitude"] = plon
        out["pickup_latitude"] = plat
        out["dropoff_longitude"] = dlon
        out["dropoff_latitude"] = dlat

        if "pickup_datetime" in frame.columns:
            ts = to_naive_timestamps(frame["pickup_datetime"])
            secs = ts.to_numpy(dtype="datetime64[s]")
            nat = np.isnat(secs)
            rel = (secs - _EPOCH).astype("int64").astype(float)
            rel[nat] = np.nan
        else:
            rel = np.full(len(frame), np.nan)
        days = rel / 86400.0
        hour = np.mod(days, 1.0) * 24.0
        # 2009-01-01 was a Thursday: weekday 0 = Monday as in pandas.
        weekday = np.mod(np.floor(days) + 3.0, 7.0)
        # Day of year from the calendar (leap years included), fraction of the day added.
        if "pickup_datetime" in frame.columns:
            doy = ts.dt.dayofyear.to_numpy(dtype=float, na_value=np.nan) - 1.0 + hour / 24.0
            year_len = np.where(ts.dt.is_leap_year.to_numpy(dtype=bool, na_value=False), 366.0, 365.0)
        else:
            doy = np.full(len(frame), np.nan)
            year_len = np.full(len(frame), 365.0)
        out["hour"] = hour
        out["hour_sin"] = np.sin(2 * np.pi * hour / 24.0)
        out["hour_cos"] = np.cos(2 * np.pi * hour / 24.0)
        out["weekday"] = weekday
        out["weekday_sin"] = np.sin(2 * np.pi * (weekday + hour / 24.0) / 7.0)
        out["weekday_cos"] = np.cos(2 * np.pi * (weekday + hour / 24.0) / 7.0)
        out["dayofyear_sin"] = np.sin(2 * np.pi * doy / year_len)
        out["dayofyear_cos"] = np.cos(2 * np.pi * doy / year_len)
        out["years_since_2009"] = rel / _SECONDS_PER_YEAR
        out["passenger_count"] = _column(frame, "passenger_count")
        out["pickup_cell"] = location_cell(plat, plon)
        out["dropoff_cell"] = location_cell(dlat, dlon)

    return out.frame(frame.index)
