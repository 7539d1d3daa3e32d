"""params.yaml `model:` hyper-parameters are checked against the estimator before training."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.config.load import load_params
from modelcycle.errors import ConfigError
from modelcycle.steps.train import TrainSpec, build_estimator, fit


def rows(n=120, classes=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    y = (x > 5).astype(int) if classes else 2 * x + rng.normal(0, 0.1, n)
    return pd.DataFrame({"x": x, "y": y})


def spec(estimator="lightgbm:LGBMRegressor", task="regression", **params):
    return TrainSpec(estimator=estimator, target="y", task=task, input_columns=["x", "y"],
                     feature_columns=["x"], params=params)


def test_misspelt_key_in_params_yaml_names_file_key_estimator_and_suggestion(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("model:\n  n_estimatorz: 300\n", encoding="utf-8")
    params = load_params(tmp_path / "params.yaml")
    with pytest.raises(ConfigError) as err:
        fit(rows(), TrainSpec(estimator="lightgbm:LGBMRegressor", target="y", task="regression",
                              input_columns=["x", "y"], params=dict(params.model)))
    message = err.value.message
    assert "params.yaml" in message and "`model.n_estimatorz`" in message
    assert "lightgbm:LGBMRegressor" in message
    assert "did you mean 'n_estimators'?" in message
    assert "params.yaml" in err.value.hint


def test_lightgbm_native_names_and_aliases_are_accepted():
    est = build_estimator(spec(num_iterations=7, bagging_fraction=0.8, bagging_freq=1, min_data_in_leaf=3,
                               lambda_l1=0.1, num_leaves=5))
    assert est.get_params()["num_iterations"] == 7 and est.get_params()["min_data_in_leaf"] == 3
    # the defaults modelcycle adds stay as they were
    assert est.get_params()["random_state"] == 42 and est.get_params()["verbose"] == -1


def test_lightgbm_misspelt_native_name_suggests_the_native_one():
    with pytest.raises(ConfigError, match=r"`model.bagging_fractoin`.*did you mean 'bagging_fraction'\?"):
        build_estimator(spec(bagging_fractoin=0.5))


def test_every_unknown_key_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        build_estimator(spec(estimator="lightgbm:LGBMClassifier", task="classification", foo=1,
                             n_estimatorz=2, num_leaves=7))
    assert "2 problems" in err.value.message
    assert "`model.foo`" in err.value.message and "`model.n_estimatorz`" in err.value.message
    assert "num_leaves" not in err.value.message


def test_text_for_a_number_fails_before_training_naming_key_value_and_kind(monkeypatch):
    import lightgbm

    def never(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(lightgbm.LGBMRegressor, "fit", never)
    with pytest.raises(ConfigError) as err:
        fit(rows(), spec(n_estimators="ten"))
    message = err.value.message
    assert "`model.n_estimators`" in message and "'ten'" in message and "a whole number" in message


def test_number_written_as_yaml_text_gets_a_yaml_hint(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("model:\n  learning_rate: 1e-3\n", encoding="utf-8")
    params = load_params(tmp_path / "params.yaml")
    assert params.model["learning_rate"] == "1e-3"  # PyYAML (YAML 1.1) reads it as text
    with pytest.raises(ConfigError) as err:
        build_estimator(spec(**params.model))
    assert "`model.learning_rate`" in err.value.message and "a number" in err.value.message
    assert "learning_rate: 0.001" in err.value.hint


def test_quoted_bool_is_refused_with_the_unquoted_spelling():
    with pytest.raises(ConfigError) as err:
        build_estimator(spec(estimator="sklearn.ensemble:RandomForestRegressor", bootstrap="false"))
    assert "`model.bootstrap`" in err.value.message and "true or false" in err.value.message
    assert "bootstrap: false" in err.value.hint


def test_sklearn_estimators_take_their_parameters_including_text_options():
    rf = build_estimator(spec(estimator="sklearn.ensemble:RandomForestRegressor", n_estimators=5,
                              max_features="sqrt", bootstrap=False, max_depth=3))
    assert rf.get_params()["max_features"] == "sqrt" and rf.get_params()["random_state"] == 42
    lr = build_estimator(spec(estimator="sklearn.linear_model:LogisticRegression", task="classification",
                              C=0.5, solver="liblinear", class_weight="balanced", max_iter=50))
    assert lr.get_params()["solver"] == "liblinear"
    trained = fit(rows(classes=True), spec(estimator="sklearn.linear_model:LogisticRegression",
                                           task="classification", C=0.5))
    assert trained.model.classes == [0, 1]


def test_sklearn_misspellings_of_keys_and_of_text_options():
    with pytest.raises(ConfigError, match=r"`model.c`.*LogisticRegression.*did you mean 'C'\?"):
        build_estimator(spec(estimator="sklearn.linear_model:LogisticRegression", c=1.0))
    with pytest.raises(ConfigError) as err:
        build_estimator(spec(estimator="sklearn.ensemble:RandomForestRegressor", max_features="sqr"))
    assert "`model.max_features`" in err.value.message and "did you mean 'sqrt'?" in err.value.message
    with pytest.raises(ConfigError, match=r"`model.n_jobs`.*'four'.*a whole number"):
        build_estimator(spec(estimator="sklearn.ensemble:RandomForestRegressor", n_jobs="four"))


class KwargsModel:
    """An estimator that takes **kwargs and publishes no full list of them."""

    def __init__(self, depth: int = 3, rate: float = 0.1, **kwargs):
        self.depth, self.rate, self.kwargs = depth, rate, kwargs


def test_kwargs_estimator_refuses_only_near_misses():
    path = f"{__name__}:KwargsModel"
    est = build_estimator(spec(estimator=path, depth=5, tree_method="hist", colsample=0.5))
    assert est.kwargs == {"tree_method": "hist", "colsample": 0.5, "random_state": 42}
    with pytest.raises(ConfigError, match=r"`model.dpeth`.*did you mean 'depth'\?"):
        build_estimator(spec(estimator=path, dpeth=5))
    with pytest.raises(ConfigError, match=r"`model.rate`.*'fast'.*a number"):
        build_estimator(spec(estimator=path, rate="fast"))
