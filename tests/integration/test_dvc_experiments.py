"""DVC experiments are MLflow runs, and DVC plots: `dvc exp run -S`, `dvc exp show`, `dvc exp
apply`, `dvc plots show` in a real workspace (git + DVC + MLflow on SQLite), as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import modelcycle
from modelcycle.versioning import setup
from tests.integration.helpers import cli, sales

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command in its own process, as a terminal runs it: `dvc` and the `modelcycle` that its
    stages call are the ones of this environment, importing the modelcycle under test."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    source = str(Path(modelcycle.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(list(args), cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)


def experiments_of(show: list[dict]) -> dict[str, dict]:
    """`dvc exp show --json`: each experiment's name -> its data (params and metrics)."""
    found = {}
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            found[exp["name"]] = exp["revs"][0]["data"]
    return found


def mlflow_runs(root: Path, experiment: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root / '.modelcycle/mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


@pytest.fixture
def prices(tmp_path: Path, capsys, monkeypatch) -> Path:
    """A CSV table workspace (LightGBM regression) after its first cycle: v1 is the champion."""
    sales().to_csv(tmp_path / "sales.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "init", "prices", "--source", "sales.csv", "--timestamp", "sold_at",
                       "--target", "price", "--threshold", "25000")
    assert code == 0, err
    root = tmp_path / "prices"
    code, _, err = cli(capsys, "-w", str(root), "run", "--window", "2024-01")
    assert code == 0, err
    return root


def test_an_experiment_is_an_mlflow_run_that_exp_show_lists_and_a_cycle_can_use(prices: Path, capsys):
    done = run(prices, "dvc", "exp", "run", "-n", "faster", "-S", "model.learning_rate=0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DVC experiment faster (model.learning_rate=0.1) -> MLflow run" in done.stdout

    # dvc exp show lists it with its params and the metrics of the evaluate stage
    show = run(prices, "dvc", "exp", "show", "--json")
    assert show.returncode == 0, show.stderr
    exp = experiments_of(json.loads(show.stdout))["faster"]
    assert exp["params"]["params.yaml"]["data"]["model"]["learning_rate"] == 0.1
    metrics = exp["metrics"]["reports/metrics.json"]["data"]
    assert set(metrics) == {"challenger_mae", "champion_mae", "holdout_rows"}
    assert 1000 < metrics["challenger_mae"] < 50_000 and metrics["holdout_rows"] > 100

    # one MLflow run, in the experiments experiment, tagged with the experiment and what it changed
    (mlrun,) = mlflow_runs(prices, "prices-experiments")
    tags, params = mlrun.data.tags, mlrun.data.params
    assert mlrun.info.run_name == "faster" and mlrun.info.status == "FINISHED"
    assert tags["modelcycle.dvc_exp"] == "faster"
    assert tags["modelcycle.changed_params"] == "model.learning_rate=0.1"
    assert tags["modelcycle.changed.model.learning_rate"] == "0.1"
    assert tags["modelcycle.dvc_baseline"] == run(prices, "git", "rev-parse", "HEAD").stdout.strip()
    assert params["model.learning_rate"] == "0.1" and params["model.n_estimators"] == "200"
    assert mlrun.data.metrics["challenger_mae"] == pytest.approx(metrics["challenger_mae"])
    # ...and nothing of it counts as a cycle: one cycle run, one version, the champion unmoved
    assert [r.info.run_name for r in mlflow_runs(prices, "prices")] == ["cycle 2024-01"]
    code, out, _ = cli(capsys, "-w", str(prices), "status")
    assert code == 0 and "v1" in out

    # the sklearn trainer reports no history: no learning curve, and `dvc plots show` draws the rest
    assert not (prices / setup.LEARNING_CURVE).exists()
    plots = run(prices, "dvc", "plots", "show", "--json")
    assert plots.returncode == 0, plots.stderr
    drawn = json.loads(plots.stdout)
    assert not drawn.get("errors"), drawn.get("errors")
    (scatter,) = drawn["data"]["predicted_vs_actual"]
    points = scatter["content"]["data"]["values"]
    assert {p["field"] for p in points} == {"challenger", "champion"}
    assert len(points) == 2 * metrics["holdout_rows"]
    assert scatter["content"]["encoding"]["x"]["field"] == "actual"

    # back to the baseline, then `dvc exp apply` brings the experiment's params back, and the next
    # cycle trains with them (and commits them with its version)
    assert run(prices, "git", "checkout", "--", ".").returncode == 0
    assert "learning_rate: 0.05" in (prices / "params.yaml").read_text()
    applied = run(prices, "dvc", "exp", "apply", "faster")
    assert applied.returncode == 0, applied.stderr
    assert yaml.safe_load((prices / "params.yaml").read_text())["model"]["learning_rate"] == 0.1
    code, _, err = cli(capsys, "-w", str(prices), "run", "--window", "2024-02")
    assert code == 0, err
    cycles = {r.info.run_name: r for r in mlflow_runs(prices, "prices")}
    assert cycles["cycle 2024-02"].data.params["model.learning_rate"] == "0.1"
    assert cycles["cycle 2024-01"].data.params["model.learning_rate"] == "0.05"
    committed = run(prices, "git", "show", "HEAD:params.yaml").stdout
    assert yaml.safe_load(committed)["model"]["learning_rate"] == 0.1
    # the cycle's metrics.json carries the same columns, so `dvc exp show` compares with it
    cycle_metrics = json.loads((prices / "reports/metrics.json").read_text())
    assert {"challenger_mae", "champion_mae", "holdout_rows"} <= set(cycle_metrics)


def test_a_classifier_gets_a_confusion_matrix_and_an_epoch_trainer_its_learning_curve(tmp_path: Path):
    """The plots dvc.yaml declares for a classifier trained in epochs, drawn by `dvc plots show`
    from files as the stages write them."""
    from modelcycle.lifecycle.stages import write_learning_curve

    root = tmp_path / "ws"
    root.mkdir()
    setup.init_workspace_repo(root, None)
    (root / "dvc.yaml").write_text("stages: {}\n" + setup.plots_yaml("classification", epochs=True))
    (root / "reports").mkdir()
    (root / setup.PREDICTIONS).write_text("actual,challenger,champion\n" + "cat,cat,dog\ndog,dog,dog\n"
                                          "dog,cat,dog\ncat,cat,cat\n")

    class Ws:  # what write_learning_curve uses of a workspace
        def path(self, rel: str) -> Path:
            return root / rel

    write_learning_curve(Ws(), [{"epoch": 1, "train_loss": 0.9, "val_loss": 1.0, "val_accuracy": 0.5},
                                {"epoch": 2, "train_loss": 0.5, "val_loss": 0.7, "val_accuracy": 0.75}])
    drawn = json.loads(run(root, "dvc", "plots", "show", "--json").stdout)
    assert not drawn.get("errors"), drawn.get("errors")
    (confusion,) = drawn["data"]["confusion"]
    cells = confusion["content"]["data"]["values"]
    assert [(c["actual"], c["challenger"]) for c in cells] == [("cat", "cat"), ("dog", "dog"), ("dog", "cat"),
                                                                 ("cat", "cat")]
    assert "rect" in json.dumps(confusion["content"])  # the confusion template's cells
    (curve,) = drawn["data"]["learning_curve"]
    values = curve["content"]["data"]["values"]
    assert {(v["epoch"], v["field"]) for v in values} == {("1", "train_loss"), ("2", "train_loss"),
                                                          ("1", "val_loss"), ("2", "val_loss")}
