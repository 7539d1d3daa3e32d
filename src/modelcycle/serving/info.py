"""What ``GET /model`` says about the served version: its lineage as the cycle that registered it
wrote it (version tags and the cycle's MLflow run), with every URL's password redacted."""

from __future__ import annotations

import logging
from typing import Any

from modelcycle.config.secrets import redact
from modelcycle.errors import ModelcycleError
from modelcycle.registry.base import Registry
from modelcycle.serving.loader import Served

log = logging.getLogger(__name__)

#: Version tags a cycle writes (tasks.register_task, act.commit) -> the lineage keys shown.
_VERSION_TAGS = {"window": "window", "git_commit": "git_commit", "git_tag": "git_tag",
                 "dvc_data_hash": "dvc_data_hash", "dvc_model_hash": "dvc_model_hash",
                 "flow_run_id": "flow_run_id", "mlflow_run_id": "mlflow_run_id", "decision": "decision"}
#: The cycle run's tags (cycle.record) -> the lineage keys shown when the version lacks them.
_RUN_TAGS = {"modelcycle.window": "window", "modelcycle.git_commit": "git_commit",
             "modelcycle.git_tag": "git_tag", "modelcycle.dvc_data_hash": "dvc_data_hash",
             "modelcycle.flow_run_id": "flow_run_id", "modelcycle.decision": "decision"}
_SECRET_WORDS = ("password", "secret", "token", "apikey", "api_key", "credential")


def describe(reg: Registry | None, served: Served, alias: str) -> dict[str, Any]:
    """Name, version, alias and lineage of ``served`` (one registry read of its run)."""
    version = served.version
    tags = dict(version.tags)
    lineage: dict[str, Any] = {key: tags[tag] for tag, key in _VERSION_TAGS.items() if tags.get(tag)}
    metrics: dict[str, float | str] = {k: _number(v) for k, v in tags.items() if k.startswith("holdout_")}
    reasons: list[str] = []
    if reg is not None and version.run_id:
        try:
            run = reg.get_run(version.run_id)
        except ModelcycleError as exc:
            log.warning("cannot read the run of version %s of %s: %s", version.version, served.name, exc.message)
        else:
            for tag, key in _RUN_TAGS.items():
                if run.tags.get(tag) and key not in lineage:
                    lineage[key] = run.tags[tag]
            if run.tags.get("modelcycle.reasons"):
                reasons = [r.strip() for r in run.tags["modelcycle.reasons"].split(" | ") if r.strip()]
            metrics.update({k: v for k, v in run.metrics.items() if not k.startswith(("system/", "seconds_"))})
    if version.run_id and "mlflow_run_id" not in lineage:
        lineage["mlflow_run_id"] = version.run_id
    if tags.get("champion_reason"):
        lineage["champion_reason"] = tags["champion_reason"]
    if tags.get("champion_by"):
        lineage["champion_by"] = tags["champion_by"]
    info: dict[str, Any] = {
        "name": served.name, "version": version.version, "alias": alias,
        "source": version.source, "task": served.task,
        "inputs": served.columns, "created_ms": version.created_ms,
        "lineage": lineage, "metrics": metrics, "reasons": reasons,
        "loaded_seconds": round(served.loaded_s, 3),
    }
    return _redacted(info)


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _redacted(value: Any, key: str = "") -> Any:
    if any(w in key.lower() for w in _SECRET_WORDS):
        return "***"
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value
