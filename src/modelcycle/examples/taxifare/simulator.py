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

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelcycle.errors import DataError, SourceError
from modelcycle.examples.taxifare.features import (
    GRID_ANGLE_DEG,
    KM_PER_DEG_LAT,
    KM_PER_DEG_LON,
    LANDMARKS,
    grid_coordinates,
    grid_distance_km,
)
from modelcycle.steps.features import haversine_km, to_naive_timestamps

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


@dataclass(frozen=True)
class FareRules:
    """One regime of the taxi meter (amounts in dollars)."""

    name: str
    effective: str  # first day (inclusive), ISO date
    initial_charge: float
    unit_price: float  # price of one unit: 1/5 mile driven, or ``time_unit_seconds`` when slow
    time_unit_seconds: float
    night_surcharge: float  # 8 pm - 6 am
    peak_surcharge: float  # weekdays 4 pm - 8 pm
    jfk_flat_fare: float  # JFK <-> Manhattan, either direction
    newark_surcharge: float  # trips to or from Newark airport
    ride_surcharge: float = 0.0  # on every metered ride


#: The meter's regimes, oldest first. The first two are the real TLC rates (approximately); the
#: third is the simulated 2015-03 fare-rule change the demo must notice. Positional fields:
#: name, effective, initial_charge, unit_price, time_unit_seconds, night_surcharge,
#: peak_surcharge, jfk_flat_fare, newark_surcharge, ride_surcharge.
FARE_RULES: list[FareRules] = [
    FareRules("tlc-2004", "2009-01-01", 2.50, 0.40, 120.0, 0.50, 1.00, 45.00, 15.00),
    FareRules("tlc-2012", "2012-09-04", 2.50, 0.50, 60.0, 0.50, 1.00, 52.00, 17.50),
    FareRules("simulated-2015", "2015-03-01", 3.00, 0.55, 60.0, 0.50, 1.00, 52.00, 17.50, 1.00),
]

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


# ----------------------------------------------------------------------------------------------
# The world: places, times, speeds
# ----------------------------------------------------------------------------------------------

# Hotspots: (weight, latitude, longitude, sd along the avenues km, sd across km).
_HOTSPOTS = np.array(
    [
        (0.28, 40.7549, -73.9840, 1.3, 0.7),  # Midtown
        (0.12, 40.7736, -73.9566, 1.2, 0.5),  # Upper East Side
        (0.09, 40.7870, -73.9754, 1.2, 0.5),  # Upper West Side
        (0.15, 40.7380, -73.9980, 1.0, 0.7),  # Chelsea / Greenwich Village
        (0.07, 40.7230, -73.9850, 0.8, 0.6),  # East Village / Lower East Side
        (0.08, 40.7100, -74.0090, 0.9, 0.5),  # Downtown / Financial District
        (0.04, 40.8100, -73.9500, 1.3, 0.6),  # Harlem
        (0.04, 40.6925, -73.9900, 1.2, 1.2),  # Downtown Brooklyn
        (0.03, 40.7140, -73.9560, 1.0, 1.0),  # Williamsburg
        (0.03, 40.7570, -73.9300, 1.2, 1.2),  # Long Island City / Astoria
    ]
)
_HOTSPOTS[:, 0] /= _HOTSPOTS[:, 0].sum()

# Airports: (latitude, longitude, sd km, radius km of the airport zone).
_AIRPORTS = {
    "jfk": (40.6413, -73.7781, 0.6, 2.5),
    "lga": (40.7769, -73.8740, 0.4, 1.5),
    "ewr": (40.6895, -74.1745, 0.5, 3.0),
}
# Trip kinds: city, then (airport, direction) with probabilities.
_TRIP_KINDS = [(None, "city"), ("jfk", "from"), ("jfk", "to"), ("lga", "from"), ("lga", "to"),
               ("ewr", "to"), ("ewr", "from")]
_TRIP_PROBS = np.array([0.961, 0.008, 0.009, 0.01, 0.01, 0.0015, 0.0005])
_TRIP_PROBS = _TRIP_PROBS / _TRIP_PROBS.sum()
_LOCAL_SHARE = 0.45  # city trips that end near where they began
_LOCAL_SHAPE, _LOCAL_SCALE = 2.0, 0.7  # gamma-distributed length (km) of a local trip

_PASSENGER_PROBS = np.array([0.70, 0.145, 0.04, 0.02, 0.065, 0.03])  # 1..6

