"""The simulated city behind the taxi example: the meter's fare rules, where and when rides
start and end, traffic speeds, and the meter itself (:func:`_meter`), shared by the simulator
(to make rides) and by its noise floor (to price the hidden routes a row does not show)."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

import numpy as np

from modelcycle.errors import SourceError
from modelcycle.examples.taxifare.features import (
    GRID_ANGLE_DEG,
    KM_PER_DEG_LAT,
    KM_PER_DEG_LON,
    LANDMARKS,
    grid_coordinates,
    grid_distance_km,
)
from modelcycle.steps.features import haversine_km


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
