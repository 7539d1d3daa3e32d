from pathlib import Path

import pytest

from modelcycle.config import Window, Workspace, load_config, load_params, month_range
from modelcycle.errors import ConfigError, WorkspaceError

GOOD = """
name: rides
source: {kind: files, url: "data/*.csv"}
data:
  timestamp: ts
  target: y
  columns: {ts: datetime, y: float, x: float}
  rules: {y: {min: 0}}
metric: mae
gate: {threshold: 2.5}
"""


def write(tmp_path: Path, text: str, name: str = "modelcycle.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_config_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.name == "rides"
    assert cfg.gate.min_effect == 0.01 and cfg.gate.test == "bootstrap" and cfg.gate.resamples == 2000
    assert cfg.backends.mlflow_tracking_uri == "sqlite:///.modelcycle/mlflow.db"
    assert cfg.model.estimator == "lightgbm:LGBMRegressor"


def test_misspelt_key_names_key_file_and_suggestion(tmp_path):
    path = write(tmp_path, GOOD.replace("threshold", "treshold"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text
    assert "gate.treshold: unknown key (did you mean 'threshold'?)" in text
    assert "gate.threshold: required but missing" in text


def test_missing_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match="metric: required but missing"):
        load_config(write(tmp_path, GOOD.replace("metric: mae\n", "")))


def test_target_must_be_a_declared_column(tmp_path):
    with pytest.raises(ConfigError, match="target column 'price' is not listed"):
        load_config(write(tmp_path, GOOD.replace("target: y", "target: price")))


def test_metric_must_fit_task(tmp_path):
    with pytest.raises(ConfigError, match="does not fit a regression task"):
        load_config(write(tmp_path, GOOD.replace("metric: mae", "metric: accuracy")))


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(write(tmp_path, "name: [unclosed\n"))


def test_params_defaults_and_window(tmp_path):
    p = load_params(write(tmp_path, "window: 2015-03\nmodel: {n_estimators: 10}\n", "params.yaml"))
    assert p.window == "2015-03" and p.data.history_months == 6 and p.model == {"n_estimators": 10}
    with pytest.raises(ConfigError, match="split.holdout_fraction"):
        load_params(write(tmp_path, "split: {holdout_fraction: 1.5}\n", "params.yaml"))


def test_workspace_discovery_and_backend_resolution(tmp_path, monkeypatch):
    write(tmp_path, GOOD)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    ws = Workspace.load(sub)
    assert ws.root == tmp_path.resolve()
    assert ws.tracking_uri == f"sqlite:///{tmp_path.resolve()}/.modelcycle/mlflow.db"
    assert ws.artifact_location.startswith("file://")
    assert ws.prefect_api_url is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team:5000")
    assert ws.tracking_uri == "http://mlflow.team:5000"
    assert ws.backend_origins()["mlflow"] == "$MLFLOW_TRACKING_URI"


def test_no_workspace_is_a_clear_error(tmp_path):
    with pytest.raises(WorkspaceError, match="modelcycle init"):
        Workspace.load(tmp_path)


def test_windows():
    w = Window.parse("2015-03")
    assert (w.start.month, w.end.month, w.end.year) == (3, 4, 2015)
    assert w.history_start(6).isoformat() == "2014-09-01T00:00:00"
    assert Window.parse("2014-12").next().label == "2015-01"
    r = Window.parse("2015-03-01..2015-03-16")
    assert (r.end - r.start).days == 15 and not r.is_month
    assert [x.label for x in month_range("2014-11", "2015-02")] == ["2014-11", "2014-12", "2015-01", "2015-02"]
    for bad in ("2015-13", "March", "2015-03-16..2015-03-01"):
        with pytest.raises(ConfigError):
            Window.parse(bad)
    with pytest.raises(ConfigError, match="before"):
        month_range("2015-06", "2015-01")


def test_an_older_simulation_section_is_read_as_the_taxi_reference(tmp_path):
    sim = "simulation:\n  seed: 3\n  rows_per_month: 1000\n  start: '2009-01'\n  end: '2015-06'\n"
    cfg = load_config(write(tmp_path, GOOD + sim))
    assert cfg.reference is not None
    assert cfg.reference.factory == "modelcycle.examples.taxifare.scenario:TaxiReference"
    assert cfg.reference.params == {"seed": 3, "rows_per_month": 1000}
    assert load_config(write(tmp_path, GOOD + "simulation:\n")).reference is None


@pytest.mark.parametrize(("extra", "message"), [
    ("simulation: {seed: 3, rows: 5}\n", "`simulation` has unknown key(s) rows"),
    ("simulation: 5\n", "`simulation` must be a mapping"),
    ("simulation: {seed: 3}\nreference: {factory: 'a:b'}\n", "give `reference` or the older `simulation`, not both"),
])
def test_a_broken_older_simulation_section_is_named(tmp_path, extra, message):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and str(path) in str(err.value)
