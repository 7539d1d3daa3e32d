"""DVC experiments in an image workspace (the digits example, the torch trainer), as a user types
them: `dvc exp run -S`, `dvc exp show`, `dvc plots show`, `dvc exp apply`, then `modelcycle run`,
on the real tools (git + DVC + MLflow on SQLite + Prefect). Small: 2 epochs on the history."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from modelcycle.examples.digits.workspace import MODEL_PARAMS

from tests.integration.helpers import cli
from tests.integration.test_dvc_experiments import experiments_of, mlflow_runs, run

pytest.importorskip("torch", reason="the torch extra is not installed: pip install 'modelcycle[torch]'")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """The digits workspace with its history only, no cycle run yet: params.yaml names the
    window 2014-12 (as a cycle would), the CNN trains 2 epochs and the gate's threshold is low
    enough for a model that short-trained to be promoted."""
    from modelcycle.cli import examples

    root = tmp_path / "digits"
    examples.create("digits", root, force=False, progress=lambda _t: None, batches=0)
    params = (root / "params.yaml").read_text()
    params, changed = re.subn(r"(?m)^(\s+epochs:) \d+$", r"\1 2", params.replace("window: null", "window: 2014-12"))
    assert changed == 1, params
    (root / "params.yaml").write_text(params)
    config = (root / "modelcycle.yaml").read_text()
    (root / "modelcycle.yaml").write_text(config.replace("threshold: 0.95", "threshold: 0.5"))
    assert run(root, "git", "commit", "-qam", "a short training for the tests").returncode == 0
    return root


def test_an_image_experiment_is_shown_plotted_recorded_and_applied(digits: Path, capsys) -> None:
    baseline = run(digits, "git", "rev-parse", "HEAD").stdout.strip()
    done = run(digits, "dvc", "exp", "run", "-n", "faster", "-S", "model.learning_rate=0.01")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DVC experiment faster (model.learning_rate=0.01) -> MLflow run" in done.stdout
    assert re.search(r"trained a torch model on \d+ rows", done.stdout), done.stdout

    # dvc exp show: its params and the evaluate stage's metrics (no champion yet)
    show = run(digits, "dvc", "exp", "show", "--json")
    assert show.returncode == 0, show.stderr
    exp = experiments_of(json.loads(show.stdout))["faster"]
    model = exp["params"]["params.yaml"]["data"]["model"]
    assert model["learning_rate"] == 0.01 and model["epochs"] == 2
    metrics = exp["metrics"]["reports/metrics.json"]["data"]
    assert set(metrics) == {"challenger_accuracy", "holdout_rows"}
    assert 0.2 < metrics["challenger_accuracy"] <= 1 and metrics["holdout_rows"] > 30  # chance is 1 in 9

    # one MLflow run in digits-experiments, tagged with the experiment and the param it changed
    (mlrun,) = mlflow_runs(digits, "digits-experiments")
    tags, params = mlrun.data.tags, mlrun.data.params
    assert mlrun.info.run_name == "faster" and mlrun.info.status == "FINISHED"
    assert tags["modelcycle.dvc_exp"] == "faster" and tags["modelcycle.dvc_baseline"] == baseline
    assert tags["modelcycle.changed_params"] == "model.learning_rate=0.01"
    assert tags["modelcycle.changed.model.learning_rate"] == "0.01"
    assert params["model.learning_rate"] == "0.01" and params["model.epochs"] == "2"
    assert params["trainer"] == "torch" and "estimator" not in params  # no LightGBM for a CNN
    assert mlrun.data.metrics["challenger_accuracy"] == pytest.approx(metrics["challenger_accuracy"])
    assert mlrun.data.metrics["val_loss"] > 0  # the learning curve's last epoch
    assert mlflow_runs(digits, "digits") == []  # an experiment is no cycle

    # dvc plots show: the learning curve and the confusion matrix, from the files the stages wrote
    plots = run(digits, "dvc", "plots", "show", "--json")
    assert plots.returncode == 0, plots.stderr
    drawn = json.loads(plots.stdout)
    assert not drawn.get("errors"), drawn.get("errors")
    (curve,) = drawn["data"]["learning_curve"]
    points = curve["content"]["data"]["values"]
    assert {(p["epoch"], p["field"]) for p in points} == {(e, f) for e in ("1", "2") for f in ("train_loss", "val_loss")}
    (confusion,) = drawn["data"]["confusion"]
    cells = confusion["content"]["data"]["values"]
    assert len(cells) == metrics["holdout_rows"]
    assert {c["actual"] for c in cells} <= set("012345678") and {c["challenger"] for c in cells} <= set("012345678")
    right = sum(c["actual"] == c["challenger"] for c in cells) / len(cells)
    assert right == pytest.approx(metrics["challenger_accuracy"])

    # back to the baseline; `dvc exp apply` brings the experiment's params back, and the cycle
    # trains with them and commits them with its version
    assert run(digits, "git", "checkout", "--", ".").returncode == 0
    assert yaml.safe_load((digits / "params.yaml").read_text())["model"]["learning_rate"] == MODEL_PARAMS["learning_rate"] != 0.01
    applied = run(digits, "dvc", "exp", "apply", "faster")
    assert applied.returncode == 0, applied.stderr
    assert yaml.safe_load((digits / "params.yaml").read_text())["model"]["learning_rate"] == 0.01
    code, out, err = cli(capsys, "-w", str(digits), "run", "--window", "2014-12")
    assert code == 0, out + err
    (cycle,) = mlflow_runs(digits, "digits")
    assert cycle.info.run_name == "cycle 2014-12" and cycle.data.tags["modelcycle.outcome"] == "promote"
    assert cycle.data.params["model.learning_rate"] == "0.01" and cycle.data.params["trainer"] == "torch"
    committed = run(digits, "git", "show", "HEAD:params.yaml").stdout
    assert yaml.safe_load(committed)["model"]["learning_rate"] == 0.01
