"""The pull-request report's numbers: the workspace's params and metrics against the champion's.

``modelcycle report`` (and the CI workflow ``init`` writes, which posts the report on a pull
request with CML) compares what the branch's pipeline produced (params.yaml, and the outputs of
the latest stages: ``reports/metrics.json``, ``reports/validation.json``,
``reports/predictions.csv``) with the champion: its registered version's MLflow run, read through
the registry adapter. :mod:`modelcycle.lifecycle.prrender` writes the Markdown, HTML and images.

The champion's scores come from two places, and the report says which one each number is:

* **the same held-out rows**, when the stage outputs scored the champion on the rows the
  branch's model was scored on (a cycle's metrics.json; the ``champion`` column of
  predictions.csv): the fair comparison, and the one the difference is taken against;
* **its own cycle**, the score its MLflow run logged on the window it was trained for: other
  rows, shown for reference, and used for the difference only when nothing else is there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.config import Workspace
from modelcycle.config.secrets import redact
from modelcycle.errors import ModelcycleError, WorkspaceError
from modelcycle.lifecycle import stages
from modelcycle.registry.base import CHAMPION, Registry, RunRecord, flatten_params, param_text
from modelcycle.steps import evaluate as ev

log = logging.getLogger(__name__)

PREDICTIONS = "reports/predictions.csv"
#: the cycles drawn on the timeline, newest last
TIMELINE_CYCLES = 12
#: metrics computed from predictions.csv beside the gate's, by task (per-row labels only)
EXTRA_METRICS = {"classification": ("accuracy", "f1"), "regression": ("mae", "rmse", "r2")}
#: the branch's point on the timeline: its model has not been through the gate
BRANCH_OUTCOME = "not decided yet"
NO_METRICS_HINT = "run the pipeline first: `modelcycle run --window YYYY-MM`, or `dvc repro`"


@dataclass(frozen=True)
class ParamRow:
    """One parameter: its value in the workspace and in the champion's run (text, as MLflow keeps it)."""

    name: str
    workspace: str | None
    champion: str | None

    @property
    def changed(self) -> bool:
        return self.workspace != self.champion


@dataclass(frozen=True)
class MetricRow:
    """One metric of the branch's model beside the champion's. ``greater_is_better`` is None for
    a number without a direction (a row count)."""

    name: str
    label: str
    workspace: float | None
    champion_run: float | None = None        # logged by the champion's own cycle (other rows)
    champion_same_rows: float | None = None  # on the held-out rows the branch's model was scored on
    greater_is_better: bool | None = None
    gate: bool = False

    @property
    def reference(self) -> float | None:
        """What the difference is taken against: the same rows when known."""
        return self.champion_same_rows if self.champion_same_rows is not None else self.champion_run

    @property
    def difference(self) -> float | None:
        if self.workspace is None or self.reference is None:
            return None
        return self.workspace - self.reference

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``same`` by the metric's direction; "" without one."""
        diff = self.difference
        if diff is None or self.greater_is_better is None:
            return ""
        if abs(diff) <= 1e-12 * max(1.0, abs(self.reference or 0.0)):
            return "same"
        return "better" if (diff > 0) == self.greater_is_better else "worse"


@dataclass(frozen=True)
class Champion:
    """The champion as its registered version and MLflow run tell."""

    version: str
    run_id: str | None
    window: str | None
    params: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class TimelinePoint:
    """One cycle for :mod:`modelcycle.lifecycle.timeline` (the attributes it reads)."""

    window: str
    outcome: str
    champion_score: float | None
    challenger_score: float | None
    noise_floor: float | None = None


@dataclass
class ReportData:
    """Everything the report shows."""

    name: str
    task: str
    metric: str
    threshold: float
    window: str | None
    holdout_rows: int | None
    champion: Champion | None
    params: list[ParamRow]
    metrics: list[MetricRow]
    timeline: list[TimelinePoint]
    predictions: pd.DataFrame | None
    store: str = ""                        # the MLflow store searched for the champion (redacted)
    same_rows_source: str | None = None    # where the champion's same-rows score came from
    champions_own: bool = False            # the outputs are those of the champion's own cycle
    notes: list[str] = field(default_factory=list)  # what is missing, in words

    @property
    def changed_params(self) -> list[ParamRow]:
        return [p for p in self.params if p.changed] if self.champion is not None else []


# ---------------------------------------------------------------------------------------------
# the workspace's side
# ---------------------------------------------------------------------------------------------

def _read_json(ws: Workspace, rel: str) -> dict[str, Any] | None:
    path = ws.path(rel)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"{path} cannot be read as JSON: {exc}",
                             f"it is a stage output: {NO_METRICS_HINT} to write it again") from None
    if not isinstance(data, dict):
        raise WorkspaceError(f"{path} does not hold a JSON object",
                             f"it is a stage output: {NO_METRICS_HINT} to write it again")
    return data


