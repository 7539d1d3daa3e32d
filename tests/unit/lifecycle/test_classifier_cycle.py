"""A classifier's cycle (a workspace of the user's own CSV, services on the fakes): the evaluate
stage's reports/predictions.csv (both models on the same held-out rows), the flips and the
confusion matrices in the decision, the MLflow run and `modelcycle status`'s reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.config import Workspace
from modelcycle.lifecycle import datasets, flows, services, stages
from modelcycle.lifecycle.workspace import create_from_source
from tests.unit.lifecycle.conftest import Fakes

pytestmark = pytest.mark.usefixtures("prefect_server")


def flats(n: int = 1400, seed: int = 0) -> pd.DataFrame:
    """Flats sold over eight months with a price band (three classes, text labels)."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(30, 200, n)
    rooms = rng.integers(1, 6, n)
    score = size / 50 + rooms * 0.5 + rng.normal(0, 0.6, n)
    return pd.DataFrame({
        "sold_at": pd.date_range("2023-07-01", "2024-02-28", periods=n).round("s").strftime("%Y-%m-%d %H:%M:%S"),
        "size_m2": size.round(1), "rooms": rooms,
        "band": np.where(score > 4.5, "high", np.where(score > 3, "mid", "low"))})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("bands")
    flats().to_csv(base / "flats.csv", index=False)
    root = base / "ws"
    create_from_source(root, name="bands", kind="files", url=str(base / "flats.csv"), table=None,
                       timestamp="sold_at", target="band", task="classification", metric="accuracy",
                       threshold=0.5)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 200", "n_estimators: 20"))
    return root


def test_a_classifier_cycle_writes_both_models_predictions_and_reports_the_flips(workspace: Path) -> None:
    fakes = Fakes(workspace)
    with services.using(factory=fakes):
        first = flows.run(workspace, "2023-12")
        predictions = pd.read_csv(workspace / stages.PREDICTIONS, keep_default_na=False)
        holdout = datasets.rows(Workspace.load(workspace), "holdout")
        assert list(predictions.columns) == ["actual", "challenger", "champion"]
        assert list(predictions["actual"]) == list(holdout["band"])          # one row per held-out row
        assert set(predictions["challenger"]) <= {"high", "mid", "low"}
        assert set(predictions["champion"]) == {""}                          # no champion yet
        assert first.negative_flips is None

        second = flows.run(workspace, "2024-01")
    predictions = pd.read_csv(workspace / stages.PREDICTIONS, keep_default_na=False)
    holdout = datasets.rows(Workspace.load(workspace), "holdout")
    assert list(predictions["actual"]) == list(holdout["band"])
    assert set(predictions["champion"]) <= {"high", "mid", "low"} and len(predictions) == second.rows["holdout"]

    right_before = predictions["champion"] == predictions["actual"]
    right_now = predictions["challenger"] == predictions["actual"]
    negative, positive = int((right_before & ~right_now).sum()), int((~right_before & right_now).sum())
    assert (second.negative_flips, second.positive_flips) == (negative, positive)
    assert right_before.mean() == pytest.approx(second.champion_score)
    assert right_now.mean() == pytest.approx(second.challenger_score)
    said = (f"negative flips: {negative} of {len(predictions)} (champion right, challenger wrong); "
            f"positive flips: {positive} (champion wrong, challenger right)")
    assert said in second.reasons

    decision = json.loads((workspace / stages.METRICS).read_text())["decision"]
    matrices = decision["confusion"]
    assert matrices["labels"] == ["high", "low", "mid"]
    assert sum(map(sum, matrices["champion"])) == sum(map(sum, matrices["challenger"])) == len(predictions)
    expected = pd.crosstab(predictions["actual"], predictions["challenger"]).reindex(
        index=matrices["labels"], columns=matrices["labels"], fill_value=0)
    assert matrices["challenger"] == expected.to_numpy().tolist()

    run = fakes.registry.get_run(second.mlflow_run_id)
    assert (run.metrics["negative_flips"], run.metrics["positive_flips"]) == (negative, positive)
    assert run.artifacts["confusion.json"]["champion"] == matrices["champion"]
    assert "negative flips" in run.tags["modelcycle.reasons"]
    # the file is a stage output: the cycle's commit holds it as written
    assert fakes.versioning.log()[0].tree[stages.PREDICTIONS] == (workspace / stages.PREDICTIONS).read_bytes()


def test_a_regressions_predictions_file_has_the_same_columns(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from modelcycle.steps.evaluate import Scores

    ws = SimpleNamespace(path=lambda rel: tmp_path / rel)
    y = np.array([10.0, 12.5, 7.25])
    challenger = Scores("mae", 0.5, 3, y_true=y, y_pred=y + 0.5)
    stages.write_predictions(ws, challenger)  # type: ignore[arg-type]
    alone = pd.read_csv(tmp_path / stages.PREDICTIONS)
    assert list(alone.columns) == ["actual", "challenger", "champion"]
    assert alone["actual"].tolist() == y.tolist() and alone["challenger"].tolist() == (y + 0.5).tolist()
    assert alone["champion"].isna().all()
    stages.write_predictions(ws, challenger, Scores("mae", 1.0, 3, y_true=y, y_pred=y - 1))  # type: ignore[arg-type]
    both = pd.read_csv(tmp_path / stages.PREDICTIONS)
    assert both["champion"].tolist() == (y - 1).tolist()
    with pytest.raises(ValueError, match="same held-out rows"):
        stages.write_predictions(ws, challenger, Scores("mae", 1.0, 2, y_true=y[:2], y_pred=y[:2]))  # type: ignore[arg-type]
