"""Several challengers in one cycle, trained on a real Dask LocalCluster (2 processes), with real
Prefect and MLflow on SQLite: the gate compares each with the champion (corrected for 3
comparisons), promotes the clearly better one, registers one version and logs 3 nested runs."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.integration.helpers import cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _configure(ws, candidates, **orchestration):
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["candidates"] = candidates
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if orchestration:
        config = yaml.safe_load((ws / "modelcycle.yaml").read_text())
        config["orchestration"] = orchestration
        (ws / "modelcycle.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_three_candidates_on_dask_promote_the_better_one(champion_ws, capsys):
    from mlflow import MlflowClient

    _configure(champion_ws, {"stump": {"n_estimators": 1, "num_leaves": 2},
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
    _configure(champion_ws, {"good": {}, "typo": {"n_estimaters": 7}})
    code, out, err = cli(capsys, "-w", str(champion_ws), "run", "--window", "2015-01")
    assert code != 0
    assert "candidate 'typo'" in err and "candidates.typo.n_estimaters" in err and "n_estimators" in err, err
    assert "Traceback" not in err