def _nested_scores(data: dict[str, Any], metric: str) -> dict[str, Any]:
    """The evaluate stage's flat numbers (``challenger_<metric>``, ``champion_<metric>``, what
    ``dvc exp show`` lists) as the cycle's ``challenger`` / ``champion`` objects, when only they are there."""
    out = dict(data)
    for who in ("challenger", "champion"):
        value = data.get(f"{who}_{metric}")
        if not isinstance(out.get(who), dict) and isinstance(value, int | float):
            out[who] = {"metric": metric, "value": float(value)}
    return out


def workspace_metrics(ws: Workspace) -> dict[str, Any]:
    """reports/metrics.json, checked: a WorkspaceError saying how to make it when it is missing."""
    data = _read_json(ws, stages.METRICS)
    if data is None:
        raise WorkspaceError(f"{ws.path(stages.METRICS)} does not exist: no model of this workspace has "
                             "been scored yet, so there is nothing to report", NO_METRICS_HINT)
    data = _nested_scores(data, ws.config.metric)
    scored = data.get("challenger")
    if not isinstance(scored, dict) or not isinstance(scored.get("value"), int | float):
        raise WorkspaceError(f"{ws.path(stages.METRICS)} has no score of the model (no challenger.value)",
                             f"{NO_METRICS_HINT} to write it again")
    return data


def workspace_params(ws: Workspace) -> dict[str, str]:
    """The settings a cycle logs as its run's params (params.yaml's, and modelcycle.yaml's model,
    features, metric and gate), as MLflow keeps them: flattened names, values as text."""
    c = ws.config
    values: dict[str, Any] = {
        "estimator": c.model.estimator,
        "features": c.features.builder or ",".join(c.features.columns or []) or "raw columns",
        "metric": c.metric, **{f"gate.{k}": v for k, v in c.gate.model_dump().items()},
        **{k: v for k, v in flatten_params(ws.params.model_dump()) if v != {}}}
    return {k: param_text(v) for k, v in values.items()}


def read_predictions(ws: Workspace) -> tuple[pd.DataFrame | None, str | None]:
    """reports/predictions.csv (columns actual, challenger, champion), or None and why not."""
    path = ws.path(PREDICTIONS)
    if not path.is_file():
        return None, (f"{PREDICTIONS} is missing (the evaluate stage writes it with each held-out row's "
                      "label and both models' predictions)")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        return None, f"{PREDICTIONS} cannot be read: {exc}"
    missing = [c for c in ("actual", "challenger") if c not in frame.columns]
    if missing:
        return None, f"{PREDICTIONS} has no column {' or '.join(missing)} (it has: {', '.join(frame.columns)})"
    if "champion" not in frame.columns:
        frame["champion"] = np.nan
    return frame, None


def _score(metric: str, actual: pd.Series, predicted: pd.Series) -> float | None:
    """``metric`` of ``predicted`` against ``actual`` (None when it cannot be computed from labels)."""
    if ev.METRICS[metric].needs_proba or predicted.isna().any() or not len(actual):
        return None
    try:
        return ev.metric_value(metric, actual.to_numpy(), predicted.to_numpy())
    except (ValueError, TypeError, ModelcycleError) as exc:
        log.debug("cannot compute %s from %s: %s", metric, PREDICTIONS, exc)
        return None


# ---------------------------------------------------------------------------------------------
# the champion's side
# ---------------------------------------------------------------------------------------------

def find_champion(reg: Registry, name: str) -> Champion | None:
    """The champion's version and run (params and metrics), or None when there is none."""
    version = reg.get_alias(name, CHAMPION)
    if version is None:
        return None
    run: RunRecord | None = reg.get_run(version.run_id) if version.run_id else None
    return Champion(version=version.version, run_id=version.run_id,
                    window=(run.params.get("window") if run else None) or version.tags.get("window"),
                    params=dict(run.params) if run else {}, metrics=dict(run.metrics) if run else {})


def cycle_points(reg: Registry, name: str, metric: str, limit: int = TIMELINE_CYCLES) -> list[TimelinePoint]:
    """The latest cycles of the model's experiment (its newest run per window), oldest first."""
    newest: dict[str, RunRecord] = {}
    for run in reg.find_runs(name, {}):  # the newest first
        window = run.tags.get("modelcycle.window")
        if window and run.status != "RUNNING" and window not in newest:
            newest[window] = run
    points = []
    for window in sorted(newest)[-limit:]:
        run = newest[window]
        full = reg.get_run(run.run_id)
        outcome = "failed" if run.status in ("FAILED", "KILLED") else run.tags.get("modelcycle.decision", "failed")
        points.append(TimelinePoint(window=window, outcome=outcome,
                                    champion_score=full.metrics.get(f"champion_{metric}"),
                                    challenger_score=full.metrics.get(f"challenger_{metric}"),
                                    noise_floor=full.metrics.get("noise_floor")))
    return points


# ---------------------------------------------------------------------------------------------
# both
# ---------------------------------------------------------------------------------------------

