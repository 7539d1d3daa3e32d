"""`modelcycle report` on a real workspace after one cycle (git + DVC + MLflow on SQLite): its
tables hold the champion's params and metrics as MLflow itself returns them, a param edited in
params.yaml shows as changed, the images are PNG files linked relative to the report; the
workspace without a champion; and the errors a user meets. `init`'s CI workflow is committed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from modelcycle.lifecycle import workspace as wsmod
from tests.integration.helpers import assert_clean_failure, cli
from tests.unit.lifecycle.test_prreport import _Images, assert_png, image_links, row, table

pytestmark = [pytest.mark.slow]


def client(ws: Path) -> MlflowClient:
    uri = f"sqlite:///{ws / '.modelcycle/mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion_run(ws: Path):
    c = client(ws)
    version = c.get_model_version_by_alias("taxifare", "champion")
    return version.version, c.get_run(version.run_id)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4g}"


def report(capsys, ws: Path) -> str:
    code, out, err = cli(capsys, "-w", str(ws), "report")
    assert code == 0, out + err
    assert "wrote" in out and "report.md" in out
    return (ws / "reports/pr/report.md").read_text()


def test_the_report_after_a_cycle_holds_the_champions_params_and_metrics_from_mlflow(champion_ws, capsys):
    md = report(capsys, champion_ws)
    version, run = champion_run(champion_ws)
    ours = json.loads((champion_ws / "reports/metrics.json").read_text())["challenger"]
    assert f"champion **v{version}** (MLflow run `{run.info.run_id[:8]}`" in md

    metrics = table(md, "Metrics")
    mae = row(metrics, "MAE (gate)")
    assert mae[1:3] == [fmt(ours["value"]), fmt(run.data.metrics["challenger_mae"])]
    assert row(metrics, "held-out rows")[1:3] == [fmt(ours["rows"]), fmt(run.data.metrics["rows_holdout"])]
    # the workspace's outputs are the champion's own cycle's: nothing differs, and the report says why
    assert mae[-1] == "same"
    assert f"those of the cycle that made v{version} the champion" in md
    assert "No param differs from the champion's." in md

    unchanged = md.split("unchanged param(s)</summary>", 1)[1]
    assert f"Window: this branch `{run.data.params['window']}`, champion v{version} " in md
    assert "(the same); each cycle sets its own" in md and "| window |" not in md
    for name in ("seed", "split.holdout_fraction", "data.history_months", "model.n_estimators",
                 "model.learning_rate", "estimator", "gate.threshold"):
        value = run.data.params[name]
        assert f"| {name} | `{value}` | `{value}` |  |" in unchanged, name

    links = image_links(md)
    assert links[0] == "timeline.png"
    for link in links:
        assert_png(champion_ws / "reports/pr" / link)
    parser = _Images()
    parser.feed((champion_ws / "reports/pr/report.html").read_text())
    assert parser.srcs == links
    if (champion_ws / "reports/predictions.csv").exists():
        assert links == ["timeline.png", "residuals.png"]
    else:
        assert links == ["timeline.png"]
        assert "> No residual plot: reports/predictions.csv is missing" in md


def test_a_param_edited_and_run_through_the_stages_is_marked_changed(champion_ws, capsys):
    params = champion_ws / "params.yaml"
    text = re.sub(r"n_estimators: \d+", "n_estimators: 20", params.read_text())
    assert "n_estimators: 20" in text
    params.write_text(text)
    for stage in ("train", "evaluate"):
        code, out, err = cli(capsys, "-w", str(champion_ws), "step", stage)
        assert code == 0, out + err
    md = report(capsys, champion_ws)
    version, run = champion_run(champion_ws)
    ours = {"value": json.loads((champion_ws / "reports/metrics.json").read_text())["challenger_mae"]}  # the stage's flat numbers

    changed = table(md, "Params")
    assert changed == [["param", "this branch", f"champion v{version}", ""],
                       ["model.n_estimators", "`20`", f"`{run.data.params['model.n_estimators']}`", "**changed**"]]
    assert "1 param(s) changed: model.n_estimators." in md
    mae = row(table(md, "Metrics"), "MAE (gate)")
    theirs = run.data.metrics["challenger_mae"]
    assert mae[1:3] == [fmt(ours["value"]), fmt(theirs)]
    assert mae[-1] == ("better ▲" if ours["value"] < theirs else "worse ▼")


def test_without_a_champion_the_report_shows_the_workspace_alone(champion_ws, capsys):
    client(champion_ws).delete_registered_model_alias("taxifare", "champion")
    md = report(capsys, champion_ws)
    store = f"sqlite:///{(champion_ws / '.modelcycle/mlflow.db').resolve()}"
    assert f"There is no champion of **taxifare** in the MLflow store `{store}` yet" in md
    ours = {"value": json.loads((champion_ws / "reports/metrics.json").read_text())["challenger_mae"]}  # the stage's flat numbers
    assert row(table(md, "Metrics"), "MAE (gate)") == ["MAE (gate)", fmt(ours["value"])]
    assert "changed" not in md
    assert_png(champion_ws / "reports/pr/timeline.png")


def test_the_report_goes_where_out_says(champion_ws, tmp_path, capsys):
    code, out, err = cli(capsys, "-w", str(champion_ws), "report", "--out", str(tmp_path / "pr"))
    assert code == 0, err
    assert (tmp_path / "pr/report.md").is_file() and (tmp_path / "pr/report.html").is_file()
    assert_png(tmp_path / "pr/timeline.png")
    assert not (champion_ws / "reports/pr").exists()


def test_outside_a_workspace_the_report_says_where_it_looked(tmp_path, capsys):
    code, out, err = cli(capsys, "-w", str(tmp_path), "report")
    assert code == 2
    assert_clean_failure(code, err, "no modelcycle.yaml in", "modelcycle init")


def test_before_any_stage_ran_the_report_says_to_run_the_pipeline(champion_ws, capsys):
    (champion_ws / "reports/metrics.json").unlink()
    code, out, err = cli(capsys, "-w", str(champion_ws), "report")
    assert code == 2
    assert_clean_failure(code, err, "reports/metrics.json does not exist", "dvc repro", "modelcycle run")
    assert not (champion_ws / "reports/pr").exists()


def test_init_commits_the_ci_workflow(champion_ws):
    path = champion_ws / wsmod.WORKFLOW
    assert path.read_text() == wsmod._template("github-workflow.yml")
    tracked = subprocess.run(["git", "ls-files", wsmod.WORKFLOW], cwd=champion_ws, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked == [wsmod.WORKFLOW]
