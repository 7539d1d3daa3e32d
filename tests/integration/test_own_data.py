"""Bring your own data: a CSV glob becomes a workspace whose cycles run for real."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.integration.helpers import cli, sales

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_csv_workspace_end_to_end(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    frame = sales()
    frame.iloc[:3000].to_csv(data / "sales-a.csv", index=False)
    frame.iloc[3000:].to_csv(data / "sales-b.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "init", "prices", "--source", "data/*.csv", "--timestamp", "sold_at",
                         "--target", "price", "--threshold", "25000")
    assert code == 0, err
    config = (tmp_path / "prices/modelcycle.yaml").read_text()
    assert "url: ../data/*.csv" in config
    for line in ("sold_at: datetime", "size_m2: float", "rooms: int", "district: str", "price: float"):
        assert line in config

    code, out, err = cli(capsys, "-w", str(tmp_path / "prices"), "run", "--window", "2024-01")
    assert code == 0, err
    assert "promote" in out and "v1" in out
    code, out, err = cli(capsys, "-w", str(tmp_path / "prices"), "run")  # the next month
    assert code == 0, err
    assert "2024-02" in out

    frame.drop(columns=["price"]).head(4).to_json(tmp_path / "new.json", orient="records")
    code, out, err = cli(capsys, "-w", str(tmp_path / "prices"), "predict", str(tmp_path / "new.json"),
                         "-o", str(tmp_path / "pred.csv"))
    assert code == 0, err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 4 and pred["prediction"].between(50_000, 600_000).all()


def test_init_names_missing_options_and_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sales(100).to_csv(tmp_path / "s.csv", index=False)
    code, _, err = cli(capsys, "init", "p", "--source", "s.csv", "--timestamp", "sold_at", "--target", "price")
    assert code == 2 and "--threshold" in err and "Traceback" not in err
    code, _, err = cli(capsys, "init", "p", "--source", "s.csv", "--timestamp", "sold_at", "--target", "cost",
                       "--threshold", "1")
    assert code == 2 and "no column 'cost'" in err and "price" in err


FEATURES_PY = '''
import pandas as pd


def build(frame):
    return pd.DataFrame({"size": frame["size_m2"].astype(float), "rooms": frame["rooms"].astype(float),
                         "centre": (frame["district"] == "centre").astype(float)})
'''


def test_workspace_feature_module_is_imported_and_shipped_in_the_model(tmp_path, capsys, monkeypatch):
    import json
    import os
    import subprocess
    import sys

    data = tmp_path / "data"
    data.mkdir()
    frame = sales()
    frame.to_csv(data / "sales.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "init", "prices", "--source", "data/*.csv", "--timestamp", "sold_at",
                       "--target", "price", "--threshold", "25000")
    assert code == 0, err
    ws = tmp_path / "prices"
    (ws / "features.py").write_text(FEATURES_PY)
    cfg = ws / "modelcycle.yaml"
    cfg.write_text(cfg.read_text().replace("  builder: null", "  builder: features:build"))
    monkeypatch.chdir(tmp_path)  # not the workspace: the module must be found without the cwd
    code, out, err = cli(capsys, "-w", str(ws), "run", "--window", "2024-01")
    assert code == 0, err

    from modelcycle.config import Workspace

    rides = frame.drop(columns=["price"]).head(3)
    rides.to_json(tmp_path / "x.json", orient="records")
    script = ("import mlflow, pandas as pd, json, sys; "
              "m = mlflow.pyfunc.load_model('models:/prices@champion'); "
              "print(json.dumps([float(v) for v in m.predict(pd.read_json(sys.argv[1], orient='records'))]))")
    env = {**os.environ, "MLFLOW_TRACKING_URI": Workspace.load(ws).tracking_uri}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.json")], cwd="/", env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout.strip().splitlines()[-1])) == 3