#: params each cycle sets itself (params.yaml's ``window``): they differ from the champion's on
#: every branch, so they are shown apart (the report's title and champion line), never as a change
PER_CYCLE = frozenset({"window"})


def _param_rows(ours: dict[str, str], champion: Champion | None) -> list[ParamRow]:
    ours = {k: v for k, v in ours.items() if k not in PER_CYCLE}
    if champion is None:
        return [ParamRow(k, v, None) for k, v in ours.items()]
    theirs = {k: v for k, v in champion.params.items() if k not in PER_CYCLE}
    rows = [ParamRow(k, v, theirs.get(k)) for k, v in ours.items()]
    # a hyper-parameter the champion had and the workspace no longer sets
    rows += [ParamRow(k, None, v) for k, v in sorted(theirs.items()) if k not in ours and k.startswith("model.")]
    return rows


def _same_rows_champion(data: dict[str, Any], champion: Champion | None) -> float | None:
    """The champion's score on the branch's held-out rows from metrics.json, when it is the
    champion's now (a cycle writes it with the version it scored)."""
    scored = data.get("champion")
    if champion is None or not isinstance(scored, dict) or not isinstance(scored.get("value"), int | float):
        return None
    version = data.get("champion_version")
    if version is not None and str(version) != champion.version:
        return None
    return float(scored["value"])


def gather(ws: Workspace, reg: Registry) -> ReportData:
    """The report's numbers; a WorkspaceError when the workspace has no scored model yet."""
    data = workspace_metrics(ws)
    scored = data["challenger"]
    metric = str(scored.get("metric") or ws.config.metric)
    if metric not in ev.METRICS:
        raise WorkspaceError(f"{ws.path(stages.METRICS)} names the metric '{metric}', which modelcycle does not know",
                             f"{NO_METRICS_HINT} to write it again")
    name, task = ws.config.name, ws.config.data.task
    reg.check()
    champion = find_champion(reg, name)
    notes: list[str] = []
    predictions, missing = read_predictions(ws)
    if missing:
        notes.append(missing)
    same = _same_rows_champion(data, champion)
    source = f"{stages.METRICS}" if same is not None else None
    if same is None and champion is not None and predictions is not None:
        same = _score(metric, predictions["actual"], predictions["champion"])
        source = PREDICTIONS if same is not None else None
    spec = ev.METRICS[metric]
    rows = [MetricRow(metric, spec.label or metric, float(scored["value"]),
                      champion_run=champion.metrics.get(f"challenger_{metric}") if champion else None,
                      champion_same_rows=same, greater_is_better=spec.greater_is_better, gate=True)]
    if predictions is not None:
        for extra in EXTRA_METRICS.get(task, ()):
            if extra == metric:
                continue
            mine = _score(extra, predictions["actual"], predictions["challenger"])
            if mine is None:
                continue
            theirs = _score(extra, predictions["actual"], predictions["champion"]) if champion else None
            rows.append(MetricRow(extra, ev.METRICS[extra].label or extra, mine, champion_same_rows=theirs,
                                  greater_is_better=ev.METRICS[extra].greater_is_better))
    validation = _read_json(ws, stages.VALIDATION)
    invalid = validation.get("window_invalid_fraction") if validation else None
    if isinstance(invalid, int | float):
        rows.append(MetricRow("window_invalid_fraction", "invalid rows in the window", float(invalid),
                              champion_run=champion.metrics.get("window_invalid_fraction") if champion else None,
                              greater_is_better=False))
    holdout = scored.get("rows") if isinstance(scored.get("rows"), int) else None
    rows.append(MetricRow("rows_holdout", "held-out rows", float(holdout) if holdout is not None else None,
                          champion_run=champion.metrics.get("rows_holdout") if champion else None))
    window = str(data["window"]) if data.get("window") else ws.params.window
    points = cycle_points(reg, name, metric)
    points.append(TimelinePoint(window=f"{window or '?'}\n(this branch)", outcome=BRANCH_OUTCOME,
                                champion_score=same, challenger_score=float(scored["value"])))
    own = (champion is not None and window == champion.window and rows[0].champion_run is not None
           and abs(rows[0].champion_run - float(scored["value"])) <= 1e-9 * max(1.0, abs(rows[0].champion_run)))
    return ReportData(name=name, task=task, metric=metric, threshold=ws.config.gate.threshold, window=window,
                      holdout_rows=holdout, champion=champion, params=_param_rows(workspace_params(ws), champion),
                      metrics=rows, timeline=points, predictions=predictions, same_rows_source=source, notes=notes,
                      champions_own=own, store=redact(reg.tracking_uri))


def write(ws: Workspace, reg: Registry, out: Path) -> tuple[ReportData, dict[str, Path]]:
    """Gather the numbers and write report.md, report.html and the images into ``out``;
    returns the data and the files written by kind (md, html and each image)."""
    from modelcycle.lifecycle import prrender

    report = gather(ws, reg)
    return report, prrender.write(report, out)
