"""Bad input: one-paragraph errors naming the file/field/window, non-zero exit, no traceback,
no promotion, nothing already versioned lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.integration.helpers import assert_clean_failure, cli, head, mutate_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def edit(root: Path, old: str, new: str, name: str = "modelcycle.yaml") -> None:
    p = root / name
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


@pytest.fixture
def with_champion(champion_ws: Path) -> Path:
    """A workspace after `modelcycle run --window 2014-12` (built once per test run, copied for
    each test: see tests/integration/conftest.py)."""
    return champion_ws


def test_misspelt_config_key(taxi_ws, capsys):
    edit(taxi_ws, "  threshold: 2.5", "  treshold: 2.5")
    code, _, err = cli(capsys, "-w", str(taxi_ws), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "modelcycle.yaml", "gate.treshold", "did you mean 'threshold'")
    assert code == 2


def test_source_that_does_not_open(taxi_ws, capsys):
    edit(taxi_ws, "url: .modelcycle/warehouse.duckdb", "url: .modelcycle/nowhere.duckdb")
    code, _, err = cli(capsys, "-w", str(taxi_ws), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "nowhere.duckdb", "does not exist", "source.url")


def test_window_with_no_rows_keeps_everything(with_champion, capsys):
    before = head(with_champion)
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2016-01")
    assert_clean_failure(code, err, "no rows for window 2016-01")
    assert head(with_champion) == before


def test_bad_window_text(taxi_ws, capsys):
    code, _, err = cli(capsys, "-w", str(taxi_ws), "run", "--window", "January")
    assert_clean_failure(code, err, "'January' is not a window", "YYYY-MM")


def test_missing_column(with_champion, capsys):
    mutate_warehouse(with_champion, "ALTER TABLE rides DROP COLUMN passenger_count")
    before = head(with_champion)
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "passenger_count", "missing", "2015-01")
    assert head(with_champion) == before


def test_wrong_type(with_champion, capsys):
    """Text in the fare column for one day of the window: those rows are dropped and counted
    under the column's name, with the value; the cycle runs. (A column with no fare at all
    still stops the cycle: tests/integration/test_data_contract.py.)"""
    import json

    mutate_warehouse(with_champion, "ALTER TABLE rides ALTER COLUMN fare_amount TYPE VARCHAR; "
                      "UPDATE rides SET fare_amount = 'about ten' WHERE pickup_datetime >= '2015-01-10' "
                      "AND pickup_datetime < '2015-01-11'")
    con = duckdb.connect(str(with_champion / ".modelcycle/warehouse.duckdb"), read_only=True)
    one_day = con.execute("SELECT count(*) FROM rides WHERE fare_amount = 'about ten'").fetchone()[0]
    con.close()
    assert one_day > 0
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert code == 0, err
    report = json.loads((with_champion / "reports/validation.json").read_text())
    assert report["dropped"]["fare_amount is not a float"] == one_day
    assert report["examples"]["fare_amount is not a float"] == ["'about ten'"]
    assert report["window_rows_in"] - report["window_rows_out"] >= one_day
    code, out, err = cli(capsys, "-w", str(with_champion), "step", "validate")
    assert code == 0, err
    assert f"fare_amount is not a float: {one_day} (e.g. 'about ten')" in out


def test_nan_flood_does_not_promote(with_champion, capsys):
    """A third of the window's fares empty: rows dropped, counted, the gate refuses to promote."""
    mutate_warehouse(with_champion, "UPDATE rides SET fare_amount = NULL WHERE pickup_datetime >= '2015-01-01' "
                      "AND pickup_datetime < '2015-02-01' AND hash(pickup_datetime) % 3 = 0")
    code, out, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert code == 0, err
    assert "fare_amount is empty" in err or "failed validation" in err
    from modelcycle.config import Workspace
    from modelcycle.registry.workspace import open_registry

    reg = open_registry(Workspace.load(with_champion))
    assert reg.get_alias("taxifare", "champion").version == "1"


def test_all_nan_window_is_an_error(with_champion, capsys):
    mutate_warehouse(with_champion, "UPDATE rides SET fare_amount = NULL WHERE pickup_datetime >= '2015-01-01' "
                      "AND pickup_datetime < '2015-02-01'")
    before = head(with_champion)
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "failed validation", "fare_amount is empty")
    assert head(with_champion) == before


