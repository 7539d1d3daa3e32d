"""Real cycles: Prefect (test harness server), MLflow on SQLite, git + DVC, DuckDB, in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from modelcycle.config import Workspace
from modelcycle.errors import ModelcycleError, RegistryError
from modelcycle.lifecycle import datasets, flows, services
from modelcycle.lifecycle.stages import CLEAN, HOLDOUT, MODEL, RAW
from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.registry.workspace import open_registry
from modelcycle.versioning.dvcgit import DvcGitVersioning

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def registry(root: Path) -> MlflowRegistry:
    ws = Workspace.load(root)
    return open_registry(ws)


def snapshot(root: Path) -> dict:
    """Everything a rollback must restore exactly."""
    reg = registry(root)
    ver = DvcGitVersioning(str(root))
    files = {p: (root / p).read_bytes() if (root / p).exists() else None
             for p in ("dvc.lock", "params.yaml", "dvc.yaml", ".gitignore", "reports/metrics.json")}
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "symbolic-ref", "--short", "HEAD"),
        "tags": sorted(git(root, "tag").split()),
        "files": files,
        "outputs": ver.hashes([RAW, CLEAN, HOLDOUT, MODEL]),
        "aliases": {a: (mv.version if (mv := reg.get_alias("taxifare", a)) else None)
                    for a in ("champion", "challenger")},
        "versions": sorted(v.version for v in reg.list_versions("taxifare")),
    }


def test_first_cycle_promotes_versions_registers_and_tracks(taxi_ws: Path):
    result = flows.run(taxi_ws, "2014-12")
    assert result.outcome == "promote", result.reasons
    assert result.champion_version is None and result.serving_version == result.challenger_version == "1"
    assert result.champion_score is None and 0 < result.challenger_score < 2.5
    assert result.noise_floor and result.challenger_score > result.noise_floor * 0.9

    # git + DVC: one commit, tagged, outputs recorded and pushed, pipeline up to date
    assert git(taxi_ws, "tag") == "modelcycle/taxifare/2014-12"
    assert git(taxi_ws, "rev-parse", "HEAD") == result.git_commit
    assert git(taxi_ws, "status", "--porcelain") == ""
    lock = (taxi_ws / "dvc.lock").read_text()
    for out in (RAW, CLEAN, HOLDOUT, MODEL):
        assert out in lock
    dvc = Path(sys.executable).with_name("dvc")
    status = subprocess.run([str(dvc), "status"], cwd=taxi_ws, capture_output=True, text=True)
    assert status.returncode == 0 and "up to date" in status.stdout.lower(), status.stdout
    remote = taxi_ws / ".modelcycle" / "dvc-remote"
    assert sum(1 for p in remote.rglob("*") if p.is_file()) > 5

    # MLflow: the run with lineage, the version with lineage, the champion alias
    reg = registry(taxi_ws)
    run = reg.get_run(result.mlflow_run_id)
    assert run.status == "FINISHED"
    assert run.tags["modelcycle.git_commit"] == result.git_commit
    assert run.tags["modelcycle.flow_run_id"] == result.flow_run_id and result.flow_run_id
    assert run.tags["modelcycle.decision"] == "promote"
    assert run.tags["modelcycle.dvc_data_hash"] == result.data_hash
    assert run.metrics["challenger_mae"] == pytest.approx(result.challenger_score)
    assert run.params["window"] == "2014-12" and "model.n_estimators" in run.params
    champion = reg.get_alias("taxifare", "champion")
    assert champion.version == "1"
    assert champion.tags["git_commit"] == result.git_commit and champion.tags["window"] == "2014-12"

    # notifications
    log = [json.loads(x) for x in (taxi_ws / ".modelcycle/notifications.log").read_text().splitlines()]
    assert log[-1]["outcome"] == "promote" and log[-1]["window"] == "2014-12"


def test_any_mlflow_client_predicts_raw_rides_from_the_champion(champion_ws: Path):
    taxi_ws = champion_ws  # after its first cycle, 2014-12: v1 is the champion
    holdout = datasets.rows(Workspace.load(taxi_ws), "holdout").head(20)
    raw = holdout.drop(columns=["fare_amount"])
    raw.to_json(taxi_ws / "rides.json", orient="records", date_format="iso")
    code = ("import mlflow, pandas as pd, json; "
            "rides = pd.read_json('rides.json', orient='records'); "
            "m = mlflow.pyfunc.load_model('models:/taxifare@champion'); "
            "print(json.dumps([float(x) for x in m.predict(rides)]))")
    env = {**os.environ, "MLFLOW_TRACKING_URI": Workspace.load(taxi_ws).tracking_uri}
    proc = subprocess.run([sys.executable, "-c", code], cwd=taxi_ws, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    preds = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(preds) == 20
    mae = (pd.Series(preds) - holdout["fare_amount"].reset_index(drop=True)).abs().mean()
    assert mae < 4


def test_second_cycle_compares_on_the_same_rows_and_moves_challenger(champion_ws: Path):
    taxi_ws = champion_ws  # after its first cycle, 2014-12: v1 is the champion
    second = flows.run(taxi_ws, "2015-01")
    assert second.champion_version == "1" and second.challenger_version == "2"
    assert second.champion_score is not None and second.challenger_score is not None
    assert second.outcome in ("promote", "keep")
    reg = registry(taxi_ws)
    assert reg.get_alias("taxifare", "challenger").version == "2"
    assert reg.get_alias("taxifare", "champion").version == ("2" if second.outcome == "promote" else "1")
    metrics = json.loads((taxi_ws / "reports/metrics.json").read_text())
    assert metrics["champion"]["rows"] == metrics["challenger"]["rows"] == second.rows["holdout"]
    assert sorted(git(taxi_ws, "tag").split()) == ["modelcycle/taxifare/2014-12", "modelcycle/taxifare/2015-01"]


class FailingRegistry:
    """The real registry, except that one call fails (after the DVC + git commit)."""

    def __init__(self, real: MlflowRegistry, fail_on: str):
        self._real, self._fail_on = real, fail_on

    def __getattr__(self, name):
        return getattr(self._real, name)

    def set_alias(self, name, alias, version):
        if self._fail_on == "set_alias" and alias == "champion":
            raise RegistryError("simulated failure while moving the champion alias")
        return self._real.set_alias(name, alias, version)

    def register(self, *args, **kwargs):
        if self._fail_on == "register":
            raise RegistryError("simulated failure while registering")
        return self._real.register(*args, **kwargs)


@pytest.mark.parametrize("fail_on", ["register", "set_alias"])
def test_failure_in_the_act_block_rolls_everything_back(champion_ws: Path, fail_on: str):
    taxi_ws = champion_ws  # after its first cycle, 2014-12: v1 is the champion
    before = snapshot(taxi_ws)

    def factory(ws):
        svc = services.build(ws)
        svc.registry = FailingRegistry(svc.registry, fail_on)
        return svc

    with services.using(factory=factory), pytest.raises(ModelcycleError, match="simulated failure"):
        # 2015-03 is the fare change: the challenger would be promoted, so the alias move happens
        flows.run(taxi_ws, "2015-03")
    after = snapshot(taxi_ws)
    assert after == before
    assert "HEAD" not in git(taxi_ws, "status")  # on the branch, not detached
    assert not (taxi_ws / ".modelcycle/journal.json").exists()
    runs = registry(taxi_ws)._client.search_runs(
        [registry(taxi_ws).experiment_id("taxifare")], order_by=["attribute.start_time DESC"], max_results=1)
    assert runs[0].info.status == "FAILED"
    log = (taxi_ws / ".modelcycle/notifications.log").read_text().splitlines()
    assert json.loads(log[-1])["outcome"] == "failed"


def test_failure_before_the_act_block_restores_workspace_files(champion_ws: Path):
    taxi_ws = champion_ws  # after its first cycle, 2014-12: v1 is the champion
    before = snapshot(taxi_ws)

    def factory(ws):
        svc = services.build(ws)
        real = svc.registry

        class Boom:
            def __getattr__(self, name):
                return getattr(real, name)

            def save_model(self, *a, **k):
                raise ModelcycleError("simulated failure while saving the challenger")

        svc.registry = Boom()
        return svc

    with services.using(factory=factory), pytest.raises(ModelcycleError, match="saving the challenger"):
        flows.run(taxi_ws, "2015-01")
    assert snapshot(taxi_ws) == before


def test_a_killed_cycle_is_repaired_by_the_next_run(champion_ws: Path):
    """A process killed after the DVC + git commit (before the registration) leaves a journal;
    recovery rolls the half-done cycle back with the same undo functions a live rollback uses."""
    from modelcycle.lifecycle import effects
    from modelcycle.lifecycle.journal import Journal

    taxi_ws = champion_ws  # after its first cycle, 2014-12: v1 is the champion
    before = snapshot(taxi_ws)
    ws = Workspace.load(taxi_ws)
    ver = DvcGitVersioning(str(taxi_ws))
    journal = Journal.begin(ws, window="2015-01", state=ver.state(), command="a killed cycle",
                            effects=["workspace"])
    journal.data["pid"] = 2 ** 22 + 1  # a process that does not exist
    journal.set()
    # what the killed process had done: outputs rewritten, DVC + git commit, tag
    (taxi_ws / "params.yaml").write_text((taxi_ws / "params.yaml").read_text().replace("2014-12", "2015-01"))
    month = next((taxi_ws / RAW).glob("*.parquet"))
    pd.read_parquet(month).head(100).to_parquet(month)
    journal.intent("commit", tag="modelcycle/taxifare/2015-01")
    ver.commit(["fetch", "validate", "prepare", "train", "evaluate"], "half-done", tag="modelcycle/taxifare/2015-01")
    assert snapshot(taxi_ws) != before

    said = effects.recover(services.build(ws), sweep=False)
    assert said is not None and "rolled back" in said and "2015-01" in said
    assert snapshot(taxi_ws) == before
    assert Journal.open(ws) is None
