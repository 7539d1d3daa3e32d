"""DVC experiments are MLflow runs.

``dvc exp run -S model.learning_rate=0.05`` runs the workspace's stages through ``modelcycle
step``; DVC tells each stage's command which experiment it runs for (``DVC_EXP_NAME``, and the
commit it started from, ``DVC_EXP_BASELINE_REV``). The evaluate stage then records the experiment
as ONE MLflow run (:func:`record`) in the workspace's experiments experiment,
``<model_name>-experiments``: apart from the cycles' experiment, so an experiment never counts as
a cycle, never registers a version and never moves an alias. The run is named after the DVC
experiment and tagged with it, with its baseline commit and with the params it changed against
that commit's params.yaml; it holds every param, the challenger's (and the champion's) score on
the held-out rows, the learning curve as steps, the stage's report files and the model.

A plain ``dvc repro`` (no experiment) records nothing in MLflow. An experiment DVC runs in a
copy of the repository (``--temp``, ``--queue``) records in the original workspace's store, which
DVC names in ``DVC_ROOT`` (the copy lacks the git-ignored ``.modelcycle/``).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from modelcycle.config import CONFIG_FILE, PARAMS_FILE, Workspace
from modelcycle.errors import ModelcycleError
from modelcycle.lifecycle import stages
from modelcycle.registry.base import CHAMPION
from modelcycle.steps.evaluate import Scores

if TYPE_CHECKING:
    from modelcycle.registry.base import Registry

log = logging.getLogger(__name__)

#: What DVC sets in a stage command's environment during ``dvc exp run`` (dvc.env).
EXP_NAME_VAR = "DVC_EXP_NAME"
BASELINE_VAR = "DVC_EXP_BASELINE_REV"
ROOT_VAR = "DVC_ROOT"

EXP_TAG = "modelcycle.dvc_exp"
BASELINE_TAG = "modelcycle.dvc_baseline"
CHANGED_TAG = "modelcycle.changed_params"
#: One tag per changed param as well (``modelcycle.changed.model.learning_rate`` = ``0.05``), so
#: the MLflow UI and ``search_runs`` can filter on it.
CHANGED_PREFIX = "modelcycle.changed."
KIND_TAG = "modelcycle.kind"


def home(ws: Workspace) -> Workspace:
    """The workspace whose registry a stage uses: ``ws``, or the original one when DVC runs the
    stage in a copy of the repository (``dvc exp run --temp`` / ``--queue``; DVC sets
    ``DVC_ROOT`` to the original's root)."""
    root = os.environ.get(ROOT_VAR)
    if not root or Path(root).resolve() == Path(ws.root).resolve() or not (Path(root) / CONFIG_FILE).is_file():
        return ws
    return Workspace.load(Path(root))


def experiment_name(ws: Workspace) -> str:
    """The MLflow experiment of a workspace's DVC experiments (the cycles' is the model's name)."""
    return f"{ws.config.name}-experiments"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys (as DVC's ``-S`` and the cycles' MLflow params name them)."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    found: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            found.update(flatten(value, name))
        else:
            found[name] = value
    return found


def _params_at(ws: Workspace, rev: str) -> dict[str, Any] | None:
    """params.yaml as commit ``rev`` holds it (None when git cannot show it)."""
    proc = subprocess.run(["git", "show", f"{rev}:./{PARAMS_FILE}"], cwd=ws.root, capture_output=True,
                          text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return None
    try:
        loaded = yaml.safe_load(proc.stdout)
    except yaml.YAMLError:
        return None
    return loaded if isinstance(loaded, dict) else {}


def current_params(ws: Workspace) -> dict[str, Any]:
    path = ws.path(PARAMS_FILE)
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    return flatten(loaded if isinstance(loaded, dict) else {})


def changed_params(ws: Workspace, baseline: str | None) -> dict[str, Any]:
    """The params.yaml keys whose value differs from the ``baseline`` commit's (a key the
    baseline lacks counts as changed; one removed since shows as None). Without a baseline
    commit to compare with, nothing is known to have changed."""
    if not baseline:
        return {}
    before = _params_at(ws, baseline)
    if before is None:
        return {}
    old, new = flatten(before), current_params(ws)
    return {k: new.get(k) for k in sorted({*old, *new}) if old.get(k) != new.get(k)}


def _text(value: Any) -> str:
    return "null" if value is None else yaml.safe_dump(value, default_flow_style=True).splitlines()[0]


def describe_changes(changed: dict[str, Any]) -> str:
    """``model.learning_rate=0.05, seed=7`` (what ``-S`` was given), or ``none``."""
    return ", ".join(f"{k}={_text(v)}" for k, v in changed.items()) or "none"


def champion_scores(ws: Workspace, registry: Registry, holdout: pd.DataFrame) -> Scores | None:
    """The champion's score on the same held-out rows (None without a champion, or when it
    cannot be loaded or scored: the stage goes on, and says why in the log)."""
    name = ws.config.name
    try:
        if registry.get_alias(name, CHAMPION) is None:
            return None
        return stages.evaluate(ws, registry.load_alias(name, CHAMPION), holdout)
    except ModelcycleError as exc:
        log.warning("the champion of %s is not scored beside the challenger: %s", name, exc.message)
        return None


def record(ws: Workspace, registry: Registry, challenger: Scores, champion: Scores | None) -> str | None:
    """The running DVC experiment as one MLflow run (see the module); None outside ``dvc exp
    run``. Returns a line saying where the run is."""
    name = os.environ.get(EXP_NAME_VAR)
    if not name:
        return None
    baseline = os.environ.get(BASELINE_VAR) or ""
    changed = changed_params(ws, baseline)
    experiment = experiment_name(ws)
    tags = {EXP_TAG: name, BASELINE_TAG: baseline, CHANGED_TAG: describe_changes(changed), KIND_TAG: "experiment",
            "modelcycle.window": ws.params.window or "",
            **{f"{CHANGED_PREFIX}{k}": _text(v) for k, v in changed.items()}}
    run_id = registry.start_run(experiment=experiment, run_name=name, tags=tags)
    try:
        c = ws.config
        registry.log_params(run_id, {**stages.model_settings(ws), "metric": c.metric, **current_params(ws)})
        registry.log_metrics(run_id, stages.flat_metrics(challenger, champion))
        _log_curve(ws, registry, run_id)
        for rel in (stages.METRICS, stages.PREDICTIONS, stages.LEARNING_CURVE):
            if ws.path(rel).is_file():
                registry.log_artifact(run_id, str(ws.path(rel)), "reports")
        if ws.path(stages.MODEL).is_dir():
            registry.log_model_dir(run_id, str(ws.path(stages.MODEL)), "model")
        registry.end_run(run_id, "FINISHED")
    except BaseException:
        try:
            registry.end_run(run_id, "FAILED")
        except ModelcycleError:
            log.debug("could not mark run %s failed", run_id, exc_info=True)
        raise
    return (f"DVC experiment {name} ({describe_changes(changed)}) -> MLflow run {run_id} "
            f"in experiment '{experiment}'")


def _log_curve(ws: Workspace, registry: Registry, run_id: str) -> None:
    """reports/learning_curve.csv as metrics by step (the epoch): the MLflow UI draws them."""
    path = ws.path(stages.LEARNING_CURVE)
    if not path.is_file():
        return
    frame = pd.read_csv(path)
    if "epoch" not in frame.columns:
        return
    for row in frame.to_dict("records"):
        values = {str(k): float(v) for k, v in row.items()
                  if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(float(v))}
        if values:
            registry.log_metrics(run_id, values, step=int(row["epoch"]))