def test_corrupt_champion_artifact(with_champion, capsys):
    pickles = [p for p in (with_champion / ".modelcycle/mlartifacts").rglob("*.pkl")]
    assert pickles
    for p in pickles:
        p.write_bytes(p.read_bytes()[:100])
    before = head(with_champion)
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "champion")
    assert head(with_champion) == before


def test_predict_from_the_champion_and_bad_records(with_champion, capsys, tmp_path):
    import pandas as pd

    code, out, err = cli(capsys, "-w", str(with_champion), "rows", "holdout", "--out", str(tmp_path / "holdout.parquet"))
    assert code == 0 and "holdout rows (from data/holdout.json)" in out, err
    rides = pd.read_parquet(tmp_path / "holdout.parquet").head(5).drop(columns=["fare_amount"])
    rides.to_csv(tmp_path / "rides.csv", index=False)
    code, out, err = cli(capsys, "-w", str(with_champion), "predict", str(tmp_path / "rides.csv"),
                         "--alias", "Production")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].endswith("prediction") and len(lines) == 6
    rides.drop(columns=["pickup_latitude"]).to_csv(tmp_path / "bad.csv", index=False)
    code, _, err = cli(capsys, "-w", str(with_champion), "predict", str(tmp_path / "bad.csv"))
    assert_clean_failure(code, err, "pickup_latitude", "missing")


def test_console_script_help_and_error_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("modelcycle")
    helptext = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert helptext.returncode == 0
    for verb in ("demo", "init", "run", "backtest", "predict", "status", "step", "promote", "doctor"):
        assert verb in helptext.stdout
    proc = subprocess.run([str(exe), "-w", str(tmp_path), "status"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "modelcycle init" in proc.stderr


def git_out(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_duplicated_rows_are_dropped_and_stated_in_the_reasons(with_champion, capsys):
    mutate_warehouse(with_champion, "INSERT INTO rides SELECT * FROM rides WHERE pickup_datetime >= '2015-01-20' "
                      "AND pickup_datetime < '2015-01-22'")
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert code == 0, err
    metrics = json.loads((with_champion / "reports/metrics.json").read_text())
    assert metrics["validation"]["dropped"]["duplicate row"] > 100
    assert any("duplicate row" in r for r in metrics["decision"]["reasons"]), metrics["decision"]["reasons"]


def test_a_detached_head_is_refused_with_the_way_back(with_champion, capsys):
    git_out(with_champion, "checkout", "-q", "--detach")
    before = head(with_champion)
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "detached", "git switch")
    assert head(with_champion) == before


def test_an_uncommitted_params_edit_is_committed_with_the_cycle_that_used_it(with_champion, capsys):
    params = with_champion / "params.yaml"
    params.write_text(params.read_text().replace("holdout_fraction: 0.3", "holdout_fraction: 0.25"))
    code, _, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert code == 0, err
    tag = "modelcycle/taxifare/2015-01"
    assert "holdout_fraction: 0.25" in git_out(with_champion, "show", f"{tag}:params.yaml")
    assert "uncommitted changes to params.yaml" in git_out(with_champion, "log", "-1", "--format=%B", tag)
    assert git_out(with_champion, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_literal_password_in_the_config_is_never_committed(with_champion, capsys):
    edit(with_champion, "backends:", "backends:\n  prefect_api_url: null\n  mlflow_registry_uri: "
         "postgresql+psycopg://me:hunter2@127.0.0.1:1/mlflow")
    before = head(with_champion)
    code, out, err = cli(capsys, "-w", str(with_champion), "run", "--window", "2015-01")
    assert_clean_failure(code, err, "backends.mlflow_registry_uri", "${")
    assert "hunter2" not in out + err
    assert head(with_champion) == before


def test_lost_dvc_cache_and_remote_are_seen_by_doctor(with_champion, capsys):
    shutil.rmtree(with_champion / ".dvc" / "cache")
    shutil.rmtree(with_champion / ".modelcycle" / "dvc-remote")
    code, out, err = cli(capsys, "-w", str(with_champion), "doctor")
    assert code == 1, out + err
    assert "neither the DVC cache nor the remote" in out, out
