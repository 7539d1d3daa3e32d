"""Helpers a feature builder may use: great-circle distance and bearing between points given in
degrees, and tolerant parsing of timestamps as JSON records and databases give them.

A feature builder (``features.builder`` in modelcycle.yaml, such as the taxi example's
``modelcycle.examples.taxifare.features:taxi_features``) is shipped inside logged models and
imported by every prediction, so this module depends on numpy and pandas only. Every helper is
NaN-safe: a missing or unparsable value gives NaN (or NaT), never an exception.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (arrays broadcast)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    a = np.sin(dphi / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def bearing_deg(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> np.ndarray:
    """Initial compass bearing in degrees [0, 360) from the first point to the second."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlmb = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    y = np.sin(dlmb) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dlmb)
    return np.mod(np.degrees(np.arctan2(y, x)), 360.0)


class FeatureBlock:
    """The feature columns of ``rows`` rows written one by one into a single float64 block, which
    :meth:`frame` hands over as a DataFrame without a copy.

    A builder that collects its columns in a dict and returns ``pd.DataFrame(columns)`` holds its
    features twice at the end (the arrays, and the frame's consolidated copy of them); this one
    holds them once, in the column-major layout a DataFrame keeps and LightGBM reads as it is::

        block = FeatureBlock(len(frame), ["distance_km", "hour"])
        block["distance_km"] = haversine_km(...)
        block["hour"] = ...
        return block.frame(frame.index)
    """

    def __init__(self, rows: int, names: list[str]) -> None:
        self.names = list(names)
        self._at = {name: i for i, name in enumerate(self.names)}
        self.values = np.full((len(self.names), rows), np.nan, dtype="float64")

    def __setitem__(self, name: str, values: ArrayLike) -> None:
        self.values[self._at[name]] = values

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[self._at[name]]

    def frame(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The columns as a DataFrame sharing this block's memory (one float64 block)."""
        return pd.DataFrame(self.values.T, columns=self.names, index=index, copy=False)


def to_naive_timestamps(values: Any) -> pd.Series:
    """Parse timestamps to naive ``datetime64`` (UTC wall clock); unparsable values become NaT.

    Accepts datetime64 of any unit, tz-aware timestamps (converted to UTC), ISO-8601 strings
    (with ``T`` or a space, with or without an offset or a trailing ``UTC``, as JSON records
    give them) and epoch numbers (seconds, milliseconds, microseconds or nanoseconds, guessed
    from their magnitude).
    """
    s = pd.Series(values, copy=False)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce").astype(float)
        magnitude = np.nanmedian(np.abs(num.to_numpy())) if num.notna().any() else 0.0
        unit: Literal["s", "ms", "us", "ns"] = (
            "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns")
        return pd.to_datetime(num, unit=unit, errors="coerce")
    if s.dtype == object:
        present = s.dropna()
        if len(present) and present.map(lambda v: isinstance(v, (datetime, np.datetime64))).all():
            return pd.to_datetime(s, utc=True, errors="coerce").dt.tz_localize(None)
    text = s.astype("string")
    out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    retry = out.isna() & text.notna()
    if retry.any():  # e.g. "2015-01-01 10:00:00 UTC", mixed precisions
        out = out.copy()
        out[retry] = pd.to_datetime(text[retry], utc=True, format="mixed", errors="coerce")
    return out.dt.tz_localize(None)
