"""An in-memory :class:`~modelcycle.registry.base.Registry` for fast tests.

Same contract as :class:`modelcycle.registry.mlflow.MlflowRegistry`, including its errors:
runs addressed by id, params that cannot change once logged, metrics with history,
versions numbered 1, 2, ... per model (never reused after a delete), aliases that move and go
away with their version, ``NoChampionError`` from ``load_alias`` when an alias is unset, and
``RegistryError`` for anything missing or corrupt. Nothing here imports MLflow.

``save_model`` pickles the pipeline to ``<path>/pipeline.pkl``; ``log_model_dir`` reads that
file (or ``artifacts/pipeline.pkl`` of a directory written by the MLflow adapter) into memory, so
``load_model``/``load_alias`` return the pipeline itself.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import pandas as pd

from modelcycle import tracepoints
from modelcycle.errors import ModelcycleError, ModelError, RegistryError
from modelcycle.registry.base import (
    CodePaths,
    ModelVersion,
    RunRecord,
    alias_name,
    flatten_params,
    no_alias_error,
    param_text,
    truncate,
)

PIPELINE_FILE = "pipeline.pkl"
if TYPE_CHECKING:
    from modelcycle.steps.model import ModelPipeline

_STATUSES = ("FINISHED", "FAILED", "KILLED")
_PARAM_LIMIT = 6000  # MLflow's MAX_PARAM_VAL_LENGTH
_TAG_LIMIT = 8000  # MLflow's MAX_TAG_VAL_LENGTH


def _restore(state: dict[str, Any]) -> MemoryRegistry:
    """Unpickle a :class:`MemoryRegistry` (its data, a new lock)."""
    registry = MemoryRegistry.__new__(MemoryRegistry)
    registry.__dict__.update(state)
    registry._lock = threading.RLock()
    return registry


class MemoryRegistry:
    """The fake. ``tracking_uri`` is ``memory://<id>``; each instance is its own store."""

    def __init__(self) -> None:
        self.tracking_uri = f"memory://{uuid.uuid4().hex[:8]}"
        self.runs: dict[str, RunRecord] = {}
        self.models: dict[str, bytes] = {}  # model id -> pickled pipeline
        self.versions: dict[str, dict[str, ModelVersion]] = {}
        self.aliases: dict[str, dict[str, str]] = {}
        self._last_version: dict[str, int] = {}  # per model; numbers are never reused
        self.model_tag_values: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()

    # A pickle (to another process) carries the data.
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        with self._lock:
            return _restore, ({k: v for k, v in self.__dict__.items() if k != "_lock"},)

    def check(self, timeout: float = 5.0) -> None:
        """An in-memory store always answers."""

    # runs ---------------------------------------------------------------------------------
    def _run(self, run_id: str) -> RunRecord:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RegistryError(f"run {run_id} does not exist", "check the run id") from None

    def _running(self, run_id: str) -> RunRecord:
        return self._run(run_id)

    def start_run(self, *, experiment: str, run_name: str, tags: dict[str, str] | None = None,
                  parent_run_id: str | None = None) -> str:
        with self._lock:
            if parent_run_id is not None:
                self._run(parent_run_id)
            run_id = uuid.uuid4().hex
            self.runs[run_id] = RunRecord(
                run_id=run_id, experiment=experiment, name=run_name,
                tags={str(k): param_text(v) for k, v in (tags or {}).items()}, parent_run_id=parent_run_id,
            )
            return run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        with self._lock:
            run = self._running(run_id)
            flat = {k: truncate(param_text(v), _PARAM_LIMIT) for k, v in flatten_params(params)}
            for key, value in flat.items():
                if key in run.params and run.params[key] != value:
                    raise RegistryError(
                        f"cannot log params to run {run_id}: param '{key}' is already {run.params[key]!r}, "
                        f"not {value!r}",
                        "MLflow params cannot change once logged: log a changed value under a new key",
                    )
            run.params.update(flat)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        with self._lock:
            run = self._running(run_id)
            for key, value in metrics.items():
                if value is None:
                    continue
                value = float(value)
                run.metrics[key] = value
                run.metric_history.setdefault(key, []).append((int(step or 0), value))

    def log_metric_steps(self, run_id: str, steps: Sequence[Mapping[str, float]], step_key: str = "epoch") -> None:
        with self._lock:
            run = self._running(run_id)
            for entry in steps:
                step = int(entry[step_key])
                for key, value in entry.items():
                    if key != step_key and value is not None:
                        run.metrics[key] = float(value)
                        run.metric_history.setdefault(key, []).append((step, float(value)))

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with self._lock:
            self._running(run_id).tags.update({str(k): truncate(param_text(v), _TAG_LIMIT) for k, v in tags.items()})

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        with self._lock:
            self._running(run_id).artifacts[artifact_file] = json.loads(json.dumps(data, default=str))

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        source = Path(local_path)
        if not source.exists():
            raise RegistryError(f"cannot log {local_path} to run {run_id}: the path does not exist")
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        with self._lock:
            run = self._running(run_id)
            for file in files:
                # like MLflow: a file keeps its name, a folder's contents go under artifact_path
                rel = file.name if source.is_file() else file.relative_to(source).as_posix()
                key = f"{artifact_path.rstrip('/')}/{rel}" if artifact_path else rel
                run.artifacts[key] = file.read_bytes()

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        status = status.upper()
        if status not in _STATUSES:
            raise RegistryError(f"'{status}' is not a run status", f"use one of {', '.join(_STATUSES)}")
        with self._lock:
            self._run(run_id).status = status

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            return copy.deepcopy(self._run(run_id))

    @contextlib.contextmanager
    def system_metrics(self, run_id: str) -> Iterator[None]:
        """Logs one ``system/...`` sample at the end of the block (psutil if present)."""
        self._run(run_id)
        try:
            yield
        finally:
            sample = {"system/cpu_utilization_percentage": 0.0}
            try:
                import psutil

                sample = {
                    "system/cpu_utilization_percentage": float(psutil.cpu_percent(interval=None)),
                    "system/system_memory_usage_percentage": float(psutil.virtual_memory().percent),
                }
            except (ImportError, OSError):  # pragma: no cover - psutil is a dependency
                pass
            self.log_metrics(run_id, sample)

    # models -------------------------------------------------------------------------------
    def save_model(self, pipeline: ModelPipeline, path: str, *, input_example: pd.DataFrame,
                   extra_code_paths: CodePaths | None = None,
                   extra_pip_requirements: Sequence[str] | None = None) -> None:
        target = Path(path)
        if target.exists() and any(target.iterdir()):
            raise RegistryError(f"cannot save the model to {target}: the folder exists and is not empty",
                                "choose a new folder, or delete the old one first")
        if input_example is None or len(input_example) == 0:
            raise ModelError("the input example for the model has no rows", "pass a few raw records, e.g. frame.head()")
        try:
            pipeline.predict(input_example.head(5))
        except ModelcycleError:
            raise
        except Exception as exc:
            raise ModelError(f"the model cannot predict on its input example: {exc}",
                             "check that the example holds raw records with the columns the model needs") from exc
        for extra in extra_code_paths or []:
            if not Path(extra).exists():
                raise ModelError(f"the extra code path {extra} does not exist")
        target.mkdir(parents=True, exist_ok=True)
        (target / PIPELINE_FILE).write_bytes(cloudpickle.dumps(pipeline))

    def log_model_dir(self, run_id: str, path: str, artifact_path: str = "model") -> str:
        model_dir = Path(path)
        candidates = [model_dir / PIPELINE_FILE, model_dir / "artifacts" / PIPELINE_FILE]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise RegistryError(f"{model_dir} is not a saved model directory (no {PIPELINE_FILE})",
                                "write the model with save_model first")
        with self._lock:
            run = self._run(run_id)
            model_id = f"m-{uuid.uuid4().hex}"
            self.models[model_id] = found.read_bytes()
            run.model_ids.append(model_id)
        return f"models:/{model_id}"

    def _unpickle(self, blob: bytes, uri: str, where: str) -> Any:
        try:
            return cloudpickle.loads(blob)
        except Exception as exc:
            raise RegistryError(
                f"cannot load the model {where}: the model pipeline cannot be read ({type(exc).__name__}: {exc})",
                "the model's files are missing, truncated or corrupt: register the model again "
                "(`modelcycle run`), or point the alias at another version (`modelcycle promote --version N`)",
            ) from exc

    def _blob_for(self, uri: str) -> tuple[bytes, str]:
        if uri.startswith("models:/"):
            body = uri[len("models:/"):].strip("/")
            if body in self.models:
                return self.models[body], uri
            if "@" in body:
                name, alias = body.split("@", 1)
                mv = self.get_alias(name, alias)
                if mv is None:
                    raise RegistryError(f"cannot find the model {uri}: model '{name}' has no alias '{alias}'")
            elif "/" in body:
                name, version = body.rsplit("/", 1)
                mv = self.get_version(name, version)
            else:
                raise RegistryError(f"cannot find the model {uri}",
                                    "use models:/<name>@champion, models:/<name>/<version> or models:/<model id>")
            blob, _ = self._blob_for(mv.source)
            return blob, f"{uri} (version {mv.version})"
        local = Path(uri.removeprefix("file://"))
        for candidate in (local / PIPELINE_FILE, local / "artifacts" / PIPELINE_FILE):
            if candidate.is_file():
                return candidate.read_bytes(), uri
        raise RegistryError(f"cannot find the model {uri}", "check the URI or path")

    def load_model(self, uri: str) -> Any:
        with self._lock:
            blob, where = self._blob_for(uri)
        return self._unpickle(blob, uri, where)

    # registry -----------------------------------------------------------------------------
    def _version_with_aliases(self, mv: ModelVersion) -> ModelVersion:
        names = tuple(sorted(a for a, v in self.aliases.get(mv.name, {}).items() if v == mv.version))
        return replace(mv, aliases=names, tags=dict(mv.tags))

    def register(self, name: str, source: str, run_id: str | None,
                 tags: dict[str, str] | None = None) -> ModelVersion:
        with self._lock:
            if source.startswith("models:/m-") and source[len("models:/"):].strip("/") not in self.models:
                raise RegistryError(f"cannot register a version of model '{name}' from {source}: no such logged model")
            if run_id is not None:
                self._run(run_id)
            self._last_version[name] = self._last_version.get(name, 0) + 1
            self.versions.setdefault(name, {})
            self.aliases.setdefault(name, {})
            version = str(self._last_version[name])
            mv = ModelVersion(name=name, version=version, source=source, run_id=run_id,
                              tags={str(k): param_text(v) for k, v in (tags or {}).items()},
                              created_ms=int(time.time() * 1000))
            self.versions[name][version] = mv
        tracepoints.reach("registry:registered")
        return self._version_with_aliases(mv)

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        with self._lock:
            mv = self.get_version(name, version)
            merged = {**mv.tags, **{str(k): param_text(v) for k, v in tags.items()}}
            self.versions[name][str(version)] = replace(self.versions[name][str(version)], tags=merged)

    def delete_version(self, name: str, version: str) -> None:
        with self._lock:
            versions = self.versions.get(name, {})
            if versions.pop(str(version), None) is None:
                return
            aliases = self.aliases.get(name, {})
            for alias in [a for a, v in aliases.items() if v == str(version)]:
                del aliases[alias]

    def get_version(self, name: str, version: str) -> ModelVersion:
        with self._lock:
            mv = self.versions.get(name, {}).get(str(version))
            if mv is None:
                raise RegistryError(f"cannot read version {version} of model '{name}': it does not exist",
                                    "see the champion and challenger with `modelcycle status`, "
                                    "every version with `mlflow ui`")
            return self._version_with_aliases(mv)

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._lock:
            found = [self._version_with_aliases(mv) for mv in self.versions.get(name, {}).values()]
        return sorted(found, key=lambda v: int(v.version), reverse=True)

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        with self._lock:
            version = self.aliases.get(name, {}).get(alias_name(alias))
            if version is None:
                return None
            return self._version_with_aliases(self.versions[name][version])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with self._lock:
            if str(version) not in self.versions.get(name, {}):
                raise RegistryError(
                    f"cannot point alias '{alias}' of model '{name}' at version {version}: the version does not exist"
                )
            self.aliases[name][alias_name(alias)] = str(version)

    def delete_alias(self, name: str, alias: str) -> None:
        with self._lock:
            self.aliases.get(name, {}).pop(alias_name(alias), None)

    def find_runs(self, experiment: str, tags: dict[str, str], status: str | None = None) -> list[RunRecord]:
        with self._lock:
            return [replace(copy.deepcopy(r), params={}, metrics={}, metric_history={}, artifacts={})
                    for r in self.runs.values()
                    if r.experiment == experiment and all(r.tags.get(k) == v for k, v in tags.items())
                    and (status is None or r.status == status.upper())]

    def find_versions(self, name: str, run_id: str) -> list[ModelVersion]:
        return [v for v in self.list_versions(name) if v.run_id == run_id]

    def model_tags(self, name: str) -> dict[str, str]:
        with self._lock:
            return dict(self.model_tag_values.get(name, {}))

    def set_model_tags(self, name: str, tags: dict[str, str]) -> None:
        with self._lock:
            self.versions.setdefault(name, {})
            self.aliases.setdefault(name, {})
            self.model_tag_values.setdefault(name, {}).update({str(k): param_text(v) for k, v in tags.items()})

    def load_alias(self, name: str, alias: str) -> Any:
        word = alias_name(alias)
        if self.get_alias(name, word) is None:
            raise no_alias_error(name, word)
        return self.load_model(f"models:/{name}@{word}")
