"""Several challengers in one cycle, trained on a real Dask LocalCluster (2 processes), with real
Prefect and MLflow on SQLite: the gate compares each with the champion (corrected for 3
comparisons), promotes the clearly better one, registers one version and logs 3 nested runs."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.helpers import cli
from tests.unit.minimal import with_candidates

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]




def test_three_candidates_on_dask_promote_the_better_one(champion_ws, capsys):
    from mlflow import MlflowClient

    with_candidates(champion_ws, {"stump": {"n_estimators": 1, "num_leaves": 2},
                             "shallow": {"n_estimators": 3, "num_leaves": 2},
                             "full": {}},
               task_runner="dask", dask_address=None, dask_workers=2)
    started = time.perf_counter()
    # 2015-03: the simulated fare change; the champion (trained up to 2014-12) is now clearly worse
    code, out, err = cli(capsys, "-w", str(champion_ws), "--verbose", "run", "--window", "2015-03")
    seconds = time.perf_counter() - started
    assert code == 0, out + err
    said = out + err  # the table on stdout, the decision's reasons on stderr
    assert "best of 3 candidates: 'full'" in said, said
    assert "1 - 0.05/3" in said and "98.3% interval" in said, said
    assert "candidate 'stump'" in said and "candidate 'shallow'" in said
    print(f"the cycle with 3 candidates on Dask took {seconds:.1f} s")
    assert seconds < 90, seconds

    metrics = json.loads((champion_ws / "reports/metrics.json").read_text())
    assert metrics["decision"]["outcome"] == "promote" and metrics["decision"]["candidate"] == "full"
    assert {c["name"] for c in metrics["decision"]["candidates"]} == {"stump", "shallow", "full"}

    db = f"sqlite:///{champion_ws / '.modelcycle/mlflow.db'}"
    client = MlflowClient(tracking_uri=db, registry_uri=db)
    versions = client.search_model_versions("name = 'taxifare'")
    assert sorted(int(v.version) for v in versions) == [1, 2]  # one new version: the chosen candidate
    v2 = next(v for v in versions if str(v.version) == "2")
    assert v2.tags.get("candidate") == "full"
    assert str(client.get_model_version_by_alias("taxifare", "champion").version) == "2"
    nested = client.search_runs([client.get_experiment_by_name("taxifare").experiment_id],
                                f"tags.mlflow.parentRunId = '{v2.run_id}'")
    by_name = {r.data.tags["modelcycle.candidate"]: r for r in nested}
    assert set(by_name) == {"stump", "shallow", "full"}
    assert by_name["full"].data.tags["modelcycle.chosen"] == "true"
    assert by_name["stump"].data.params["model.n_estimators"] == "1"
    assert abs(by_name["full"].data.metrics["confidence"] - (1 - 0.05 / 3)) < 1e-9
    assert by_name["stump"].data.metrics["ci_high"] < 0 < by_name["full"].data.metrics["ci_low"]


def test_a_candidate_key_the_estimator_does_not_take_is_named(champion_ws, capsys):
    with_candidates(champion_ws, {"good": {}, "typo": {"n_estimaters": 7}})
    code, out, err = cli(capsys, "-w", str(champion_ws), "run", "--window", "2015-01")
    assert code != 0
    assert "candidate 'typo'" in err and "candidates.typo.n_estimaters" in err and "n_estimators" in err, err
    assert "Traceback" not in err


def test_an_unreachable_dask_scheduler_fails_in_seconds_and_changes_nothing(champion_ws, capsys):
    import socket

    from tests.integration.helpers import assert_clean_failure, head

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with_candidates(champion_ws, {"small": {"num_leaves": 7}, "full": {}}, task_runner="dask", dask_address=address)
    before = head(champion_ws)
    files = {p: (champion_ws / p).read_bytes() for p in ("params.yaml", "dvc.lock", "reports/metrics.json")}
    started = time.perf_counter()
    code, out, err = cli(capsys, "-w", str(champion_ws), "run", "--window", "2015-03")
    seconds = time.perf_counter() - started
    assert_clean_failure(code, err, address, "orchestration.dask_address", "orchestration.task_runner: threads")
    assert seconds < 10, seconds
    assert head(champion_ws) == before
    assert {p: (champion_ws / p).read_bytes() for p in files} == files
    assert not (champion_ws / ".modelcycle/journal.json").exists()


def test_dvc_exp_run_changing_a_candidate_retrains_and_the_gate_chooses(champion_ws, capsys):
    """A cycle with candidates ('full' promoted), then `dvc exp run -S candidates...`: DVC reruns the
    train stage, which trains every candidate and keeps the one the gate chooses against the
    champion, as a cycle does ('full' again, the very model the cycle promoted)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import modelcycle

    with_candidates(champion_ws, {"stump": {"n_estimators": 1, "num_leaves": 2}, "full": {}})
    subprocess.run(["git", "commit", "-q", "-m", "two candidates", "params.yaml"], cwd=champion_ws, check=True)
    code, out, err = cli(capsys, "-w", str(champion_ws), "--verbose", "run", "--window", "2015-03")
    assert code == 0, out + err
    lines = out.splitlines()  # the table's column and the line below it name the chosen candidate
    assert "candidate" in next(line for line in lines if "window" in line and "challenger" in line), out
    assert "full" in next(line for line in lines if "2015-03" in line and "promote" in line), out
    assert "challenger registered as taxifare v2 (candidate 'full')" in out, out
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(modelcycle.__file__).resolve().parents[1]),
                                         *filter(None, [env.get("PYTHONPATH")])])

    def dvc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["dvc", *args], cwd=champion_ws, env=env, capture_output=True, text=True,
                              timeout=300, check=False)

    status = dvc("status", "train")
    assert status.returncode == 0 and "changed" not in status.stdout, status.stdout + status.stderr
    done = dvc("exp", "run", "-n", "stumpier", "-S", "candidates.stump.num_leaves=3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage 'train'" in done.stdout and "trained 2 candidates" in done.stdout, done.stdout
    # 'full' is the champion the cycle promoted, trained again on the same rows: the same model
    assert "'full' (keep) -> models/challenger" in done.stdout, done.stdout
    assert "best of 2 candidates: 'full' (the best; 0 of 2 would be promoted)" in done.stdout
    assert "candidate 'full': MAE" in done.stdout and "no different: keep" in done.stdout
    assert "candidate 'stump'" in done.stdout
    assert "the same on every resample" in done.stdout
