"""A deterministic simulator of New York yellow-cab rides, 2009-01 to 2015-06 (the demo's data).

Why simulate: the seeds' exercise needs seven years of taxi rides whose fares *drift* -- traffic
gets slower, seasons come and go, the fare rules change, one month arrives broken -- and a
demo must run offline in seconds. The simulator produces rows in the seeds' schema (``SCHEMA``)
and, unlike real data, it can say how good a model could possibly be.

What is simulated, per ride
---------------------------
*Visible* (the columns of a row):

- ``pickup_datetime``: a day of the month (Thursday to Saturday a little busier), an hour from
  a weekday or weekend profile (evening peak, quiet 3-6 am), a uniform second within the hour.
- pickup and dropoff coordinates: a mixture of hotspots, Manhattan-heavy (Midtown, Chelsea and the
  Village, the Upper East and West Sides, Downtown, the Lower East Side, Harlem) with some
  Brooklyn and Queens; about half of the city trips end near where they began. About 4 % of the
  rides go to or come from an airport (JFK, LaGuardia and, rarely, Newark).
- ``passenger_count``: 1 to 6, mostly 1 (independent of the fare, as on a real meter).

*Hidden* (never in a row):

- the route distance: the L1 distance between the two points along Manhattan's street grid
  (rotated 29 degrees from north) times a random route factor (log-normal, median 1.12);
- the trip's average speed: a function of the pickup hour and weekday, of the season (faster in
  summer, slow before Christmas), of a slow yearly traffic trend (about -2.2 % a year), of the trip
  length (long trips use highways) and of Midtown congestion, times a random log-normal factor;
  the duration is route distance / speed;
- extra meter units from unmeasured causes (waiting at the kerb, the meter's start): a small
  random count.

The fare is the TLC meter applied to those hidden quantities (``FARE_RULES``): an initial charge,
one "unit" per 1/5 mile driven, plus one unit per ``time_unit_seconds`` spent below 12 mph
(approximated by the trip's time in excess of driving the route at 12 mph), the extra units, a
50-cent night surcharge (8 pm - 6 am), a $1 weekday peak surcharge (4 - 8 pm), the Newark
surcharge, any surcharge on every ride, and the flat JFK <-> Manhattan fare. The meter's integer
units are the rounding.

Regimes (``regime_changes()``): the real 2012-09-04 TLC fare increase (unit 40c per 1/5 mile or
per 2 slow minutes -> 50c per 1/5 mile or per slow minute, JFK flat fare $45 -> $52, Newark
surcharge $15 -> $17.50; TLC estimated +17 % for real trips, the same simulated rides cost +27 %
because more of their meter is slow-traffic time, whose price rose 150 %); a *simulated* fare-rule
change on 2015-03-01 (initial charge $2.50 -> $3.00, unit 50c -> 55c, a new $1.00 surcharge on
every metered ride, the JFK flat fare unchanged; +18 % on the same rides);
and a broken-data month, 2015-05, in which 30 % of the rows have corrupted coordinates (half set
to 0, half with latitude and longitude swapped), which the NYC bounds checks (latitude 40-42,
longitude -75 to -72) catch. Seasonality and the traffic trend move the fares a little every
month.

Honesty
-------
``conditional_median(frame)`` is the best prediction of the fare that is possible *from the
visible columns*: the median of the simulator's own fare distribution given the pickup time, the
two places and the passengers, integrating the hidden variables by (stratified) Monte Carlo with
a fixed internal seed. ``noise_floor(frame)`` is its MAE against the frame's fares -- the
irreducible error a perfect model would still make. ``oracle_mae(frame)`` is the MAE of the meter
fed with the *hidden* route and duration (frames from ``month(..., with_hidden=True)``); no model
can reach it, it only shows how much of the floor comes from what the data does not show.

Determinism: a month's rows depend only on ``(seed, year, month, rows_per_month)``; generating
a month alone gives the same rows as that month inside a longer range. Rows are sorted by
``pickup_datetime`` within each month.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelcycle.errors import DataError, SourceError
from modelcycle.examples.taxifare.city import (  # the city's internals, shared with the simulator
    _hidden_draws,
    _MC_DRAWS,
    _MC_DRAWS_UNKNOWN_PLACES,
    _MC_SEED,
    _MEDIAN_EXTRA_UNITS,
    _meter,
    _month_range,
    _PASSENGER_PROBS,
    _sample_places,
    _sample_times,
    _stratified_hidden,
    _trips,
)
from modelcycle.steps.features import to_naive_timestamps

# ----------------------------------------------------------------------------------------------
# Public constants
# ----------------------------------------------------------------------------------------------

#: Columns of a simulated ride and their pandas dtypes (the seeds' schema).
SCHEMA: dict[str, str] = {
    "fare_amount": "float64",
    "pickup_datetime": "datetime64[us]",
    "pickup_longitude": "float64",
    "pickup_latitude": "float64",
    "dropoff_longitude": "float64",
    "dropoff_latitude": "float64",
    "passenger_count": "int64",
}

#: Hidden per-ride quantities added by ``month(..., with_hidden=True)`` (never in the warehouse).
HIDDEN_COLUMNS: list[str] = ["route_km", "duration_min", "oracle_fare"]

FIRST_MONTH = "2009-01"
LAST_MONTH = "2015-06"

#: Rides per simulated month. 12,000 keeps the demo fast -- a monthly challenger trains on
#: 6.7 months (~80k rows) in about 2.5 s on one core with ``DEFAULT_MODEL_PARAMS`` and the whole
#: 2009-01..2015-06 range (936k rows) generates in 1-2 s -- while giving enough rows for a
#: retrained model to come within 5 % of the noise floor and holdouts (3,600 rows) that measure
#: MAE to a few cents (see scripts/calibrate_simulator.py).
DEFAULT_ROWS_PER_MONTH = 12_000

#: LightGBM hyper-parameters proposed for the demo's taxi model (``lightgbm.LGBMRegressor``),
#: calibrated with scripts/calibrate_simulator.py: the L1 objective (the MAE-optimal prediction
#: is the conditional median), enough trees and leaves to come within 5 % of the noise floor on a
#: monthly cycle's ~150k training rows (a year of history and the window's first 70 %), in about
#: 3.5 s of one core. ``n_jobs`` is 1 on purpose:
#: on a busy 2-core machine LightGBM's OpenMP threads spin and a 2-thread fit took 2x to 100x
#: longer than a 1-thread one; one thread also leaves the other core to the champion's evaluation
#: that runs in parallel.
DEFAULT_MODEL_PARAMS: dict[str, object] = {
    "objective": "l1",
    "n_estimators": 150,
    "learning_rate": 0.15,
    "num_leaves": 63,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "random_state": 7,
    "n_jobs": 1,
    "verbose": -1,
}

#: NYC bounds a validation step checks (inclusive).
NYC_BOUNDS: dict[str, tuple[float, float]] = {"latitude": (40.0, 42.0), "longitude": (-75.0, -72.0)}

#: Share of the broken month's rows whose coordinates are corrupted.
BROKEN_MONTH = (2015, 5)
BROKEN_SHARE = 0.30


_REGIME_CHANGES: list[dict[str, str]] = [
    {
        "window": "2012-09",
        "kind": "fare_change",
        "effective": "2012-09-04",
        "headline": "TLC fare increase (+27%)",
        "description": "TLC fare increase (real rules, effective 2012-09-04): meter unit 40c -> "
        "50c per 1/5 mile, time unit 2 min -> 1 min in slow traffic, JFK flat fare $45 -> $52, "
        "Newark surcharge $15 -> $17.50; +27% on the same simulated rides (TLC estimated +17% "
        "for real trips).",
    },
    {
        "window": "2015-03",
        "kind": "fare_change",
        "effective": "2015-03-01",
        "headline": "fare rules change (+18%)",
        "description": "Simulated fare-rule change: initial charge $2.50 -> $3.00, meter unit "
        "50c -> 55c, a new $1.00 surcharge on every metered ride (JFK flat fare unchanged); +18% "
        "on the same rides. A model trained before it underestimates nearly every fare.",
    },
    {
        "window": "2015-05",
        "kind": "broken_data",
        "effective": "2015-05-01",
        "headline": "30% of rows broken",
        "description": "Broken export: 30% of the rows have corrupted coordinates (half set to 0, "
        "half with latitude and longitude swapped); NYC bounds checks (latitude 40..42, "
        "longitude -75..-72) catch them. Fares are unaffected.",
    },
]


def regime_changes() -> list[dict[str, str]]:
    """The ground truth of what changed when: ``window`` (YYYY-MM), ``kind``
    (``fare_change`` or ``broken_data``), ``effective`` (first day), a short ``headline`` and a
    ``description``.

    A backtest's decisions can be compared with it (a fare change should make the champion fail and
    a retrained challenger win; a broken month should be caught by validation).
    """
    return [dict(item) for item in _REGIME_CHANGES]


class TaxiSimulator:
    """Deterministic generator of simulated NYC yellow-cab rides (see the module docstring).

    ``seed`` picks the world's random draws; ``rows_per_month`` the number of rides per month.
    """

    def __init__(self, seed: int = 7, rows_per_month: int = DEFAULT_ROWS_PER_MONTH) -> None:
        if int(rows_per_month) < 1:
            raise SourceError(f"rows_per_month must be positive, got {rows_per_month}")
        self.seed = int(seed)
        self.rows_per_month = int(rows_per_month)

    def __repr__(self) -> str:
        return f"TaxiSimulator(seed={self.seed}, rows_per_month={self.rows_per_month})"

    # -- data ----------------------------------------------------------------------------------

    def month(self, year: int, month: int, *, with_hidden: bool = False) -> pd.DataFrame:
        """The rides of one month, sorted by pickup time, in ``SCHEMA``.

        With ``with_hidden`` the hidden ``route_km``, ``duration_min`` and ``oracle_fare`` (the
        meter fed with the hidden route and duration, without the extra-unit noise) are added.
        """
        year, month = int(year), int(month)
        if not 1 <= month <= 12:
            raise SourceError(f"month must be 1..12, got {month}")
        n = self.rows_per_month
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, year, month, n]))
        t = _sample_times(rng, n, year, month)
        plat, plon, dlat, dlon = _sample_places(rng, n)
        passengers = rng.choice(np.arange(1, 7), size=n, p=_PASSENGER_PROBS).astype(np.int64)
        route, speed, extra = _hidden_draws(rng, n)

        trips = _trips(t, plat, plon, dlat, dlon)
        fare, route_km, minutes = _meter(trips, route, speed, extra)
        oracle, _, _ = _meter(trips, route, speed, np.full(n, _MEDIAN_EXTRA_UNITS))

        if (year, month) == BROKEN_MONTH:
            crng = np.random.default_rng(np.random.SeedSequence([self.seed, year, month, n, 1]))
            broken = crng.random(n) < BROKEN_SHARE
            zeroed = broken & (crng.random(n) < 0.5)
            swapped = broken & ~zeroed
            plat, plon, dlat, dlon = plat.copy(), plon.copy(), dlat.copy(), dlon.copy()
            plat[swapped], plon[swapped] = plon[swapped], plat[swapped].copy()
            dlat[swapped], dlon[swapped] = dlon[swapped], dlat[swapped].copy()
            for a in (plat, plon, dlat, dlon):
                a[zeroed] = 0.0

        order = np.argsort(t, kind="stable")
        frame = pd.DataFrame(
            {
                "fare_amount": fare[order].astype("float64"),
                "pickup_datetime": pd.Series(t[order]).astype("datetime64[us]").to_numpy(),
                "pickup_longitude": plon[order],
                "pickup_latitude": plat[order],
                "dropoff_longitude": dlon[order],
                "dropoff_latitude": dlat[order],
                "passenger_count": passengers[order],
            }
        )
        if with_hidden:
            frame["route_km"] = route_km[order]
            frame["duration_min"] = minutes[order]
            frame["oracle_fare"] = oracle[order]
        return frame

    def generate(self, start: str = FIRST_MONTH, end: str = LAST_MONTH, *,
                 with_hidden: bool = False) -> pd.DataFrame:
        """The rides of the months ``start``..``end`` (inclusive, ``"YYYY-MM"``), in time order."""
        parts = [self.month(y, m, with_hidden=with_hidden) for y, m in _month_range(start, end)]
        return pd.concat(parts, ignore_index=True)

    # -- honesty -------------------------------------------------------------------------------

    def conditional_median(self, frame: pd.DataFrame) -> np.ndarray:
        """Per row, the best MAE prediction of the fare from the visible columns (see module)."""
        return conditional_median(frame)

    def noise_floor(self, frame: pd.DataFrame) -> float:
        """MAE of ``conditional_median(frame)`` against ``frame['fare_amount']``."""
        return noise_floor(frame)

    def oracle_mae(self, frame: pd.DataFrame) -> float:
        """MAE of the meter fed with the hidden route and duration (needs ``with_hidden`` rows)."""
        return oracle_mae(frame)

    def regime_changes(self) -> list[dict[str, str]]:
        return regime_changes()


# ----------------------------------------------------------------------------------------------
# Floor and oracle
# ----------------------------------------------------------------------------------------------

def _visible(frame: pd.DataFrame):
    missing = [c for c in SCHEMA if c not in frame.columns and c != "fare_amount"]
    if missing:
        raise DataError(f"the frame lacks simulator column(s) {', '.join(missing)}")
    t = to_naive_timestamps(frame["pickup_datetime"]).to_numpy(dtype="datetime64[s]")
    cols = [pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            for c in ("pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude")]
    return t, cols


def _in_bounds(lat, lon) -> np.ndarray:
    (a, b), (c, d) = NYC_BOUNDS["latitude"], NYC_BOUNDS["longitude"]
    return (lat >= a) & (lat <= b) & (lon >= c) & (lon <= d)


def conditional_median(frame: pd.DataFrame, *, draws: int = _MC_DRAWS) -> np.ndarray:
    """The median of the simulated fare given each row's visible columns (Monte Carlo).

    The hidden route factor, speed factor and extra meter units are integrated with ``draws``
    Latin-hypercube draws (a fixed internal seed, the same draws for every row). Rows whose
    coordinates are recognisably corrupted as in the broken month are handled as a perfect
    predictor would: swapped latitude/longitude are swapped back; all-zero coordinates mean the
    places are unknown, so the median is taken over the simulator's places as well. Any other row
    outside NYC bounds, or with a missing value, gets NaN.
    """
    n = len(frame)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    t, (plat, plon, dlat, dlon) = _visible(frame)
    plat, plon, dlat, dlon = plat.copy(), plon.copy(), dlat.copy(), dlon.copy()
    swapped = _in_bounds(plon, plat) & _in_bounds(dlon, dlat)
    plat[swapped], plon[swapped] = plon[swapped], plat[swapped].copy()
    dlat[swapped], dlon[swapped] = dlon[swapped], dlat[swapped].copy()
    known = _in_bounds(plat, plon) & _in_bounds(dlat, dlon) & ~np.isnat(t)
    zeroed = (plat == 0) & (plon == 0) & (dlat == 0) & (dlon == 0) & ~np.isnat(t)

    idx = np.flatnonzero(known)
    if len(idx):
        trips = _trips(t[idx], plat[idx], plon[idx], dlat[idx], dlon[idx])
        route, speed, extra = _stratified_hidden(draws, _MC_SEED)
        chunk = max(1, 2_000_000 // draws)
        for s in range(0, len(idx), chunk):
            part = trips.take(slice(s, s + chunk))
            fares, _, _ = _meter(part, route[None, :], speed[None, :], extra[None, :], expand=True)
            out[idx[s:s + chunk]] = np.median(fares, axis=1)

    zidx = np.flatnonzero(zeroed)
    if len(zidx):
        m = _MC_DRAWS_UNKNOWN_PLACES
        rng = np.random.default_rng(_MC_SEED + 1)
        gplat, gplon, gdlat, gdlon = _sample_places(rng, m)
        route, speed, extra = _stratified_hidden(m, _MC_SEED + 2)
        chunk = max(1, 400_000 // m)
        for s in range(0, len(zidx), chunk):  # rows x m (place, hidden) draws
            rows = zidx[s:s + chunk]
            k = len(rows)
            trips = _trips(np.repeat(t[rows], m), np.tile(gplat, k), np.tile(gplon, k),
                           np.tile(gdlat, k), np.tile(gdlon, k))
            fares, _, _ = _meter(trips, np.tile(route, k), np.tile(speed, k), np.tile(extra, k))
            out[rows] = np.median(fares.reshape(k, m), axis=1)
    return out


def noise_floor(frame: pd.DataFrame) -> float:
    """The irreducible MAE: ``conditional_median(frame)`` against ``frame['fare_amount']``.

    Rows the median cannot be given for (NaN, see ``conditional_median``) are left out.
    """
    if "fare_amount" not in frame.columns:
        raise DataError("the frame has no 'fare_amount' column to measure the noise floor on")
    pred = conditional_median(frame)
    y = pd.to_numeric(frame["fare_amount"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(pred) & np.isfinite(y)
    if not ok.any():
        raise DataError("no row of the frame has valid simulator places and a fare")
    return float(np.mean(np.abs(y[ok] - pred[ok])))


def oracle_mae(frame: pd.DataFrame) -> float:
    """MAE of the meter fed with the hidden route and duration: a bound no model can reach.

    Needs the ``oracle_fare`` column of ``TaxiSimulator.month(..., with_hidden=True)``.
    """
    if "oracle_fare" not in frame.columns or "fare_amount" not in frame.columns:
        raise DataError("oracle_mae needs 'fare_amount' and the hidden 'oracle_fare' column",
                        "generate the rows with TaxiSimulator.month(..., with_hidden=True)")
    y = frame["fare_amount"].to_numpy(dtype=float)
    return float(np.mean(np.abs(y - frame["oracle_fare"].to_numpy(dtype=float))))


# ----------------------------------------------------------------------------------------------
# The warehouse
# ----------------------------------------------------------------------------------------------

def write_warehouse(path, start: str = FIRST_MONTH, end: str = LAST_MONTH, *, table: str = "rides",
                    seed: int = 7, rows_per_month: int = DEFAULT_ROWS_PER_MONTH) -> int:
    """Write simulated rides into a DuckDB file, replacing ``table``; return the row count.

    The rows are inserted in one statement from the registered DataFrame, sorted by
    ``pickup_datetime`` so that DuckDB's zone maps prune time-window queries.
    """
    import duckdb

    if not str(table).replace("_", "").isalnum():
        raise SourceError(f"'{table}' is not a plain table name", "use letters, digits and _")
    frame = TaxiSimulator(seed=seed, rows_per_month=rows_per_month).generate(start, end)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
        try:
            con.register("simulated_rides", frame)
            # `table` is checked above to be letters, digits and _
            con.execute(f'CREATE OR REPLACE TABLE "{table}" AS '  # noqa: S608
                        f"SELECT * FROM simulated_rides ORDER BY pickup_datetime")
            con.unregister("simulated_rides")
            counted = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608
            count = counted[0] if counted else 0
        finally:
            con.close()
    except duckdb.Error as exc:
        raise SourceError(f"could not write the simulated warehouse {path}: {exc}",
                          "check that the file is not open in another process") from exc
    return int(count)


def append_month(path, *, table: str = "rides", seed: int = 7, rows_per_month: int = DEFAULT_ROWS_PER_MONTH,
                 attempts: int = 20) -> tuple[str, int]:
    """Append the month after the warehouse's newest ride to it, as a month of fresh data arrives;
    return the month (``YYYY-MM``) and its row count. A reader holding the file (a cycle, the
    data watcher) makes DuckDB refuse the write for a moment: it is tried again."""
    import time

    import duckdb

    if not str(table).replace("_", "").isalnum():
        raise SourceError(f"'{table}' is not a plain table name", "use letters, digits and _")
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"there is no warehouse at {path}", "build the demo first: modelcycle demo")
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.Error as exc:
            if "lock" not in str(exc).lower() or attempt == attempts - 1:
                raise SourceError(f"could not open the warehouse {path}: {exc}",
                                  "check that no other program holds it open for writing") from exc
            time.sleep(0.25)
    try:
        newest = con.execute(f'SELECT max(pickup_datetime) FROM "{table}"').fetchall()  # noqa: S608
        last = pd.Timestamp(newest[0][0]) if newest and newest[0][0] is not None else pd.Timestamp(FIRST_MONTH)
        nxt = (last.to_period("M") + 1)
        frame = TaxiSimulator(seed=seed, rows_per_month=rows_per_month).month(nxt.year, nxt.month)
        frame = frame.sort_values("pickup_datetime")
        con.register("new_rides", frame)
        con.execute(f'INSERT INTO "{table}" SELECT * FROM new_rides')  # noqa: S608
        con.unregister("new_rides")
    finally:
        con.close()
    return f"{nxt.year:04d}-{nxt.month:02d}", len(frame)
