"""The taxi ride simulator: schema, determinism, regimes, honesty of the floor, the warehouse."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from modelcycle.errors import DataError, SourceError
from modelcycle.examples.taxifare import city
from modelcycle.examples.taxifare import simulator as sim_mod
from modelcycle.examples.taxifare.features import taxi_features
from modelcycle.examples.taxifare.simulator import (
    DEFAULT_MODEL_PARAMS,
    DEFAULT_ROWS_PER_MONTH,
    NYC_BOUNDS,
    SCHEMA,
    TaxiSimulator,
    conditional_median,
    noise_floor,
    oracle_mae,
    regime_changes,
    write_warehouse,
)
from modelcycle.steps.features import haversine_km

ROWS = 2_000


@pytest.fixture(scope="module")
def sim() -> TaxiSimulator:
    return TaxiSimulator(seed=7, rows_per_month=ROWS)


@pytest.fixture(scope="module")
def months(sim) -> dict[str, pd.DataFrame]:
    wanted = ["2012-08", "2012-10", "2014-12", "2015-01", "2015-02", "2015-03", "2015-04",
              "2015-05", "2015-06"]
    return {m: sim.month(int(m[:4]), int(m[5:]), with_hidden=True) for m in wanted}


def in_bounds(frame: pd.DataFrame) -> np.ndarray:
    (a, b), (c, d) = NYC_BOUNDS["latitude"], NYC_BOUNDS["longitude"]
    ok = np.ones(len(frame), dtype=bool)
    for end in ("pickup", "dropoff"):
        lat, lon = frame[f"{end}_latitude"], frame[f"{end}_longitude"]
        ok &= ((lat >= a) & (lat <= b) & (lon >= c) & (lon <= d)).to_numpy()
    return ok


def mae(y, p) -> float:
    return float(np.mean(np.abs(np.asarray(y, dtype=float) - np.asarray(p, dtype=float))))


# -- schema -----------------------------------------------------------------------------------

def test_schema_columns_and_dtypes(sim):
    frame = sim.month(2015, 1)
    assert list(frame.columns) == list(SCHEMA)
    assert {c: str(t) for c, t in frame.dtypes.items()} == SCHEMA
    assert len(frame) == ROWS
    assert frame["pickup_datetime"].dt.tz is None
    assert frame["pickup_datetime"].is_monotonic_increasing
    assert frame["pickup_datetime"].min() >= pd.Timestamp("2015-01-01")
    assert frame["pickup_datetime"].max() < pd.Timestamp("2015-02-01")
    assert frame["passenger_count"].between(1, 6).all()
    assert (frame["fare_amount"] >= 2.5).all() and frame["fare_amount"].notna().all()
    assert frame.index.equals(pd.RangeIndex(ROWS))


def test_hidden_columns_only_on_request(months, sim):
    assert list(months["2015-01"].columns) == list(SCHEMA) + sim_mod.HIDDEN_COLUMNS
    assert "route_km" not in sim.month(2015, 1).columns


def test_geography_is_manhattan_heavy_with_some_airport_trips(months):
    frame = months["2015-01"]
    feats = taxi_features(frame)
    manhattan = city._in_manhattan(frame["pickup_latitude"], frame["pickup_longitude"])
    assert 0.7 < manhattan.mean() < 0.95
    airport = np.zeros(len(frame), dtype=bool)
    for name in ("jfk", "lga", "ewr"):
        airport |= (feats[f"pickup_{name}_km"] < 3).to_numpy() | (feats[f"dropoff_{name}_km"] < 3).to_numpy()
    assert 0.02 < airport.mean() < 0.12
    assert 2.0 < feats["distance_km"].median() < 5.0


def test_generate_full_default_range_counts_and_order():
    frame = TaxiSimulator(rows_per_month=50).generate()
    assert len(frame) == 78 * 50
    assert frame["pickup_datetime"].is_monotonic_increasing
    assert frame["pickup_datetime"].min() >= pd.Timestamp("2009-01-01")
    assert frame["pickup_datetime"].max() < pd.Timestamp("2015-07-01")
    assert TaxiSimulator().rows_per_month == DEFAULT_ROWS_PER_MONTH


def test_bad_arguments_raise_source_errors(sim):
    with pytest.raises(SourceError):
        sim.generate("2015-03", "2015-01")
    with pytest.raises(SourceError):
        sim.generate("March", "2015-04")
    with pytest.raises(SourceError):
        sim.month(2015, 13)
    with pytest.raises(SourceError):
        TaxiSimulator(rows_per_month=0)


# -- determinism ------------------------------------------------------------------------------

def test_a_month_alone_equals_the_month_inside_a_range(sim):
    rng = sim.generate("2014-12", "2015-03")
    feb = rng[rng["pickup_datetime"].dt.strftime("%Y-%m") == "2015-02"].reset_index(drop=True)
    pd.testing.assert_frame_equal(feb, sim.month(2015, 2))


def test_same_seed_same_rows_different_seed_different_rows(sim):
    again = TaxiSimulator(seed=7, rows_per_month=ROWS).month(2015, 4)
    pd.testing.assert_frame_equal(again, sim.month(2015, 4))
    other = TaxiSimulator(seed=8, rows_per_month=ROWS).month(2015, 4)
    assert not other["fare_amount"].equals(again["fare_amount"])
    assert not np.allclose(other["pickup_latitude"], again["pickup_latitude"])


# -- regimes ----------------------------------------------------------------------------------

def test_regime_changes_are_exposed():
    changes = regime_changes()
    by_window = {c["window"]: c for c in changes}
    assert by_window["2015-03"]["kind"] == "fare_change"
    assert by_window["2015-05"]["kind"] == "broken_data"
    assert by_window["2012-09"]["kind"] == "fare_change"
    assert all(c["description"] for c in changes)
    changes[0]["window"] = "tampered"
    assert regime_changes()[0]["window"] != "tampered"
    assert TaxiSimulator().regime_changes() == regime_changes()


def fare_per_km(frame: pd.DataFrame) -> float:
    frame = frame[in_bounds(frame)]
    km = haversine_km(frame["pickup_latitude"], frame["pickup_longitude"],
                      frame["dropoff_latitude"], frame["dropoff_longitude"])
    long = km > 1.0
    return float(np.median(frame["fare_amount"][long] / km[long]))


def test_fare_changes_are_visible_in_the_data(months):
    base = fare_per_km(months["2015-02"])
    assert fare_per_km(months["2015-03"]) / base > 1.12  # the 2015-03 fare-rule change
    assert 0.95 < fare_per_km(months["2015-01"]) / base < 1.05  # an ordinary month
    assert 0.95 < fare_per_km(months["2015-04"]) / fare_per_km(months["2015-03"]) < 1.05
    assert fare_per_km(months["2012-10"]) / fare_per_km(months["2012-08"]) > 1.12  # 2012-09
    mean_rise = months["2015-03"]["fare_amount"].mean() / months["2015-02"]["fare_amount"].mean()
    assert 1.12 < mean_rise < 1.35


def test_jfk_flat_fare_follows_the_rules(months):
    for window, flat in (("2012-08", 45.0), ("2014-12", 52.0), ("2015-04", 52.0)):
        frame = months[window]
        feats = taxi_features(frame)
        to_jfk = (feats["dropoff_jfk_km"] < 1.5) & city._in_manhattan(
            frame["pickup_latitude"], frame["pickup_longitude"])
        assert to_jfk.sum() > 5
        assert (frame.loc[to_jfk, "fare_amount"] == flat).all()


def test_broken_month_fails_bounds_checks(months):
    broken = months["2015-05"]
    share = 1.0 - in_bounds(broken).mean()
    assert 0.25 < share < 0.35
    zeroed = (broken["pickup_latitude"] == 0) & (broken["dropoff_longitude"] == 0)
    assert 0.1 < zeroed.mean() < 0.2
    for window in ("2015-04", "2015-06", "2015-01", "2012-10"):
        assert in_bounds(months[window]).all()


# -- honesty: the floor -----------------------------------------------------------------------

def test_floor_is_between_oracle_and_naive_predictors(months):
    for window in ("2015-01", "2015-04", "2014-12"):
        frame = months[window]
        floor = noise_floor(frame)
        assert 1.6 < floor < 2.3, (window, floor)
        assert oracle_mae(frame) < 0.5 * floor
        assert floor < mae(frame["fare_amount"], np.full(len(frame), frame["fare_amount"].median()))
        km = taxi_features(frame)[["distance_km"]].to_numpy()
        slope, intercept = np.polyfit(km[:, 0], frame["fare_amount"], 1)
        assert mae(frame["fare_amount"], intercept + slope * km[:, 0]) > 1.25 * floor
    # Before the 2012 increase time was charged at 20 cents a minute: less noise.
    assert noise_floor(months["2012-08"]) < noise_floor(months["2015-01"])


def test_conditional_median_beats_perturbed_versions_of_itself(months):
    frame = months["2015-02"]
    best = conditional_median(frame)
    y = frame["fare_amount"]
    base = mae(y, best)
    assert base == pytest.approx(noise_floor(frame))
    for other in (best + 0.5, best - 0.5, best * 1.05, best * 0.95,
                  best + np.random.default_rng(0).normal(0, 0.5, len(best))):
        assert mae(y, other) > base
    # More Monte Carlo draws barely move it: the estimate has converged.
    assert mae(y, conditional_median(frame, draws=1600)) == pytest.approx(base, abs=0.02)


def test_floor_uses_each_rows_time_to_pick_the_regime(months):
    mixed = pd.concat([months["2015-02"].iloc[::4], months["2015-03"].iloc[::4]], ignore_index=True)
    shuffled = mixed.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(conditional_median(shuffled),
                               pd.Series(conditional_median(mixed), index=mixed.index)[shuffled.index])
    feb, mar = conditional_median(months["2015-02"]), conditional_median(months["2015-03"])
    assert np.median(mar) > np.median(feb) + 1.0


def test_floor_on_a_cleaned_subset_and_on_corrupted_rows(months):
    broken = months["2015-05"]
    clean = broken[in_bounds(broken)]
    assert 1.6 < noise_floor(clean) < 2.4
    assert 1.6 < noise_floor(clean.iloc[::3]) < 2.4
    # Swapped coordinates are recognised and swapped back: same prediction as the clean row.
    april = months["2015-04"].iloc[:300]
    swapped = april.copy()
    swapped["pickup_latitude"], swapped["pickup_longitude"] = april["pickup_longitude"], april["pickup_latitude"]
    swapped["dropoff_latitude"], swapped["dropoff_longitude"] = april["dropoff_longitude"], april["dropoff_latitude"]
    np.testing.assert_allclose(conditional_median(swapped), conditional_median(april))
    # Zeroed places: only the time is known, so the prediction is worse but still finite.
    zero = april.iloc[:40].copy()
    zero[["pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"]] = 0.0
    z = conditional_median(zero)
    assert np.isfinite(z).all()
    assert mae(zero["fare_amount"], z) > mae(zero["fare_amount"], conditional_median(april.iloc[:40]))
    # Anything else outside NYC gets no prediction and is left out of the floor.
    odd = april.iloc[:10].copy()
    odd.loc[odd.index[:3], "pickup_latitude"] = 45.0
    odd.loc[odd.index[3], "pickup_longitude"] = np.nan
    cm = conditional_median(odd)
    assert np.isnan(cm[:4]).all() and np.isfinite(cm[4:]).all()
    assert noise_floor(odd) == pytest.approx(mae(odd["fare_amount"][4:], cm[4:]))
    # The floor on the whole broken month (corrupted rows included) is higher than on clean rows.
    assert noise_floor(broken) > noise_floor(clean)


def test_floor_and_oracle_refuse_frames_they_cannot_use(months):
    frame = months["2015-01"]
    with pytest.raises(DataError):
        oracle_mae(frame[list(SCHEMA)])
    with pytest.raises(DataError):
        noise_floor(frame.drop(columns=["fare_amount"]))
    with pytest.raises(DataError):
        conditional_median(frame.drop(columns=["pickup_latitude"]))
    assert conditional_median(frame.iloc[:0]).shape == (0,)


def test_loose_calibration_stale_model_fails_after_the_fare_change(sim):
    """A loose, fast version of scripts/calibrate_simulator.py (fewer rows and trees)."""
    lgb = pytest.importorskip("lightgbm")
    small = TaxiSimulator(seed=7, rows_per_month=1500)
    data = small.generate("2014-09", "2015-03")
    march = data["pickup_datetime"] >= pd.Timestamp("2015-03-01")
    cut = int(0.7 * march.sum())
    mar_idx = np.flatnonzero(march.to_numpy())
    holdout = data.iloc[mar_idx[cut:]]
    params = {**DEFAULT_MODEL_PARAMS, "n_estimators": 80, "learning_rate": 0.2, "n_jobs": 1}
    stale = lgb.LGBMRegressor(**params).fit(taxi_features(data[~march]), data["fare_amount"][~march])
    fresh_rows = data.iloc[np.concatenate([np.flatnonzero(~march.to_numpy()), mar_idx[:cut]])]
    fresh = lgb.LGBMRegressor(**params).fit(taxi_features(fresh_rows), fresh_rows["fare_amount"])
    floor = noise_floor(holdout)
    x_hold = taxi_features(holdout)
    stale_mae = mae(holdout["fare_amount"], stale.predict(x_hold))
    fresh_mae = mae(holdout["fare_amount"], fresh.predict(x_hold))
    assert stale_mae > 1.3 * floor and stale_mae > 2.5
    assert fresh_mae < 1.3 * floor < stale_mae
    assert fresh_mae > floor * 0.97  # nobody beats the floor by more than sampling noise


# -- warehouse --------------------------------------------------------------------------------

def test_warehouse_round_trip(tmp_path):
    path = tmp_path / "sub" / "warehouse.duckdb"
    n = write_warehouse(path, "2015-02", "2015-03", rows_per_month=300)
    assert n == 600
    expected = TaxiSimulator(seed=7, rows_per_month=300).generate("2015-02", "2015-03")
    with duckdb.connect(str(path), read_only=True) as con:
        back = con.execute("SELECT * FROM rides ORDER BY pickup_datetime").df()
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'rides'").fetchall())
        in_march = con.execute("SELECT count(*) FROM rides WHERE pickup_datetime >= '2015-03-01' "
                               "AND pickup_datetime < '2015-04-01'").fetchone()[0]
    assert types["pickup_datetime"] == "TIMESTAMP" and types["passenger_count"] == "BIGINT"
    assert in_march == 300
    assert {c: str(t) for c, t in back.dtypes.items()} == SCHEMA
    pd.testing.assert_frame_equal(back.sort_values("pickup_datetime", kind="stable").reset_index(drop=True),
                                  expected.sort_values("pickup_datetime", kind="stable").reset_index(drop=True))
    # Create or replace: a second write replaces the table, another table name adds one.
    assert write_warehouse(path, "2015-01", "2015-01", rows_per_month=100) == 100
    assert write_warehouse(path, "2015-01", "2015-01", table="other", rows_per_month=50, seed=3) == 50
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM rides").fetchone()[0] == 100
        assert con.execute("SELECT count(*) FROM other").fetchone()[0] == 50
    with pytest.raises(SourceError):
        write_warehouse(path, "2015-01", "2015-01", table="rides; drop table x", rows_per_month=10)
