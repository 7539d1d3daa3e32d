from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from modelcycle.config.models import DataConfig
from modelcycle.errors import ConfigError, DataError, EmptyWindowError, SchemaError
from modelcycle.steps import evaluate as ev
from modelcycle.steps.split import chronological
from modelcycle.steps.train import TrainSpec, fit
from modelcycle.steps.validate import check_schema, validate

DATA = DataConfig(timestamp="ts", target="y", columns={"ts": "datetime", "y": "float", "x": "float", "n": "int"},
                  rules={"y": {"min": 0}, "n": {"min": 1, "max": 8}})


def frame(n=200, start="2015-02-01", freq="4h", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    return pd.DataFrame({"ts": pd.date_range(start, periods=n, freq=freq), "x": x,
                         "n": rng.integers(1, 5, n), "y": 2 * x + rng.normal(0, 0.1, n)})


def test_validate_drops_and_counts_per_rule():
    f = frame()
    f.loc[0:4, "y"] = -1.0
    f.loc[5:6, "n"] = 9
    f.loc[7, "x"] = np.nan  # x has no rule: kept
    f.loc[8, "y"] = np.nan  # the target may never be empty
    clean, report = validate(f, DATA, window_start=datetime(2015, 3, 1))
    assert report.rows_in == 200 and report.rows_out == 192
    assert report.dropped == {"y < 0": 5, "n > 8": 2, "y is empty": 1}
    assert clean["ts"].is_monotonic_increasing
    assert report.window_rows_in == int((f.ts >= "2015-03-01").sum())


def test_schema_missing_column_names_it():
    with pytest.raises(SchemaError) as err:
        validate(frame().drop(columns=["x"]), DATA, where="(window 2015-03)")
    assert err.value.column == "x" and err.value.rule == "required"
    assert "column 'x' (window 2015-03) is missing" in err.value.message


def test_predict_schema_check_still_refuses_any_cell_of_the_wrong_type():
    """Records to predict are not a window: check_schema stays strict, one bad cell is an error."""
    f = frame()
    f["x"] = f["x"].astype(str)
    f.loc[3, "x"] = "about 3"
    with pytest.raises(SchemaError) as err:
        check_schema(f, {"x": "float"})
    assert err.value.column == "x" and err.value.rule == "type float"
    assert "'about 3'" in err.value.message


def test_cells_not_of_the_declared_type_drop_their_rows_with_examples():
    f = frame().astype({"x": object, "n": object, "ts": object})
    f.loc[3, "x"] = "about 3"
    f.loc[4, "x"] = "1O.5"
    f.loc[5, "n"] = "three"
    f.loc[6, "n"] = 2.5  # a fraction in an int column
    f.loc[7, "ts"] = "yesterday"
    f.loc[8, "x"] = "NA"  # an empty marker, not a wrong type: x has no rule, the row stays
    clean, report = validate(f, DATA, window_start=datetime(2015, 3, 1))
    assert report.dropped == {"x is not a float": 2, "n is not an int": 2, "ts is not a datetime": 1}
    assert report.rows_in == 200 and report.rows_out == 195
    assert report.examples["x is not a float"] == ["'about 3'", "'1O.5'"]
    assert report.examples["n is not an int"] == ["'three'", "2.5"]
    assert report.examples["ts is not a datetime"] == ["'yesterday'"]
    assert clean["x"].dtype == "float64" and clean["n"].dtype == "int64"
    assert str(clean["ts"].dtype) == "datetime64[ns]" and clean["x"].isna().sum() == 1
    assert "x is not a float: 2 (e.g. 'about 3', '1O.5')" in report.summary()
    assert report.to_dict()["examples"]["n is not an int"] == ["'three'", "2.5"]


def test_type_failures_count_against_the_window():
    f = frame().astype({"y": object})
    window = f.index[f.ts >= "2015-03-01"]
    f.loc[window[:10], "y"] = "n.a."
    _, report = validate(f, DATA, window_start=datetime(2015, 3, 1))
    assert report.dropped == {"y is not a float": 10}
    assert report.window_rows_in == len(window) and report.window_rows_out == len(window) - 10


def test_a_window_whose_rows_all_fail_their_type_is_an_empty_window():
    f = frame().astype({"y": object})
    f.loc[f.ts >= "2015-03-01", "y"] = "about ten"
    with pytest.raises(EmptyWindowError, match="y is not a float"):
        validate(f, DATA, window_start=datetime(2015, 3, 1))


def test_a_column_with_no_value_of_its_type_is_a_schema_error():
    f = frame().astype({"x": object})
    f["x"] = ["about ten", "eleven", None, ""] * 50
    with pytest.raises(SchemaError) as err:
        validate(f, DATA, where="(window 2015-03)")
    assert err.value.column == "x" and err.value.rule == "type float"
    assert ("column 'x' (window 2015-03) should be float, but none of its 100 values is a float, "
            "e.g. 'about ten', 'eleven'") in err.value.message
    assert "`x: str`" in err.value.hint


def test_an_int_column_of_fractions_is_a_schema_error_suggesting_float():
    f = frame()
    f["n"] = f["n"] + 0.5
    with pytest.raises(SchemaError) as err:
        validate(f, DATA)
    assert err.value.column == "n" and err.value.rule == "type int"
    assert "none of its 200 values is a whole number" in err.value.message
    assert "fractions such as 4.5, 2.5, 1.5" in err.value.message
    assert "`n: float`" in err.value.hint


def test_datetime_and_bool_columns_without_any_value_of_their_type():
    data = DataConfig(timestamp="ts", target="y", columns={"ts": "datetime", "y": "float", "ok": "bool"})
    f = frame()[["ts", "y"]].assign(ok=["maybe"] * 200)
    with pytest.raises(SchemaError, match="column 'ok' should be bool, but none of its 200 values is a bool, e.g. 'maybe'"):
        validate(f, data)
    f = f.assign(ok=["yes", "No", "TRUE", "0"] * 50)
    clean, report = validate(f, data)
    assert clean["ok"].tolist()[:4] == [True, False, True, False] and not report.dropped
    f = f.astype({"ts": object})
    f["ts"] = "soon"
    with pytest.raises(SchemaError, match="column 'ts' should be datetime, but none of its 200 values is a datetime, e.g. 'soon'"):
        validate(f, data)


def test_empty_markers_are_empty_not_a_wrong_type():
    f = frame().astype({"y": object, "x": object})
    f.loc[0, "y"] = "NA"
    f.loc[1, "y"] = " "
    f.loc[2, "y"] = "null"
    f.loc[3, "x"] = "N/A"
    clean, report = validate(f, DATA)
    assert report.dropped == {"y is empty": 3}
    assert clean["x"].isna().sum() == 1 and clean["x"].dtype == "float64"


def test_duplicate_rows_are_dropped_keeping_the_first():
    f = frame()
    inside = f.index[f.ts >= "2015-03-01"]
    dup = pd.concat([f, f.loc[inside[:7]], f.loc[[0]]]).reset_index(drop=True)
    dup.loc[len(dup) - 1, "y"] = -1.0  # breaks a rule first: counted there, not as a duplicate
    near = f.loc[[inside[8]]].assign(x=f.loc[inside[8], "x"] + 1e-9)  # not exactly equal: kept
    dup = pd.concat([dup, near]).reset_index(drop=True)
    clean, report = validate(dup, DATA, window_start=datetime(2015, 3, 1))
    assert report.dropped == {"duplicate row": 7, "y < 0": 1}
    assert report.rows_out == 201 and len(clean) == 201
    assert report.window_rows_in == len(inside) + 8 and report.window_rows_out == len(inside) + 1
    assert not clean.duplicated().any()


def test_duplicates_are_judged_on_the_declared_columns_only():
    f = frame()
    twice = pd.concat([f.head(3), f.head(3).assign(extra="different")]).reset_index(drop=True)
    _, report = validate(twice, DATA)
    assert report.dropped == {"duplicate row": 3}


def test_schema_coerces_string_timestamps_and_numeric_text():
    f = frame()
    f["ts"] = f["ts"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    f["x"] = f["x"].astype(str)
    clean, _ = validate(f, DATA)
    assert str(clean["ts"].dtype) == "datetime64[ns]" and clean["x"].dtype == "float64"


def test_nan_flood_in_window_is_an_empty_window_error():
    f = frame()
    f.loc[f.ts >= "2015-03-01", "y"] = np.nan
    with pytest.raises(EmptyWindowError, match="y is empty"):
        validate(f, DATA, window_start=datetime(2015, 3, 1))


def test_chronological_split_never_leaks_the_future():
    f = frame(n=400, start="2015-02-01", freq="3h")
    s = chronological(f, timestamp="ts", window_start=datetime(2015, 3, 1), window_end=datetime(2015, 4, 1),
                      holdout_fraction=0.3)
    assert s.train["ts"].max() < s.holdout["ts"].min()
    window_rows = int(((f.ts >= "2015-03-01") & (f.ts < "2015-04-01")).sum())
    assert abs(len(s.holdout) - 0.3 * window_rows) <= 1
    assert s.history_rows == int((f.ts < "2015-03-01").sum())
    assert (s.holdout["ts"] < "2015-04-01").all()


def test_split_refuses_a_tiny_window():
    f = frame(n=60, start="2015-02-20", freq="12h")
    with pytest.raises(DataError, match="at least 30"):
        chronological(f, timestamp="ts", window_start=datetime(2015, 3, 1), window_end=datetime(2015, 4, 1),
                      holdout_fraction=0.3, window_label="2015-03")


def spec(**kw):
    base = dict(estimator="sklearn.linear_model:LinearRegression", target="y", task="regression",
                input_columns=["ts", "x", "n", "y"], feature_columns=["x"])
    base.update(kw)
    return TrainSpec(**base)


def test_fit_and_evaluate_regression():
    f = frame()
    trained = fit(f, spec())
    assert trained.rows == 200 and trained.fit_seconds >= 0
    pred = trained.model.predict(f.drop(columns=["y"]))
    assert np.allclose(pred, 2 * f["x"], atol=0.1)
    s = ev.evaluate(trained.model, f, target="y", metric="mae")
    assert s.value < 0.15 and s.rows == 200 and len(s.y_pred) == 200
    assert np.isclose(s.value, np.abs(s.y_true - s.y_pred).mean())


def test_fit_reports_bad_estimator_and_params():
    with pytest.raises(ConfigError, match="cannot import module"):
        fit(frame(), spec(estimator="nosuchlib:Model"))
    with pytest.raises(ConfigError, match="does not accept"):
        fit(frame(), spec(params={"no_such_param": 1}))


def test_fit_with_lightgbm_sets_seed_and_is_deterministic():
    f = frame(n=300)
    a = fit(f, spec(estimator="lightgbm:LGBMRegressor", params={"n_estimators": 20}))
    b = fit(f, spec(estimator="lightgbm:LGBMRegressor", params={"n_estimators": 20}))
    raw = f.drop(columns=["y"])
    assert np.array_equal(a.model.predict(raw), b.model.predict(raw))
    assert a.model.estimator.get_params()["random_state"] == 42


def test_classification_metrics():
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    f = pd.DataFrame({"ts": pd.date_range("2015-01-01", periods=300, freq="h"), "x": x,
                      "n": 1, "y": np.where(x > 0, "yes", "no")})
    s = spec(estimator="sklearn.linear_model:LogisticRegression", task="classification")
    trained = fit(f, s)
    assert trained.model.classes == ["no", "yes"]
    acc = ev.evaluate(trained.model, f, target="y", metric="accuracy")
    assert acc.value > 0.95 and ev.METRICS["accuracy"].greater_is_better
    ll = ev.evaluate(trained.model, f, target="y", metric="log_loss")
    assert 0 < ll.value < 0.3
    auc = ev.evaluate(trained.model, f, target="y", metric="roc_auc")
    assert auc.value > 0.99


def test_metric_values_known_answers():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([2.0, 2.0, 3.0, 2.0])
    assert ev.metric_value("mae", y, p) == pytest.approx(0.75)
    assert ev.metric_value("rmse", y, p) == pytest.approx(np.sqrt(5 / 4))
    assert ev.metric_value("r2", y, p) == pytest.approx(1 - 5 / 5)


def test_nan_predictions_are_a_model_error():
    class Broken:
        def predict(self, raw):
            return np.full(len(raw), np.nan)

    from modelcycle.errors import ModelError

    with pytest.raises(ModelError, match="NaN"):
        ev.evaluate(Broken(), frame(), target="y", metric="mae")


def test_text_features_become_categories_with_training_codes():
    rng = np.random.default_rng(3)
    n = 400
    district = rng.choice(["north", "south", "centre"], n)
    f = pd.DataFrame({"ts": pd.date_range("2015-01-01", periods=n, freq="h"), "x": rng.uniform(0, 1, n),
                      "d": pd.array(district, dtype="string"), "n": 1,
                      "y": np.where(district == "centre", 10.0, 0.0)})
    s = spec(estimator="lightgbm:LGBMRegressor", feature_columns=["x", "d"], params={"n_estimators": 30, "min_child_samples": 5})
    trained = fit(f, s)
    assert trained.model.categories == {"d": ["centre", "north", "south"]}
    new = pd.DataFrame({"ts": f.ts[:3], "x": [0.5, 0.5, 0.5], "n": 1, "d": ["centre", "south", "unheard-of"]})
    pred = trained.model.predict(new)
    assert pred[0] > 8 and pred[1] < 2  # the same codes as in training; an unseen value still predicts
