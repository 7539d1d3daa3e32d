"""A workspace that ran on the embedded MLflow store moves to a team's server with
`modelcycle backends migrate`: everything is copied, the old store is left byte for byte, and the
workspace goes on against the server (the server: ``mlflow_server`` of conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.helpers import cli
from tests.unit.cli.conftest import flat

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and bytes)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


LOAD = textwrap.dedent("""
    import json, sys
    import mlflow, pandas as pd
    from mlflow import MlflowClient

    holdout = sys.argv[1]
    client = MlflowClient()
    version = client.get_model_version_by_alias("taxifare", "champion")
    model = mlflow.pyfunc.load_model("models:/taxifare@champion")
    rows = pd.read_parquet(holdout).head(5)
    print(json.dumps({"version": version.version,
                      "predictions": [float(p) for p in pd.Series(list(model.predict(rows))).head(5)]}))
""")


def _ids(text: str, runs: dict[str, str]) -> str:
    """``text`` with every old run id (or its 8-character prefix) replaced by its copy's."""
    for old, new in runs.items():
        text = text.replace(old, new).replace(old[:8], new[:8])
    return text


def _stable(text: str) -> str:
    """A command's output without what changes by itself between two calls (ages, timings)."""
    text = re.sub(r"\d+(\.\d+)? ?(s|seconds?|minutes?|hours?|days?|ms) ago", "<ago>", text)
    return re.sub(r"(?m)^.*(MLflow|tracking).*$", "", text)


