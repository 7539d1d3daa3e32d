"""The pull-request report's content from a workspace's files and a registry (the in-memory one):
the tables' values, changed params marked, images that are PNGs linked relative to the report,
the cases without a champion, without predictions, and without metrics."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from modelcycle.config import Workspace
from modelcycle.errors import WorkspaceError
from modelcycle.lifecycle import prrender, prreport
from modelcycle.registry.memory import MemoryRegistry

CONFIG = """\
name: fruit
source: {kind: files, url: "data/*.csv"}
data:
  timestamp: at
  target: kind
  task: %(task)s
  columns: {at: datetime, weight: float, kind: %(target_type)s}
model: {estimator: "sklearn.linear_model:LogisticRegression"}
metric: %(metric)s
gate: {threshold: %(threshold)s}
"""

PARAMS = "window: 2024-03\nseed: 42\nmodel:\n  C: 1.0\n  max_iter: 200\n"

# 10 held-out rows: the branch's model gets 9 right, the champion 7
PREDICTIONS = pd.DataFrame({
    "actual":     ["apple", "apple", "apple", "pear", "pear", "pear", "plum", "plum", "plum", "plum"],
    "challenger": ["apple", "apple", "apple", "pear", "pear", "pear", "plum", "plum", "plum", "pear"],
    "champion":   ["apple", "pear", "apple", "pear", "apple", "pear", "plum", "plum", "plum", "pear"],
})


def make_workspace(root: Path, *, task: str = "classification", metric: str = "accuracy",
                   threshold: float = 0.8, value: float = 0.9, predictions: pd.DataFrame | None = PREDICTIONS,
                   metrics: dict | None = None) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    target_type = "category" if task == "classification" else "float"
    (root / "modelcycle.yaml").write_text(CONFIG % {"task": task, "metric": metric, "threshold": threshold,
                                                    "target_type": target_type})
    (root / "params.yaml").write_text(PARAMS)
    (root / "reports").mkdir(exist_ok=True)
    rows = len(predictions) if predictions is not None else 10
    (root / "reports/metrics.json").write_text(json.dumps(metrics if metrics is not None else {
        "window": "2024-03", "challenger": {"metric": metric, "value": value, "rows": rows, "predict_seconds": 0.01}}))
    (root / "reports/validation.json").write_text(json.dumps({"window_invalid_fraction": 0.02}))
    if predictions is not None:
        predictions.to_csv(root / "reports/predictions.csv", index=False)
    return Workspace.load(root)


def with_champion(ws: Workspace, reg: MemoryRegistry, *, metric: str = "accuracy", score: float = 0.85,
                  window: str = "2024-02", **changed: str) -> str:
    """A finished cycle whose challenger became the champion, with the workspace's params except
    ``changed`` (dotted names given with __ for the dots)."""
    params = {**prreport.workspace_params(ws), "window": window,
              **{k.replace("__", "."): v for k, v in changed.items()}}
    run = reg.start_run(experiment=ws.config.name, run_name=f"cycle {window}",
                        tags={"modelcycle.window": window})
    reg.log_params(run, params)
    reg.log_metrics(run, {f"challenger_{metric}": score, "rows_holdout": 12.0, "window_invalid_fraction": 0.0})
    reg.set_tags(run, {"modelcycle.decision": "promote"})
    reg.end_run(run)
    version = reg.register(ws.config.name, f"runs:/{run}/model", run)
    reg.set_alias(ws.config.name, "champion", version.version)
    return run


def table(md: str, heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``### heading`` (header row included)."""
    rows: list[list[str]] = []
    for ln in md.split(f"### {heading}", 1)[1].splitlines():
        if not ln.startswith("|"):
            if rows:
                break
            continue
        if not re.fullmatch(r"\|(---:?\|)+", ln):  # the alignment row
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]])
    return rows


def row(rows: list[list[str]], first: str) -> list[str]:
    found = [r for r in rows if r[0].strip("*") == first]
    assert found, (first, rows)
    return found[0]