# Pickup-time profiles: weekday weights (Monday first) and hourly weights.
_WEEKDAY_WEIGHTS = np.array([0.93, 1.00, 1.03, 1.08, 1.10, 1.08, 0.90])
_HOURS_WEEKDAY = np.array([2.0, 1.2, 0.8, 0.6, 0.6, 0.9, 2.4, 3.9, 4.6, 4.6, 4.3, 4.4,
                           4.7, 4.6, 4.8, 4.6, 4.1, 4.9, 6.0, 6.3, 5.8, 5.6, 5.4, 4.4])
_HOURS_WEEKEND = np.array([5.2, 4.6, 3.9, 3.0, 2.2, 1.2, 1.0, 1.4, 2.1, 3.0, 3.8, 4.4,
                           4.8, 4.9, 4.9, 4.8, 4.7, 4.8, 5.1, 5.2, 5.0, 5.2, 5.6, 5.7])

# Average city speed (km/h) by pickup hour before any other factor.
_SPEED_WEEKDAY = np.array([27.6, 29.8, 30.9, 32.0, 32.0, 29.8, 23.2, 16.6, 12.2, 11.1, 11.1, 11.1,
                           11.1, 11.1, 10.5, 10.5, 11.1, 11.6, 12.8, 15.0, 17.7, 19.9, 22.1, 24.8])
_SPEED_WEEKEND = np.array([24.3, 25.4, 27.6, 28.7, 29.8, 29.8, 28.7, 25.4, 22.1, 18.8, 16.6, 15.0,
                           13.8, 13.3, 13.3, 13.3, 13.3, 13.8, 14.4, 15.5, 17.2, 18.8, 20.4, 22.1])
_GRID_WEIGHT = 1.0  # route base = blend of straight line (1 - w) and street-grid L1 distance (w)
_HIGHWAY_KM, _HIGHWAY_POWER = 5.0, 0.5  # speed x (1 + straight km / _HIGHWAY_KM) ** power
_MIDTOWN_SLOWDOWN, _MIDTOWN_KM = 0.20, 1.5  # speed x (1 - slowdown * gauss(distance to Midtown)) per end
_TRAFFIC_TREND_PER_YEAR = -0.022  # log-speed change per year (slower traffic every year)
_SLOW_KMH = 12.0 * 1.609344  # the meter charges time below 12 mph
_KM_PER_UNIT = 1.609344 / 5.0  # one distance unit = 1/5 mile

# Hidden randomness.
_ROUTE_MEDIAN, _ROUTE_SIGMA = 1.12, 0.13  # route factor, log-normal
_SPEED_SIGMA = 0.23  # speed factor, log-normal with median 1
_EXTRA_UNITS_SCALE = 1.6  # extra units = floor(Exponential(1) * scale); median 1

_EPOCH = np.datetime64("2009-01-01T00:00:00", "s")
_MC_SEED = 20_150_301
_MC_DRAWS = 400
_MC_DRAWS_UNKNOWN_PLACES = 1_600

_RULE_STARTS = np.array([np.datetime64(r.effective, "s") for r in FARE_RULES])