def test_a_workspace_moves_to_a_team_server_with_its_history(champion_ws, mlflow_server, tmp_path, capsys,
                                                            monkeypatch):
    from mlflow import MlflowClient

    ws = champion_ws
    url, _served = mlflow_server
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    for window in ("2015-01", "2015-02"):
        code, _, err = cli(capsys, "-w", str(ws), "run", "--window", window)
        assert code == 0, err
    db, artifacts = ws / ".modelcycle" / "mlflow.db", ws / ".modelcycle" / "mlartifacts"
    before = {p: digest(p) for p in (db, artifacts)}
    status_before = cli(capsys, "-w", str(ws), "status")[1]
    history_before = cli(capsys, "-w", str(ws), "history", "--json")[1]
    old = MlflowClient(f"sqlite:///{db}")
    versions_before = sorted(int(v.version) for v in old.search_model_versions("name = 'taxifare'"))
    aliases_before = {a: str(v) for a, v in old.get_registered_model("taxifare").aliases.items()}
    cycle_runs = old.search_runs([old.get_experiment_by_name("taxifare").experiment_id])
    last_run = max(cycle_runs, key=lambda r: r.info.start_time)
    metric = next(k for k in last_run.data.metrics if len(old.get_metric_history(last_run.info.run_id, k)) > 1)
    points = len(old.get_metric_history(last_run.info.run_id, metric))
    assert (before[db], before[artifacts]) == (digest(db), digest(artifacts))  # reading changed nothing

    code, out, err = cli(capsys, "-w", str(ws), "backends", "migrate", "--to", url, "--dry-run")
    assert code == 0, err
    said = flat(out)
    assert f"would copy: 2 experiments, {len(cycle_runs)}" in said or "would copy: 1 experiments" in said, said
    assert "dry run: nothing was copied" in said
    assert MlflowClient(url).search_registered_models("name = 'taxifare'") == []

    code, out, err = cli(capsys, "-w", str(ws), "backends", "migrate", "--to", url)
    assert code == 0, err
    said = flat(out)
    assert "experiment 'taxifare':" in said and "verified runs:" in said
    assert f"verified versions: {len(versions_before)} in both stores" in said
    assert "loads from the target" in said
    assert f"mlflow_tracking_uri: {url}" in said
    assert {p: digest(p) for p in (db, artifacts)} == before  # the old store, byte for byte

    new = MlflowClient(url)
    assert sorted(int(v.version) for v in new.search_model_versions("name = 'taxifare'")) == versions_before
    assert {a: str(v) for a, v in new.get_registered_model("taxifare").aliases.items()} == aliases_before
    copies = new.search_runs([new.get_experiment_by_name("taxifare").experiment_id])
    runs = {r.data.tags["modelcycle.migrated_from"]: r.info.run_id for r in copies}
    assert set(runs) == {r.info.run_id for r in cycle_runs}
    copied = next(r for r in copies if r.data.tags["modelcycle.migrated_from"] == last_run.info.run_id)
    assert copied.info.run_name == last_run.info.run_name and copied.info.status == last_run.info.status
    assert (copied.info.start_time, copied.info.end_time) == (last_run.info.start_time, last_run.info.end_time)
    assert copied.data.params == last_run.data.params
    assert len(new.get_metric_history(copied.info.run_id, metric)) == points
    assert new.get_experiment_by_name("taxifare").artifact_location.startswith("mlflow-artifacts:")

    # the only change a user makes: the URL (only that value of modelcycle.yaml)
    config = ws / "modelcycle.yaml"
    text = config.read_text()
    code, out, err = cli(capsys, "-w", str(ws), "backends", "migrate", "--to", url, "--write-config")
    assert code == 0, err
    said = flat(out)
    assert "copied: nothing" in said, said
    assert f"already there: 2 experiments, {len(runs)}" in said or "already there: 1 experiments" in said, said
    assert config.read_text() == text.replace("sqlite:///.modelcycle/mlflow.db", url)
    subprocess.run(["git", "commit", "-q", "-m", "the team's MLflow server", "modelcycle.yaml"], cwd=ws, check=True)

    status_after = cli(capsys, "-w", str(ws), "status")[1]
    history_after = cli(capsys, "-w", str(ws), "history", "--json")[1]
    assert json.loads(history_after) == json.loads(_ids(history_before, runs))
    assert _stable(status_after) == _stable(_ids(status_before, runs))

    elsewhere = tmp_path / "another-machine"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"MLFLOW_TRACKING_URI": url}
    holdout = tmp_path / "holdout.parquet"  # the held-out rows of the last cycle, as a user gets them
    code, _out, err = cli(capsys, "-w", str(ws), "rows", "holdout", "--out", str(holdout))
    assert code == 0, err
    proc = subprocess.run([sys.executable, "-c", LOAD, str(holdout)], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["version"] == aliases_before["champion"]
    assert len(loaded["predictions"]) == 5 and all(0 < p < 500 for p in loaded["predictions"])

    code, out, err = cli(capsys, "-w", str(ws), "predict", str(holdout))
    assert code == 0, err
    champion, other = aliases_before["champion"], str(max(versions_before))
    if other != champion:  # a human's moves on the server, with the history copied from the old store
        code, _, err = cli(capsys, "-w", str(ws), "promote", "--version", other, "--reason", "after the move")
        assert code == 0, err
        assert str(new.get_model_version_by_alias("taxifare", "champion").version) == other
        code, _, err = cli(capsys, "-w", str(ws), "rollback", "--reason", "back to the old champion")
        assert code == 0, err
        assert str(new.get_model_version_by_alias("taxifare", "champion").version) == champion
    code, _, err = cli(capsys, "-w", str(ws), "run", "--window", "2015-03")
    assert code == 0, err
    latest = max(int(v.version) for v in new.search_model_versions("name = 'taxifare'"))
    assert latest == max(versions_before) + 1
    assert {p: digest(p) for p in (db, artifacts)} == before  # the next cycle went to the server only


def test_a_server_with_another_model_of_that_name_is_refused(taxi_ws, mlflow_server, capsys, monkeypatch):
    from mlflow import MlflowClient

    url, _ = mlflow_server
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = MlflowClient(url)
    config = taxi_ws / "modelcycle.yaml"
    config.write_text(config.read_text().replace("name: taxifare", "name: fares", 1))
    if not client.search_registered_models("name = 'fares'"):
        client.create_registered_model("fares")
    code, out, err = cli(capsys, "-w", str(taxi_ws), "backends", "migrate", "--to", url)
    said = flat(out + err)
    assert code != 0
    assert f"{url} already has a registered model 'fares' with 0 version(s)" in said, said
    assert "delete the server's model 'fares'" in said


def test_a_target_that_never_answers_is_said_within_seconds(taxi_ws, capsys, silent):
    started = time.monotonic()
    code, out, err = cli(capsys, "-w", str(taxi_ws), "backends", "migrate", "--to", f"http://127.0.0.1:{silent}")
    said = flat(out + err)
    assert code != 0
    assert f"MLflow http://127.0.0.1:{silent} does not answer: no answer within 3 s" in said, said
    assert "fix the URL given to --to" in said
    assert time.monotonic() - started < 10
