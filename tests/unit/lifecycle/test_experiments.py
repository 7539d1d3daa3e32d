"""`dvc exp run` experiments recorded as MLflow runs (on the in-memory registry), and the report
files the stages write for DVC's plots and metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.config import Workspace
from modelcycle.lifecycle import experiments, stages
from modelcycle.registry.memory import MemoryRegistry
from modelcycle.steps.evaluate import Scores
from tests.unit.minimal import CONFIG

PARAMS = """\
# the user's comment
window: 2015-02
seed: 42
model:
  learning_rate: 0.05
  n_estimators: 200
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "modelcycle.yaml").write_text(CONFIG)
    (root / "params.yaml").write_text(PARAMS)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "baseline")
    return Workspace.load(root)


def scores(value: float, pred: list[float]) -> Scores:
    return Scores(metric="mae", value=value, rows=3, y_true=np.array([1.0, 2.0, 3.0]), y_pred=np.array(pred))


def edit(ws: Workspace, old: str, new: str) -> Workspace:
    path = ws.path("params.yaml")
    path.write_text(path.read_text().replace(old, new))
    return ws.reload_params()


def test_outside_dvc_exp_run_nothing_is_recorded(ws, monkeypatch):
    monkeypatch.delenv(experiments.EXP_NAME_VAR, raising=False)
    registry = MemoryRegistry()
    assert experiments.record(ws, registry, scores(0.5, [1, 2, 3]), None) is None
    assert registry.runs == {}


def test_an_experiment_is_one_run_in_the_experiments_experiment_tagged_with_what_it_changed(ws, monkeypatch):
    baseline = git(ws.root, "rev-parse", "HEAD")
    ws = edit(ws, "learning_rate: 0.05", "learning_rate: 0.1")
    ws = edit(ws, "seed: 42", "seed: 7")
    stages.write_learning_curve(ws, [{"epoch": 1, "train_loss": 0.9, "val_loss": 1.1},
                                     {"epoch": 2, "train_loss": 0.4, "val_loss": 0.8}])
    monkeypatch.setenv(experiments.EXP_NAME_VAR, "faster")
    monkeypatch.setenv(experiments.BASELINE_VAR, baseline)
    registry = MemoryRegistry()

    said = experiments.record(ws, registry, scores(0.5, [1, 2, 3]), scores(0.75, [1, 2, 4]))

    (run,) = registry.runs.values()
    assert run.experiment == "rides-experiments" and run.name == "faster" and run.status == "FINISHED"
    assert run.tags[experiments.EXP_TAG] == "faster" and run.tags[experiments.BASELINE_TAG] == baseline
    assert run.tags[experiments.CHANGED_TAG] == "model.learning_rate=0.1, seed=7"
    assert run.tags["modelcycle.changed.model.learning_rate"] == "0.1"
    assert run.tags["modelcycle.changed.seed"] == "7"
    assert "modelcycle.changed.model.n_estimators" not in run.tags
    assert run.params["model.learning_rate"] == "0.1" and run.params["model.n_estimators"] == "200"
    assert run.params["window"] == "2015-02" and run.params["metric"] == "mae"
    assert run.metrics == {"challenger_mae": 0.5, "champion_mae": 0.75, "holdout_rows": 3.0,
                           "train_loss": 0.4, "val_loss": 0.8}
    assert run.metric_history["val_loss"] == [(1, 1.1), (2, 0.8)]  # the learning curve, by epoch
    assert said is not None and "faster (model.learning_rate=0.1, seed=7)" in said and "rides-experiments" in said


def test_changes_are_against_the_baseline_commit_not_the_working_tree(ws):
    assert experiments.changed_params(ws, git(ws.root, "rev-parse", "HEAD")) == {}
    edit(ws, "  n_estimators: 200\n", "  n_estimators: 200\n  max_depth: 3\n")
    assert experiments.changed_params(ws, "HEAD") == {"model.max_depth": 3}
    assert experiments.changed_params(ws, "") == {}  # no baseline: nothing known to have changed
    assert experiments.changed_params(ws, "0" * 40) == {}  # a commit git does not know


def test_a_learning_curve_is_epoch_then_the_historys_keys_and_none_without_a_history(ws):
    stages.write_learning_curve(ws, [{"train_loss": 0.9, "val_accuracy": 0.5, "epoch": 1},
                                     {"train_loss": 0.4, "val_accuracy": 0.7, "epoch": 2}])
    curve = pd.read_csv(ws.path(stages.LEARNING_CURVE))
    assert list(curve.columns) == ["epoch", "train_loss", "val_accuracy"]
    assert curve["epoch"].tolist() == [1, 2]
    stages.write_learning_curve(ws, [])  # scikit-learn's trainer: no history, and no stale curve
    assert not ws.path(stages.LEARNING_CURVE).exists()


def test_predictions_and_metrics_are_what_dvc_plots_and_exp_show_read(ws):
    stages.write_predictions(ws, scores(0.5, [1.5, 2, 3]), None)
    frame = pd.read_csv(ws.path(stages.PREDICTIONS))
    assert list(frame.columns) == ["actual", "challenger", "champion"]
    assert frame["challenger"].tolist() == [1.5, 2, 3] and frame["champion"].isna().all()
    assert stages.flat_metrics(scores(0.5, [1, 2, 3]), None) == {"challenger_mae": 0.5, "holdout_rows": 3.0}


def test_an_experiment_run_in_a_copy_records_in_the_original_workspace(ws, tmp_path, monkeypatch):
    """`dvc exp run --temp` runs the stages in a copy of the repository and names the original
    in DVC_ROOT: the copy has no .modelcycle/ (git-ignored), so the original's store is used."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ws.root, copy)
    monkeypatch.setenv(experiments.ROOT_VAR, str(ws.root))
    assert experiments.home(Workspace.load(copy)).root == ws.root
    assert experiments.home(ws) is ws
    monkeypatch.setenv(experiments.ROOT_VAR, str(tmp_path))  # no workspace there
    assert experiments.home(ws) is ws


def test_doctor_adds_the_plots_to_a_workspace_made_before_dvc_yaml_declared_them(ws):
    from types import SimpleNamespace

    from modelcycle.lifecycle import doctor

    older = "stages:\n  evaluate:\n    cmd: modelcycle step evaluate\n"
    ws.path("dvc.yaml").write_text(older)
    found = doctor._plots(SimpleNamespace(ws=ws))
    assert found.ok and "predicted_vs_actual" in found.text
    assert ws.path("dvc.yaml").read_text().startswith(older) and "template: scatter" in ws.path("dvc.yaml").read_text()
    again = doctor._plots(SimpleNamespace(ws=ws))
    assert again.ok and again.text == "dvc.yaml declares what `dvc plots show` draws"