def image_links(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.srcs += [v for k, v in attrs if k == "src" and v]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 200 and image.size[1] > 200


def test_a_branch_that_only_moved_the_window_changed_no_param(tmp_path):
    ws = make_workspace(tmp_path / "ws")  # params.yaml's window is 2024-03
    reg = MemoryRegistry()
    with_champion(ws, reg, window="2024-02")
    data, files = prreport.write(ws, reg, tmp_path / "ws/reports/pr")
    md, page = files["md"].read_text(), files["html"].read_text()
    assert data.changed_params == []
    assert ". No param changed." in md and "No param differs from the champion's." in md
    assert "| window |" not in md and "**changed**" not in md
    assert "Window: this branch `2024-03`, champion v1 `2024-02`; each cycle sets its own" in md
    assert "Window: this branch <code>2024-03</code>, champion v1 <code>2024-02</code>" in page
    assert "<td>window</td>" not in page


def test_the_report_compares_metrics_on_the_same_rows_and_marks_the_changed_params(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    reg = MemoryRegistry()
    with_champion(ws, reg, model__C="0.5")
    out = tmp_path / "ws/reports/pr"
    data, files = prreport.write(ws, reg, out)
    md = files["md"].read_text()

    assert data.champion is not None and data.champion.version == "1"
    assert "champion **v1**" in md
    metrics = table(md, "Metrics")
    assert metrics[0] == ["metric", "this branch", "champion v1, its cycle", "champion v1, same rows",
                          "difference", ""]
    # accuracy: 0.9 from metrics.json; the champion's 0.7 on the same rows from predictions.csv
    # (7 of 10 right), 0.85 from its own cycle; the difference is taken on the same rows
    assert row(metrics, "accuracy (gate)") == ["accuracy (gate)", "0.9", "0.85", "0.7", "+0.2", "better ▲"]
    f1 = row(metrics, "F1")
    assert f1[2] == "—" and f1[-1] == "better ▲"
    assert row(metrics, "invalid rows in the window")[1:] == ["0.02", "0", "—", "+0.02", "worse ▼"]
    assert row(metrics, "held-out rows")[1:3] == ["10", "12"]
    assert "same 10 held-out rows (from `reports/predictions.csv`)" in md

    params = table(md, "Params")
    assert params[0] == ["param", "this branch", "champion v1", ""]
    # the changed ones first, in a table of their own: the edit; the window (each cycle sets its
    # own) is shown apart, in neither table
    assert params[1:] == [["model.C", "`1.0`", "`0.5`", "**changed**"]]
    assert "1 param(s) changed: model.C." in md
    assert "Window: this branch `2024-03`, champion v1 `2024-02`; each cycle sets its own" in md
    unchanged = md.split("unchanged param(s)</summary>", 1)[1]
    assert "| model.max_iter | `200` | `200` |  |" in unchanged
    assert "| model.C |" not in unchanged and "| window |" not in unchanged
    assert [p.name for p in data.changed_params] == ["model.C"]
    assert "window" not in {p.name for p in data.params}

    links = image_links(md)
    assert links == ["timeline.png", "confusion_matrix.png"]
    for link in links:  # relative to the report, as GitHub and CML resolve them
        assert not Path(link).is_absolute() and "/" not in link
        assert_png(files["md"].parent / link)
    parser = _Images()
    parser.feed(files["html"].read_text())
    assert parser.srcs == links
    html = files["html"].read_text()
    assert "<td>model.C</td><td><code>1.0</code></td><td><code>0.5</code></td><td><strong>changed</strong></td>" in html


def test_without_a_champion_the_report_says_so_and_shows_the_workspace_alone(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    data, files = prreport.write(ws, MemoryRegistry(), tmp_path / "out")
    md = files["md"].read_text()
    assert data.champion is None
    assert "There is no champion of **fruit** in the MLflow store `memory://" in md
    metrics = table(md, "Metrics")
    assert metrics[0] == ["metric", "this branch"]
    assert row(metrics, "accuracy (gate)") == ["accuracy (gate)", "0.9"]
    params = table(md, "Params")
    assert params[0] == ["param", "this branch"] and row(params, "model.C") == ["model.C", "`1.0`"]
    assert "changed" not in md
    assert_png(tmp_path / "out/timeline.png")
    assert_png(tmp_path / "out/confusion_matrix.png")  # the branch's model alone


def test_without_predictions_the_report_says_what_is_missing(tmp_path):
    ws = make_workspace(tmp_path / "ws", predictions=None)
    reg = MemoryRegistry()
    with_champion(ws, reg)
    _, files = prreport.write(ws, reg, tmp_path / "out")
    md = files["md"].read_text()
    assert "> No confusion matrix: reports/predictions.csv is missing" in md
    assert image_links(md) == ["timeline.png"]
    assert not (tmp_path / "out/confusion_matrix.png").exists()
    metrics = table(md, "Metrics")
    # only the champion's own cycle to compare with: said, and used
    assert row(metrics, "accuracy (gate)") == ["accuracy (gate)", "0.9", "0.85", "+0.05", "better ▲"]
    assert "not scored on this branch's held-out rows" in md and "window 2024-02: other rows" in md


def test_a_regression_report_draws_the_residuals_and_takes_the_metrics_direction(tmp_path):
    predictions = pd.DataFrame({"actual": [10.0, 12.0, 9.0, 15.0, 11.0, 13.0],
                                "challenger": [11.0, 12.5, 9.0, 14.0, 11.5, 13.0],
                                "champion": [9.0, 14.0, 10.0, 13.0, 12.0, 15.0]})
    ws = make_workspace(tmp_path / "ws", task="regression", metric="mae", threshold=2.0, value=0.5,
                        predictions=predictions)
    reg = MemoryRegistry()
    with_champion(ws, reg, metric="mae", score=1.1)
    _, files = prreport.write(ws, reg, tmp_path / "out")
    md = files["md"].read_text()
    metrics = table(md, "Metrics")
    # the champion's MAE on these rows: (1+2+1+2+1+2)/6 = 1.5; lower is better
    assert row(metrics, "MAE (gate)") == ["MAE (gate)", "0.5", "1.1", "1.5", "-1", "better ▲"]
    assert row(metrics, "R²")[-1] == "better ▲"
    assert "Gate: MAE ≤ 2" in md
    assert image_links(md) == ["timeline.png", "residuals.png"]
    assert_png(tmp_path / "out/residuals.png")


def test_metrics_json_of_a_cycle_gives_the_champions_score_on_the_same_rows(tmp_path):
    """A cycle's metrics.json scored the champion it ran against: used when that is still the
    champion, not when the champion has moved since."""
    cycle = {"window": "2024-03", "metric": "accuracy", "champion_version": "1",
             "challenger": {"metric": "accuracy", "value": 0.8, "rows": 10},
             "champion": {"metric": "accuracy", "value": 0.83, "rows": 10}}
    ws = make_workspace(tmp_path / "ws", predictions=None, metrics=cycle)
    reg = MemoryRegistry()
    with_champion(ws, reg)
    data = prreport.gather(ws, reg)
    gate = data.metrics[0]
    assert (gate.champion_same_rows, gate.reference, gate.verdict) == (0.83, 0.83, "worse")
    assert data.same_rows_source == "reports/metrics.json"

    with_champion(ws, reg, score=0.95)  # v2 is the champion now: the cycle's numbers are v1's
    data = prreport.gather(ws, reg)
    assert data.champion is not None and data.champion.version == "2"
    assert data.metrics[0].champion_same_rows is None and data.metrics[0].reference == 0.95


def test_the_timeline_has_the_cycles_and_this_branch(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    reg = MemoryRegistry()
    with_champion(ws, reg, window="2024-01", score=0.82)
    with_champion(ws, reg, window="2024-02", score=0.86)
    points = prreport.gather(ws, reg).timeline
    assert [(p.window, p.outcome, p.challenger_score) for p in points] == [
        ("2024-01", "promote", 0.82), ("2024-02", "promote", 0.86),
        ("2024-03\n(this branch)", prreport.BRANCH_OUTCOME, 0.9)]
    assert points[-1].champion_score == pytest.approx(0.7)  # the champion on the same rows


def test_no_metrics_yet_is_a_clear_error(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    (tmp_path / "ws/reports/metrics.json").unlink()
    with pytest.raises(WorkspaceError) as err:
        prreport.write(ws, MemoryRegistry(), tmp_path / "out")
    assert "reports/metrics.json does not exist" in err.value.message
    assert "dvc repro" in (err.value.hint or "") and "modelcycle run" in (err.value.hint or "")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"window": "2024-03"}'])
def test_unreadable_metrics_are_a_clear_error(tmp_path, text):
    ws = make_workspace(tmp_path / "ws")
    (tmp_path / "ws/reports/metrics.json").write_text(text)
    with pytest.raises(WorkspaceError) as err:
        prreport.gather(ws, MemoryRegistry())
    assert "reports/metrics.json" in err.value.message
    assert "dvc repro" in (err.value.hint or "")


def test_an_earlier_reports_images_are_replaced(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    out = tmp_path / "out"
    out.mkdir()
    (out / prrender.RESIDUALS).write_bytes(b"old")
    prreport.write(ws, MemoryRegistry(), out)
    assert not (out / prrender.RESIDUALS).exists()
