"""The MLflow 3 adapter: runs, model versions, aliases and tags through one explicit client.

Everything goes through one explicit ``MlflowClient(tracking_uri=..., registry_uri=...)``
(opened by :func:`modelcycle.registry.stores.open_client`). This module never calls
``mlflow.set_tracking_uri``/``set_registry_uri``, ``mlflow.start_run`` or any other fluent API
that keeps global or per-thread state, so two threads (or two registries pointing at two stores)
log to two runs at once without "Run ... is already active".

Where MLflow itself falls back to the global URIs, this module resolves the URI first:

* ``models:/<name>@<alias>``, ``models:/<name>/<version>`` and ``models:/<model_id>`` are turned
  into the artifact location with *our* client before downloading (MLflow's
  ``ModelsArtifactRepository`` builds its own client from the global registry URI, mlflow#18314);
* a version is registered with the logged model's artifact location as ``source`` (the SQL
  registry store resolves a ``models:/m-...`` source with a global ``MlflowClient()``).

The other jobs live beside it: writing a model directory in :mod:`modelcycle.registry.packaging`,
logging it to a run in :mod:`modelcycle.registry.logged_models`, the model a load returns in
:mod:`modelcycle.registry.loaded`, store URIs in :mod:`modelcycle.registry.stores`, and the
registry of a workspace in :func:`modelcycle.registry.workspace.open_registry`.

Errors: every MLflow (and SQLAlchemy, requests, OS) error is translated once, by
:func:`modelcycle.registry.translate.translate`, into :class:`modelcycle.errors.RegistryError`
(``NoChampionError`` when an alias is unset) with a message naming the store or model and a hint.
Console: the first registry quiets MLflow's chatty loggers and progress bars (see
:func:`modelcycle.registry.translate.quiet_mlflow_loggers`). Importing this module does not
import MLflow (seconds); the first registry or model call does.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd

from modelcycle import tracepoints
from modelcycle.errors import RegistryError
from modelcycle.registry import logged_models, sysmetrics
from modelcycle.registry.base import CodePaths, ModelVersion, RunRecord, no_alias_error
from modelcycle.registry.base import alias_name as _alias
from modelcycle.registry.base import flatten_params as _flatten
from modelcycle.registry.base import param_text as _text
from modelcycle.registry.base import truncate as _truncate
from modelcycle.registry.loaded import LoadedModel, load_location
from modelcycle.registry.packaging import save_pyfunc_model
from modelcycle.registry.stores import (
    artifact_files,
    artifact_root,
    check_answers,
    experiment_folder,
    has_scheme,
    experiment_locations,
    log_batches,
    open_client,
    redact_uri,
)
from modelcycle.registry.translate import error_code, is_missing, quiet_mlflow_loggers, translate

if TYPE_CHECKING:
    from modelcycle.steps.model import ModelPipeline

# LoadedModel lived here before the split: code (and any pickle) naming it here still finds it.
__all__ = ["LoadedModel", "MlflowRegistry"]

log = logging.getLogger(__name__)

_STATUSES = ("FINISHED", "FAILED", "KILLED")
_KEY_BAD_CHARS = re.compile(r"[^\w\-./: ]")
_AWAIT_READY_SECONDS = 300



def _key(key: Any) -> str:
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH

    return _KEY_BAD_CHARS.sub("_", str(key))[:MAX_ENTITY_KEY_LENGTH]


def _model_version(mv: Any) -> ModelVersion:
    return ModelVersion(
        name=mv.name,
        version=str(mv.version),
        source=mv.source,
        run_id=mv.run_id or None,
        tags=dict(mv.tags or {}),
        aliases=tuple(mv.aliases or ()),
        created_ms=mv.creation_timestamp,
    )


class MlflowRegistry:
    """The :class:`~modelcycle.registry.base.Registry` on MLflow 3 (see the module doc).

    ``tracking_uri``: ``sqlite:////abs/.modelcycle/mlflow.db`` (embedded default, see
    :func:`modelcycle.registry.stores.embedded_uris`), ``http(s)://`` of a server, or
    ``postgresql://``. ``registry_uri`` defaults to the tracking URI. ``artifact_location``: root
    folder or URI for the artifacts of experiments this registry creates (each experiment gets
    ``<root>/<experiment name>``); None means ``mlartifacts`` beside a SQLite file, or the
    server's choice. A workspace's registry is opened with
    :func:`modelcycle.registry.workspace.open_registry`.
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None,
                 artifact_location: str | None = None, *, system_metrics_interval: float = 1.0) -> None:
        quiet_mlflow_loggers()
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_location = artifact_root(artifact_location, tracking_uri)
        self.system_metrics_interval = system_metrics_interval
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()
        self.relocated: str | None = None  # set by open_registry when it repointed a moved store
        self._client = open_client(self.tracking_uri, self.registry_uri)

    def __repr__(self) -> str:
        return f"MlflowRegistry({redact_uri(self.tracking_uri)!r})"

    # A registry is a handle on an external store: a pickle (to a worker process) re-opens the
    # store there from the URIs.
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _reopen, (self.tracking_uri, self.registry_uri, self.artifact_location, self.system_metrics_interval)

    # -- connection -----------------------------------------------------------------------

    def check(self, timeout: float = 5.0) -> None:
        """Reach the store once; see :func:`modelcycle.registry.stores.check_answers`."""
        check_answers(self._client, self.tracking_uri, timeout)

    def experiment_locations(self, names: list[str]) -> dict[str, str]:
        """The artifact location of each of these experiments that exists."""
        return experiment_locations(self._client, self.tracking_uri, names)

    # -- runs -----------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (with this registry's artifact location) if new."""
        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
            with translate(f"cannot open the MLflow experiment '{name}' in {redact_uri(self.tracking_uri)}"):
                exp = self._client.get_experiment_by_name(name)
                if exp is None:
                    location = f"{self.artifact_location}/{experiment_folder(name)}" if self.artifact_location else None
                    try:
                        exp_id = self._client.create_experiment(name, artifact_location=location)
                    except Exception as exc:  # created meanwhile by another process
                        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                            raise
                        exp = self._client.get_experiment_by_name(name)
                        if exp is None:  # created and deleted for good meanwhile: say what failed
                            raise
                        exp_id = exp.experiment_id
                elif exp.lifecycle_stage == "deleted":
                    raise RegistryError(
                        f"the MLflow experiment '{name}' is deleted",
                        f"restore it (`mlflow experiments restore --experiment-id {exp.experiment_id}`) "
                        "or use another experiment name",
                    )
                else:
                    exp_id = exp.experiment_id
            self._experiments[name] = exp_id
            return exp_id

    def start_run(self, *, experiment: str, run_name: str, tags: dict[str, str] | None = None,
                  parent_run_id: str | None = None) -> str:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        exp_id = self.experiment_id(experiment)
        run_tags = {_key(k): _text(v) for k, v in (tags or {}).items()}
        if parent_run_id:
            run_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        with translate(f"cannot start a run in experiment '{experiment}'"):
            run = self._client.create_run(exp_id, tags=run_tags, run_name=run_name)
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        flat: dict[str, str] = {}
        for key, value in _flatten(params):
            flat[_key(key)] = _truncate(_text(value), MAX_PARAM_VAL_LENGTH)
        with translate(f"cannot log params to run {run_id}",
                        "MLflow params cannot change once logged: log a changed value under a new key"):
            log_batches(self._client, run_id, params=[Param(k, v) for k, v in flat.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(_key(k), float(v), now, int(step or 0)) for k, v in metrics.items() if v is not None]
        with translate(f"cannot log metrics to run {run_id}"):
            log_batches(self._client, run_id, metrics=entries)

    def log_metric_steps(self, run_id: str, steps: Sequence[Mapping[str, float]], step_key: str = "epoch") -> None:
        """One ``log_batch`` (per MLflow's batch limit) of every metric at every step."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(_key(k), float(v), now, int(entry[step_key]))
                   for entry in steps for k, v in entry.items() if k != step_key and v is not None]
        with translate(f"cannot log the learning curve to run {run_id}"):
            log_batches(self._client, run_id, metrics=entries)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag
        from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

        entries = [RunTag(_key(k), _truncate(_text(v), MAX_TAG_VAL_LENGTH)) for k, v in tags.items()]
        with translate(f"cannot set tags on run {run_id}"):
            log_batches(self._client, run_id, tags=entries)

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        with translate(f"cannot write {artifact_file} to run {run_id}"):
            self._client.log_dict(run_id, data, artifact_file)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        if not Path(local_path).exists():
            raise RegistryError(f"cannot log {local_path} to run {run_id}: the path does not exist")
        with translate(f"cannot log {local_path} to run {run_id}"):
            if Path(local_path).is_dir():
                self._client.log_artifacts(run_id, local_path, artifact_path)
            else:
                self._client.log_artifact(run_id, local_path, artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        status = status.upper()
        if status not in _STATUSES:
            raise RegistryError(f"'{status}' is not a run status", f"use one of {', '.join(_STATUSES)}")
        with translate(f"cannot end run {run_id}"):
            self._client.set_terminated(run_id, status)

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the MLflow UI of a tracking server (None for a local store: the
        user opens it with ``mlflow ui --backend-store-uri <tracking uri>``)."""
        if urlparse(self.tracking_uri).scheme not in ("http", "https"):
            return None
        with translate(f"cannot read run {run_id}"):
            experiment_id = self._client.get_run(run_id).info.experiment_id
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def get_run(self, run_id: str) -> RunRecord:
        """What the run holds (params, latest metrics, tags, status, artifact paths, logged
        model ids), in the same shape as the in-memory fake reports it."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        with translate(f"cannot read run {run_id}"):
            run = self._client.get_run(run_id)
            experiment = self._client.get_experiment(run.info.experiment_id).name
            artifacts = artifact_files(self._client, run_id)
            outputs = run.outputs.model_outputs if run.outputs else []
        tags = dict(run.data.tags)
        return RunRecord(
            run_id=run_id, experiment=experiment, name=tags.get(MLFLOW_RUN_NAME, run.info.run_name or ""),
            status=run.info.status, params=dict(run.data.params), metrics=dict(run.data.metrics),
            tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
            parent_run_id=tags.get(MLFLOW_PARENT_RUN_ID), artifacts=artifacts,
            model_ids=[o.model_id for o in outputs],
        )

    def system_metrics(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        """Sample CPU, memory, disk and network of this machine into the run while the block
        runs (see :func:`modelcycle.registry.sysmetrics.sampled_into`)."""
        return sysmetrics.sampled_into(run_id, tracking_uri=self.tracking_uri, interval=self.system_metrics_interval)

    # -- models ---------------------------------------------------------------------------

    def save_model(self, pipeline: ModelPipeline, path: str, *, input_example: pd.DataFrame,
                   extra_code_paths: CodePaths | None = None,
                   extra_pip_requirements: Sequence[str] | None = None) -> None:
        """See :func:`modelcycle.registry.packaging.save_pyfunc_model`."""
        save_pyfunc_model(pipeline, path, input_example=input_example, extra_code_paths=extra_code_paths,
                          extra_pip_requirements=extra_pip_requirements)

    def log_model_dir(self, run_id: str, path: str, artifact_path: str = "model") -> str:
        """Upload the saved model directory ``path`` as an MLflow 3 logged model of ``run_id``
        named ``artifact_path``; returns ``models:/<model_id>`` (see
        :mod:`modelcycle.registry.logged_models`)."""
        return logged_models.log_model_dir(self._client, run_id, path, artifact_path)

    def _resolve(self, uri: str) -> tuple[str, ModelVersion | None]:
        """An artifact URI MLflow can download without global state, and the registered version
        when ``uri`` names one."""
        if uri.startswith("models:/"):
            body = uri[len("models:/"):].strip("/")
            if re.fullmatch(r"m-[0-9a-f]+", body):
                return self._client.get_logged_model(body).artifact_location, None
            if "@" in body:
                name, alias = body.split("@", 1)
                mv = self._client.get_model_version_by_alias(name, _alias(alias))
            elif "/" in body:
                name, version = body.rsplit("/", 1)
                mv = self._client.get_model_version(name, version)
            else:
                raise RegistryError(f"'{uri}' does not name a model version",
                                    "use models:/<name>@champion, models:/<name>/<version> or models:/<model id>")
            location = self._client.get_model_version_download_uri(mv.name, mv.version)
            if location.startswith("models:/"):
                location = self._resolve(location)[0]
            return location, _model_version(mv)
        if uri.startswith("runs:/"):
            run_id, _, sub = uri[len("runs:/"):].partition("/")
            root = self._client.get_run(run_id).info.artifact_uri.rstrip("/")
            return (f"{root}/{sub}" if sub else root), None
        return uri, None

    def load_model(self, uri: str) -> LoadedModel:
        with translate(f"cannot find the model {uri} in {redact_uri(self.registry_uri)}"):
            location, version = self._resolve(uri)
        return load_location(location, uri, version, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    # -- registry -------------------------------------------------------------------------

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self._client.create_registered_model(name)
        except Exception as exc:
            if error_code(exc) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise

    def register(self, name: str, source: str, run_id: str | None,
                 tags: dict[str, str] | None = None) -> ModelVersion:
        """A new version of ``name`` from ``source``: ``models:/<model_id>`` (what
        :meth:`log_model_dir` returns), ``runs:/<run>/<path>``, an artifact URI or a local
        folder. Waits until the version is READY (instant on SQL stores)."""
        with translate(f"cannot register a version of model '{name}' from {source}"):
            model_id = None
            location = source
            if re.fullmatch(r"models:/m-[0-9a-f]+/?", source):
                model_id = source[len("models:/"):].strip("/")
                logged = self._client.get_logged_model(model_id)
                location = logged.artifact_location
                run_id = run_id or logged.source_run_id
            elif source.startswith(("models:/", "runs:/")):
                location = self._resolve(source)[0]
            elif not has_scheme(source):
                location = Path(source).expanduser().resolve().as_uri()
            self._ensure_registered_model(name)
            mv = self._client.create_model_version(
                name, location, run_id=run_id, tags={_key(k): _text(v) for k, v in (tags or {}).items()},
                await_creation_for=_AWAIT_READY_SECONDS,
                # The SQL store looks a model id up through a *global* client when run_id is unset.
                model_id=model_id if run_id else None,
            )
            tracepoints.reach("registry:registered")
            if getattr(mv, "status", "READY") not in ("READY", None):
                raise RegistryError(f"version {mv.version} of model '{name}' is {mv.status}: {mv.status_message}")
        return _model_version(mv)

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Add or overwrite tags of a registered version (e.g. who promoted it and why)."""
        from mlflow.utils.validation import MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH

        with translate(f"cannot tag version {version} of model '{name}'"):
            for key, value in tags.items():
                self._client.set_model_version_tag(name, str(version), _key(key),
                                                   _truncate(_text(value), MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH))

    def delete_version(self, name: str, version: str) -> None:
        """Delete a version (aliases pointing at it go with it). A missing version is not an error."""
        with translate(f"cannot delete version {version} of model '{name}'"):
            try:
                self._client.delete_model_version(name, str(version))
            except Exception as exc:
                if not is_missing(exc):
                    raise
                log.debug("version %s of model %r is already gone", version, name)

    def get_version(self, name: str, version: str) -> ModelVersion:
        with translate(f"cannot read version {version} of model '{name}'",
                        "see the champion and challenger with `modelcycle status`, every version with "
                        f"`mlflow ui --backend-store-uri {redact_uri(self.tracking_uri)}`"):
            return _model_version(self._client.get_model_version(name, str(version)))

    def list_versions(self, name: str) -> list[ModelVersion]:
        escaped = name.replace("'", "\\'")
        versions: list[ModelVersion] = []
        with translate(f"cannot list the versions of model '{name}'"):
            token = None
            while True:
                page = self._client.search_model_versions(f"name = '{escaped}'", page_token=token)
                versions.extend(_model_version(mv) for mv in page)
                token = getattr(page, "token", None)
                if not token:
                    break
            if versions:
                # search results carry no aliases: read them once from the registered model
                by_version: dict[str, list[str]] = {}
                for alias, version in (self._client.get_registered_model(name).aliases or {}).items():
                    by_version.setdefault(str(version), []).append(alias)
                versions = [replace(v, aliases=tuple(sorted(by_version.get(v.version, ())))) for v in versions]
        return sorted(versions, key=lambda v: int(v.version), reverse=True)

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        with translate(f"cannot read alias '{alias}' of model '{name}'"):
            try:
                mv = self._client.get_model_version_by_alias(name, _alias(alias))
            except Exception as exc:
                if is_missing(exc) or error_code(exc) == "INVALID_PARAMETER_VALUE":
                    return None
                raise
        return _model_version(mv)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with translate(f"cannot point alias '{alias}' of model '{name}' at version {version}"):
            self._client.set_registered_model_alias(name, _alias(alias), str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        with translate(f"cannot delete alias '{alias}' of model '{name}'"):
            try:
                self._client.delete_registered_model_alias(name, _alias(alias))
            except Exception as exc:
                if not is_missing(exc):
                    raise

    def find_runs(self, experiment: str, tags: dict[str, str], status: str | None = None) -> list[RunRecord]:
        """Runs of ``experiment`` with all of ``tags`` (a search, not a scan of every run)."""
        from mlflow.entities import ViewType

        def quote(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        terms = [f"tags.`{_key(k)}` = {quote(_text(v))}" for k, v in tags.items()]
        if status:
            terms.append(f"attributes.status = {quote(status.upper())}")
        where = " and ".join(terms)
        with translate(f"cannot search the runs of experiment '{experiment}'"):
            exp = self._client.get_experiment_by_name(experiment)
            if exp is None:
                return []
            found = self._client.search_runs([exp.experiment_id], filter_string=where,
                                             run_view_type=ViewType.ALL, max_results=1000)
        return [RunRecord(run_id=r.info.run_id, experiment=experiment, name=r.info.run_name or "",
                          status=r.info.status,
                          tags={k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")})
                for r in found]

    def find_versions(self, name: str, run_id: str) -> list[ModelVersion]:
        escaped = name.replace("'", "\\'")
        with translate(f"cannot search the versions of model '{name}' from run {run_id}"):
            found = self._client.search_model_versions(f"name = '{escaped}' and run_id = '{run_id}'")
        return sorted((_model_version(mv) for mv in found), key=lambda v: int(v.version), reverse=True)

    def model_tags(self, name: str) -> dict[str, str]:
        with translate(f"cannot read the tags of model '{name}'"):
            try:
                return dict(self._client.get_registered_model(name).tags or {})
            except Exception as exc:
                if is_missing(exc):
                    return {}
                raise

    def set_model_tags(self, name: str, tags: dict[str, str]) -> None:
        from mlflow.utils.validation import MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH

        with translate(f"cannot tag model '{name}'"):
            self._ensure_registered_model(name)
            for key, value in tags.items():
                self._client.set_registered_model_tag(
                    name, _key(key), _truncate(_text(value), MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH))

    def load_alias(self, name: str, alias: str) -> LoadedModel:
        word = _alias(alias)
        if self.get_alias(name, word) is None:
            raise no_alias_error(name, word)
        return self.load_model(f"models:/{name}@{word}")


def _reopen(tracking_uri: str, registry_uri: str, artifact_location: str | None,
            system_metrics_interval: float) -> MlflowRegistry:
    """Unpickle an :class:`MlflowRegistry`: open the same store again."""
    return MlflowRegistry(tracking_uri, registry_uri, artifact_location,
                          system_metrics_interval=system_metrics_interval)