def _parse_month(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", str(text))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise SourceError(f"'{text}' is not a month", "write months as YYYY-MM, e.g. 2015-03")
    return int(match.group(1)), int(match.group(2))


def _month_range(start: str, end: str) -> list[tuple[int, int]]:
    y0, m0 = _parse_month(start)
    y1, m1 = _parse_month(end)
    first, last = y0 * 12 + m0 - 1, y1 * 12 + m1 - 1
    if last < first:
        raise SourceError(f"the month range {start}..{end} is empty", "give start <= end")
    return [(k // 12, k % 12 + 1) for k in range(first, last + 1)]


def _offset_points(lat, lon, d_along, d_across):
    """Move points by km offsets along/across Manhattan's grid."""
    theta = np.radians(GRID_ANGLE_DEG)
    dx = d_along * np.sin(theta) + d_across * np.cos(theta)
    dy = d_along * np.cos(theta) - d_across * np.sin(theta)
    return lat + dy / KM_PER_DEG_LAT, lon + dx / KM_PER_DEG_LON


def _sample_hotspot(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    k = rng.choice(len(_HOTSPOTS), size=n, p=_HOTSPOTS[:, 0])
    h = _HOTSPOTS[k]
    z = rng.standard_normal((2, n))
    return _offset_points(h[:, 1], h[:, 2], z[0] * h[:, 3], z[1] * h[:, 4])


def _sample_places(rng: np.random.Generator, n: int):
    """Pickup and dropoff coordinates of ``n`` rides: (plat, plon, dlat, dlon)."""
    kind = rng.choice(len(_TRIP_KINDS), size=n, p=_TRIP_PROBS)
    plat, plon = _sample_hotspot(rng, n)
    # City trips: half end nearby, the rest at another hotspot.
    dlat, dlon = _sample_hotspot(rng, n)
    local = rng.random(n) < _LOCAL_SHARE
    r = rng.gamma(_LOCAL_SHAPE, _LOCAL_SCALE, n)
    ang = rng.random(n) * 2 * np.pi
    llat, llon = _offset_points(plat, plon, r * np.cos(ang), r * np.sin(ang))
    dlat = np.where(local, llat, dlat)
    dlon = np.where(local, llon, dlon)
    z = rng.standard_normal((2, n))
    for i, (airport, direction) in enumerate(_TRIP_KINDS):
        if airport is None:
            continue
        sel = kind == i
        lat0, lon0, sd, _ = _AIRPORTS[airport]
        alat, alon = lat0 + z[0, sel] * sd / KM_PER_DEG_LAT, lon0 + z[1, sel] * sd / KM_PER_DEG_LON
        if direction == "from":
            plat[sel], plon[sel] = alat, alon
        else:
            dlat[sel], dlon[sel] = alat, alon
    return plat, plon, dlat, dlon


def _sample_times(rng: np.random.Generator, n: int, year: int, month: int) -> np.ndarray:
    """Pickup times (datetime64[s]) of ``n`` rides in a month."""
    first = np.datetime64(f"{year:04d}-{month:02d}-01", "D")
    days = (first + np.timedelta64(32, "D")).astype("datetime64[M]").astype("datetime64[D]") - first
    day_dates = first + np.arange(days.astype(int))
    weekday = (day_dates.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday
    w = _WEEKDAY_WEIGHTS[weekday]
    day = rng.choice(len(day_dates), size=n, p=w / w.sum())
    weekend = weekday[day] >= 5
    u = rng.random(n)
    cum_wd = np.cumsum(_HOURS_WEEKDAY) / _HOURS_WEEKDAY.sum()
    cum_we = np.cumsum(_HOURS_WEEKEND) / _HOURS_WEEKEND.sum()
    hour = np.where(weekend, np.searchsorted(cum_we, u, side="right"),
                    np.searchsorted(cum_wd, u, side="right"))
    hour = np.minimum(hour, 23)
    second = rng.integers(0, 3600, n)
    return day_dates[day].astype("datetime64[s]") + (hour * 3600 + second).astype("timedelta64[s]")


# ----------------------------------------------------------------------------------------------
# The meter
# ----------------------------------------------------------------------------------------------

def _within(lat, lon, place: tuple[float, float, float, float]) -> np.ndarray:
    lat0, lon0, _, radius = place
    return haversine_km(lat, lon, lat0, lon0) <= radius


def _in_manhattan(lat, lon) -> np.ndarray:
    along, across = grid_coordinates(lat, lon)
    return (along > -7.2) & (along < 14.5) & (np.abs(across) < 2.0)


@dataclass
class _Trips:
    """Per-ride quantities the meter needs that follow from the visible columns alone."""

    grid_km: np.ndarray  # street-grid distance the hidden route factor multiplies
    speed_kmh: np.ndarray  # expected speed before the hidden speed factor
    initial: np.ndarray
    unit_price: np.ndarray
    time_unit_s: np.ndarray
    surcharges: np.ndarray
    flat_fare: np.ndarray  # NaN unless a flat-fare trip

    def take(self, idx) -> _Trips:
        return _Trips(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _trips(t: np.ndarray, plat, plon, dlat, dlon) -> _Trips:
    """Meter context of rides at times ``t`` (datetime64[s]) between the given points."""
    plat, plon, dlat, dlon = (np.asarray(a, dtype=float) for a in (plat, plon, dlat, dlon))
    hav = haversine_km(plat, plon, dlat, dlon)
    grid_km = (1.0 - _GRID_WEIGHT) * hav + _GRID_WEIGHT * grid_distance_km(plat, plon, dlat, dlon)

    t = np.asarray(t, dtype="datetime64[s]")
    secs = (t - _EPOCH).astype("int64")
    day = np.floor_divide(secs, 86400)
    hour = (secs - day * 86400) // 3600
    weekday = (day + 3) % 7  # 2009-01-01 was a Thursday; 0 = Monday
    weekend = weekday >= 5
    years = secs / (365.25 * 86400.0)
    doy = (t.astype("datetime64[D]") - t.astype("datetime64[Y]").astype("datetime64[D]")).astype(float)

    speed = np.where(weekend, _SPEED_WEEKEND[hour], _SPEED_WEEKDAY[hour])
    season = (1.0 + 0.04 * np.cos(2 * np.pi * (doy - 200.0) / 365.25)
              - 0.05 * np.exp(-(((doy - 352.0) / 9.0) ** 2)))
    trend = np.exp(_TRAFFIC_TREND_PER_YEAR * years)
    length = (1.0 + hav / _HIGHWAY_KM) ** _HIGHWAY_POWER
    mid_lat, mid_lon = LANDMARKS["midtown"]
    congestion = ((1.0 - _MIDTOWN_SLOWDOWN * np.exp(
        -0.5 * (haversine_km(plat, plon, mid_lat, mid_lon) / _MIDTOWN_KM) ** 2))
        * (1.0 - _MIDTOWN_SLOWDOWN * np.exp(
            -0.5 * (haversine_km(dlat, dlon, mid_lat, mid_lon) / _MIDTOWN_KM) ** 2)))
    speed = speed * season * trend * length * congestion

    regime = np.searchsorted(_RULE_STARTS, t, side="right") - 1
    regime = np.clip(regime, 0, len(FARE_RULES) - 1)

    def rule(field: str) -> np.ndarray:
        return np.array([getattr(r, field) for r in FARE_RULES])[regime]

    night = (hour >= 20) | (hour < 6)
    peak = ~weekend & (hour >= 16) & (hour < 20)
    ewr = _within(plat, plon, _AIRPORTS["ewr"]) | _within(dlat, dlon, _AIRPORTS["ewr"])
    surcharges = (night * rule("night_surcharge") + peak * rule("peak_surcharge")
                  + ewr * rule("newark_surcharge") + rule("ride_surcharge"))
    jfk_p, jfk_d = _within(plat, plon, _AIRPORTS["jfk"]), _within(dlat, dlon, _AIRPORTS["jfk"])
    flat = (jfk_p & _in_manhattan(dlat, dlon)) | (jfk_d & _in_manhattan(plat, plon))
    flat_fare = np.where(flat, rule("jfk_flat_fare"), np.nan)
    return _Trips(grid_km, speed, rule("initial_charge"), rule("unit_price"),
                  rule("time_unit_seconds"), surcharges, flat_fare)


def _meter(trips: _Trips, route_factor, speed_factor, extra_units, *, expand: bool = False):
    """Fares (and route km, minutes) for rides and hidden draws.

    With ``expand`` the trips' arrays (n,) are broadcast against hidden draws of shape (m,),
    giving (n, m) arrays; otherwise all arrays are per ride.
    """
    def col(a):
        return a[:, None] if expand else a

    route_km = np.maximum(col(trips.grid_km) * route_factor, 0.05)
    speed = col(trips.speed_kmh) * speed_factor
    minutes = route_km / speed * 60.0
    slow_s = np.maximum(minutes - route_km / _SLOW_KMH * 60.0, 0.0) * 60.0
    units = np.floor(route_km / _KM_PER_UNIT) + np.floor(slow_s / col(trips.time_unit_s)) + extra_units
    fare = col(trips.initial) + col(trips.unit_price) * units + col(trips.surcharges)
    flat = col(trips.flat_fare)
    fare = np.where(np.isnan(flat), fare, flat)
    return np.round(fare, 2), route_km, minutes


def _hidden_draws(rng: np.random.Generator, n: int):
    route = _ROUTE_MEDIAN * np.exp(_ROUTE_SIGMA * rng.standard_normal(n))
    speed = np.exp(_SPEED_SIGMA * rng.standard_normal(n))
    extra = np.floor(rng.exponential(1.0, n) * _EXTRA_UNITS_SCALE)
    return route, speed, extra


def _stratified_hidden(m: int, seed: int):
    """``m`` draws of the hidden variables by Latin hypercube sampling (fixed seed)."""
    rng = np.random.default_rng(seed)
    nd = statistics.NormalDist()
    u = (np.stack([rng.permutation(m) for _ in range(3)]) + rng.random((3, m))) / m
    z1 = np.array([nd.inv_cdf(x) for x in u[0]])
    z2 = np.array([nd.inv_cdf(x) for x in u[1]])
    route = _ROUTE_MEDIAN * np.exp(_ROUTE_SIGMA * z1)
    speed = np.exp(_SPEED_SIGMA * z2)
    extra = np.floor(-np.log1p(-u[2]) * _EXTRA_UNITS_SCALE)
    return route, speed, extra


_MEDIAN_EXTRA_UNITS = float(np.floor(np.log(2.0) * _EXTRA_UNITS_SCALE))


# ----------------------------------------------------------------------------------------------
# The simulator
# ----------------------------------------------------------------------------------------------

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
