"""The MLflow 3 adapter: tracking and the model registry.

Everything goes through one explicit ``MlflowClient(tracking_uri=..., registry_uri=...)``. This
module never calls ``mlflow.set_tracking_uri``/``set_registry_uri``, ``mlflow.start_run`` or any
other fluent API that keeps global or per-thread state, so two threads (or two registries
pointing at two stores) log to two runs at once without "Run ... is already active".

Where MLflow itself falls back to the global URIs, this module resolves the URI first:

* ``models:/<name>@<alias>``, ``models:/<name>/<version>`` and ``models:/<model_id>`` are turned
  into the artifact location with *our* client before downloading (MLflow's
  ``ModelsArtifactRepository`` builds its own client from the global registry URI, mlflow#18314);
* a version is registered with the logged model's artifact location as ``source`` (the SQL
  registry store resolves a ``models:/m-...`` source with a global ``MlflowClient()``).

How a model is stored (MLflow 3 "logged models")
-------------------------------------------------
:meth:`MlflowRegistry.save_model` writes a pyfunc directory (see
:mod:`modelcycle.registry.packaging`: "models from code", the fitted pipeline as the artifact
``pipeline.pkl``, the ``modelcycle`` package under ``code/``, explicit pip requirements).
:meth:`MlflowRegistry.log_model_dir` then does with the explicit client what ``Model.log`` does
with the fluent one: ``create_logged_model(experiment, source_run_id=run)``,
``log_model_artifacts``, stamps ``model_id``/``run_id`` into ``MLmodel``, links the model to the
run as an output and finalizes it ``READY``. It returns ``models:/<model_id>``, which
:meth:`MlflowRegistry.register` and :meth:`MlflowRegistry.load_model` accept (the latter returns
a :class:`modelcycle.registry.loaded.LoadedModel`). The model shows on the run's and the
experiment's "Logged models" pages (not under the run's artifacts, which is MLflow 3's layout).
``mlflow.pyfunc.log_model`` was not used: it resolves the tracking URI from global state and
re-saves the model.

Errors: every MLflow (and SQLAlchemy, requests, OS) error is translated once, by
:func:`modelcycle.registry.translate.translate`, into :class:`modelcycle.errors.RegistryError`
(``NoChampionError`` when an alias is unset) with a message naming the store or model and a hint.

Console: the first registry quiets MLflow's chatty loggers and progress bars (see
:func:`modelcycle.registry.translate.quiet_mlflow_loggers`). Importing this module does not
import MLflow (seconds); the first registry or model call does.

A workspace opens its registry with :func:`modelcycle.registry.workspace.for_workspace`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from modelcycle import dbcache, tracepoints
from modelcycle.config import redact
from modelcycle.errors import RegistryError
from modelcycle.registry.base import ModelVersion, RunRecord, no_alias_error
from modelcycle.registry.base import alias_name as _alias
from modelcycle.registry.base import flatten_params as _flatten
from modelcycle.registry.base import param_text as _text
from modelcycle.registry.base import truncate as _truncate
from modelcycle.registry.loaded import LoadedModel
from modelcycle.registry.packaging import save_pyfunc_model
from modelcycle.registry.translate import error_code as _mlflow_error_code
from modelcycle.registry.translate import exc_text as _exc_text
from modelcycle.registry.translate import is_missing as _is_missing
from modelcycle.registry.translate import quiet_mlflow_loggers as _quiet_mlflow_loggers
from modelcycle.registry.translate import translate as _translate

log = logging.getLogger(__name__)

_STATUSES = ("FINISHED", "FAILED", "KILLED")
_KEY_BAD_CHARS = re.compile(r"[^\w\-./: ]")
_AWAIT_READY_SECONDS = 300
# mlflow.pyfunc.load_model of a "models from code" model runs the code file and reads the model
# it registered from a module global (mlflow.models.model.__mlflow_model__): loads must not
# interleave.
_LOAD_LOCK = threading.RLock()


# --------------------------------------------------------------------------------------------
# URIs
# --------------------------------------------------------------------------------------------


_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "source"),
                     ("model_versions", "storage_location"))


def relocate_store(db: Path, artifact_root: str, marker: str) -> str | None:
    """Point a SQLite store's artifact locations at ``artifact_root`` (a ``file://`` URI) when
    they point into the same folder of another place: the workspace holding the store was
    moved or copied (MLflow stores absolute locations). ``marker`` is the artifact folder as it
    appears in every location (``/.modelcycle/mlartifacts``). Returns what moved, or None.

    Only the five location columns are rewritten, inside one transaction; running it again
    changes nothing."""
    import sqlite3

    if not db.is_file():
        return None
    con = sqlite3.connect(str(db), timeout=30)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return None
        olds: set[str] = set()
        for (location,) in con.execute("SELECT artifact_location FROM experiments"):
            if not location or location.startswith(artifact_root + "/") or location == artifact_root:
                continue
            cut = location.find(marker + "/")
            if location.startswith("file://") and cut > 0:
                olds.add(location[:cut + len(marker)])
        if not olds:
            return None
        with con:
            for old in sorted(olds):
                for table, column in _LOCATION_COLUMNS:
                    if table in tables:
                        con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608
                                    f"WHERE {column} LIKE ? ESCAPE '\\'",
                                    (artifact_root, len(old) + 1,
                                     old.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"))
        return f"{', '.join(sorted(olds))} -> {artifact_root}"
    finally:
        con.close()


def embedded_uris(workspace: str | os.PathLike[str]) -> tuple[str, str]:
    """The embedded default backend of a workspace: ``(tracking_uri, artifact_location)``.

    ``sqlite:////abs/ws/.modelcycle/mlflow.db`` and ``file:///abs/ws/.modelcycle/mlartifacts``.
    """
    root = Path(workspace).expanduser().resolve() / ".modelcycle"
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}", (root / "mlartifacts").as_uri()


def redact_uri(uri: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return redact(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory as SQLite
    reads it), or None for other stores and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///"):].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw)


def _has_scheme(location: str) -> bool:
    scheme = urlparse(location).scheme
    return len(scheme) > 1  # "C:\\..." is a Windows drive, not a scheme


def _artifact_root(artifact_location: str | None, tracking_uri: str) -> str | None:
    """Normalise ``artifact_location`` to a URI. A local folder becomes ``file:///abs``; with
    None, a SQLite store keeps artifacts in ``mlartifacts`` beside the database file (MLflow's
    own default would be ``./mlartifacts`` under whatever the working directory is)."""
    if artifact_location is None:
        db = sqlite_path(tracking_uri)
        if db is None:
            return None  # a server decides (mlflow-artifacts proxy) or MLflow's default
        return (db.expanduser().resolve().parent / "mlartifacts").as_uri()
    if _has_scheme(artifact_location):
        return artifact_location.rstrip("/")
    return Path(artifact_location).expanduser().resolve().as_uri()


def _safe_folder(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "experiment"

# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


def _key(key: Any) -> str:
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH

    return _KEY_BAD_CHARS.sub("_", str(key))[:MAX_ENTITY_KEY_LENGTH]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
    :func:`embedded_uris`), ``http(s)://`` of a server, or ``postgresql://``. ``registry_uri``
    defaults to the tracking URI. ``artifact_location``: root folder or URI for the artifacts of
    experiments this registry creates (each experiment gets ``<root>/<experiment name>``); None
    means ``mlartifacts`` beside a SQLite file, or the server's choice.
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None,
                 artifact_location: str | None = None, *, system_metrics_interval: float = 1.0) -> None:
        _quiet_mlflow_loggers()
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_location = _artifact_root(artifact_location, tracking_uri)
        self.system_metrics_interval = system_metrics_interval
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()
        self.relocated: str | None = None  # set by for_workspace when it repointed a moved store
        for uri in {self.tracking_uri, self.registry_uri}:
            self._preflight(uri)
        # a new SQLite store starts from the cached empty schema (MLflow's migrations take seconds)
        fresh = [db for uri in {self.tracking_uri, self.registry_uri}
                 if (db := sqlite_path(uri)) is not None and not db.expanduser().exists()
                 and not dbcache.seed("mlflow", db.expanduser())]
        from mlflow import MlflowClient

        with _translate(f"cannot open the MLflow store {redact_uri(self.tracking_uri)}",
                        self._open_hint()):
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
            if fresh:
                self._client.search_experiments(max_results=1)      # runs the migrations now
                self._client.search_registered_models(max_results=1)
        for db in fresh:
            dbcache.remember("mlflow", db.expanduser())

    def __repr__(self) -> str:
        return f"MlflowRegistry({redact_uri(self.tracking_uri)!r})"

    # A registry is a handle on an external store: a pickle (to a worker process) re-opens the
    # store there from the URIs.
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _reopen, (self.tracking_uri, self.registry_uri, self.artifact_location, self.system_metrics_interval)

    # -- connection -----------------------------------------------------------------------

    def _open_hint(self) -> str:
        scheme = urlparse(self.tracking_uri).scheme
        if scheme.startswith("postgres"):
            # SQLAlchemy 2.1 made psycopg (v3) the driver of plain postgresql:// URIs.
            return ("check the host, database and credentials, and that the driver is installed: "
                    "`pip install 'modelcycle[postgres]'` (psycopg 3) for postgresql://")
        return "check backends.mlflow_tracking_uri in modelcycle.yaml or MLFLOW_TRACKING_URI"

    def _preflight(self, uri: str) -> None:
        db = sqlite_path(uri)
        if db is not None and not db.expanduser().parent.is_dir():
            raise RegistryError(
                f"cannot open the MLflow store {uri}: the folder {db.expanduser().parent} does not exist",
                "create it (`modelcycle init` makes .modelcycle/ in a workspace), or fix backends.mlflow_tracking_uri "
                "in modelcycle.yaml / MLFLOW_TRACKING_URI",
            )

    def check(self, timeout: float = 5.0) -> None:
        """Reach the store once (a cheap query; for a server, ``/health`` with ``timeout``).

        Raises RegistryError naming the URI when it does not answer. MLflow's own HTTP client
        retries for minutes before giving up, so call this before a long flow."""
        parts = urlparse(self.tracking_uri)
        if parts.scheme in ("http", "https"):
            import requests

            url = self.tracking_uri.rstrip("/") + "/health"
            try:
                requests.get(url, timeout=timeout)
            except requests.RequestException as exc:
                raise RegistryError(
                    f"the MLflow server {redact_uri(self.tracking_uri)} does not answer: {_exc_text(exc)}",
                    "start it (`mlflow server ...`) or fix backends.mlflow_tracking_uri in modelcycle.yaml / MLFLOW_TRACKING_URI",
                ) from exc
            return
        with _translate(f"the MLflow store {redact_uri(self.tracking_uri)} does not answer", self._open_hint()):
            self._client.search_experiments(max_results=1)

    # -- runs -----------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (with this registry's artifact location) if new."""
        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
            with _translate(f"cannot open the MLflow experiment '{name}' in {redact_uri(self.tracking_uri)}"):
                exp = self._client.get_experiment_by_name(name)
                if exp is None:
                    location = f"{self.artifact_location}/{_safe_folder(name)}" if self.artifact_location else None
                    try:
                        exp_id = self._client.create_experiment(name, artifact_location=location)
                    except Exception as exc:  # created meanwhile by another process
                        if _mlflow_error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                            raise
                        exp = self._client.get_experiment_by_name(name)
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
        with _translate(f"cannot start a run in experiment '{experiment}'"):
            run = self._client.create_run(exp_id, tags=run_tags, run_name=run_name)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        flat: dict[str, str] = {}
        for key, value in _flatten(params):
            flat[_key(key)] = _truncate(_text(value), MAX_PARAM_VAL_LENGTH)
        entries = [Param(k, v) for k, v in flat.items()]
        with _translate(f"cannot log params to run {run_id}",
                        "MLflow params cannot change once logged: log a changed value under a new key"):
            for chunk in _chunks(entries, MAX_PARAMS_TAGS_PER_BATCH):
                self._client.log_batch(run_id, params=chunk, synchronous=True)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        now = int(time.time() * 1000)
        entries = [Metric(_key(k), float(v), now, int(step or 0)) for k, v in metrics.items() if v is not None]
        with _translate(f"cannot log metrics to run {run_id}"):
            for chunk in _chunks(entries, MAX_METRICS_PER_BATCH):
                self._client.log_batch(run_id, metrics=chunk, synchronous=True)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag
        from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH

        entries = [RunTag(_key(k), _truncate(_text(v), MAX_TAG_VAL_LENGTH)) for k, v in tags.items()]
        with _translate(f"cannot set tags on run {run_id}"):
            for chunk in _chunks(entries, MAX_PARAMS_TAGS_PER_BATCH):
                self._client.log_batch(run_id, tags=chunk, synchronous=True)

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        with _translate(f"cannot write {artifact_file} to run {run_id}"):
            self._client.log_dict(run_id, data, artifact_file)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        if not Path(local_path).exists():
            raise RegistryError(f"cannot log {local_path} to run {run_id}: the path does not exist")
        with _translate(f"cannot log {local_path} to run {run_id}"):
            if Path(local_path).is_dir():
                self._client.log_artifacts(run_id, local_path, artifact_path)
            else:
                self._client.log_artifact(run_id, local_path, artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        status = status.upper()
        if status not in _STATUSES:
            raise RegistryError(f"'{status}' is not a run status", f"use one of {', '.join(_STATUSES)}")
        with _translate(f"cannot end run {run_id}"):
            self._client.set_terminated(run_id, status)

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the MLflow UI of a tracking server (None for a local store: the
        user opens it with ``mlflow ui --backend-store-uri <tracking uri>``)."""
        if urlparse(self.tracking_uri).scheme not in ("http", "https"):
            return None
        with _translate(f"cannot read run {run_id}"):
            experiment_id = self._client.get_run(run_id).info.experiment_id
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def get_run(self, run_id: str) -> RunRecord:
        """What the run holds (params, latest metrics, tags, status, artifact paths, logged
        model ids), in the same shape as the in-memory fake reports it."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        with _translate(f"cannot read run {run_id}"):
            run = self._client.get_run(run_id)
            experiment = self._client.get_experiment(run.info.experiment_id).name
            artifacts: dict[str, Any] = {}
            pending = [None]
            while pending:
                for info in self._client.list_artifacts(run_id, pending.pop()):
                    if info.is_dir:
                        pending.append(info.path)
                    else:
                        artifacts[info.path] = info.file_size
            outputs = run.outputs.model_outputs if run.outputs else []
        tags = dict(run.data.tags)
        return RunRecord(
            run_id=run_id, experiment=experiment, name=tags.get(MLFLOW_RUN_NAME, run.info.run_name or ""),
            status=run.info.status, params=dict(run.data.params), metrics=dict(run.data.metrics),
            tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
            parent_run_id=tags.get(MLFLOW_PARENT_RUN_ID), artifacts=artifacts,
            model_ids=[o.model_id for o in outputs],
        )

    @contextlib.contextmanager
    def system_metrics(self, run_id: str) -> Iterator[None]:
        """Sample CPU, memory, disk and network of this machine into the run (``system/...``
        metrics, one step per ``system_metrics_interval`` seconds, plus one at the end).

        MLflow's ``SystemMetricsMonitor`` is started for this run id with this registry's
        tracking URI: no active fluent run is needed. Without psutil it does nothing."""
        monitor = None
        try:
            import psutil  # noqa: F401  (MLflow's CPU monitor needs it)
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(run_id, sampling_interval=self.system_metrics_interval,
                                           samples_before_logging=1, tracking_uri=self.tracking_uri)
            monitor.start()
        except Exception as exc:
            log.debug("system metrics unavailable for run %s: %s", run_id, exc)
            monitor = None
        try:
            yield
        finally:
            if monitor is not None:
                try:
                    monitor.finish()
                    # A last sample, so that a block shorter than the interval still leaves one.
                    monitor.collect_metrics()
                    monitor.publish_metrics(monitor.aggregate_metrics())
                    monitor.mlflow_logger.flush()
                except Exception as exc:
                    log.debug("could not flush system metrics of run %s: %s", run_id, exc)

    # -- models ---------------------------------------------------------------------------

    def save_model(self, pipeline: Any, path: str, *, input_example: pd.DataFrame,
                   extra_code_paths: list[str | os.PathLike[str]] | None = None,
                   extra_pip_requirements: list[str] | None = None) -> None:
        """See :func:`modelcycle.registry.packaging.save_pyfunc_model`."""
        save_pyfunc_model(pipeline, path, input_example=input_example, extra_code_paths=extra_code_paths,
                          extra_pip_requirements=extra_pip_requirements)

    def log_model_dir(self, run_id: str, path: str, artifact_path: str = "model") -> str:
        """Upload the saved model directory ``path`` as an MLflow 3 logged model of ``run_id``
        named ``artifact_path``; returns ``models:/<model_id>``.

        Why a logged model and not run artifacts: in MLflow 3 a model is its own entity
        (``<experiment artifacts>/models/<model_id>/artifacts``) linked to the run as an
        output; the UI's model pages, ``models:/<model_id>`` URIs and the registry's lineage
        expect that layout. It is done with the explicit client (``create_logged_model``,
        ``log_model_artifacts``, ``log_outputs``, ``finalize_logged_model``) rather than
        ``mlflow.pyfunc.log_model``, which reads the global tracking URI and would re-save the
        model. A failure part-way finalizes the logged model as FAILED.
        """
        from mlflow.entities import LoggedModelOutput
        from mlflow.models import Model
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        model_dir = Path(path)
        if not (model_dir / "MLmodel").is_file():
            raise RegistryError(f"{model_dir} is not an MLflow model directory (it has no MLmodel file)",
                                "write the model with save_model first")
        with _translate(f"cannot log the model {model_dir} to run {run_id}"):
            run = self._client.get_run(run_id)
            params = {k: _truncate(v, MAX_PARAM_VAL_LENGTH) for k, v in (run.data.params or {}).items()}
            logged = self._client.create_logged_model(
                run.info.experiment_id, name=artifact_path, source_run_id=run_id, params=params or None,
            )
            try:
                self._client.log_model_artifacts(logged.model_id, str(model_dir))
                mlmodel = Model.load(str(model_dir / "MLmodel"))
                mlmodel.model_id = logged.model_id
                mlmodel.run_id = run_id
                mlmodel.artifact_path = logged.artifact_location
                mlmodel.model_uuid = logged.model_id
                with tempfile.TemporaryDirectory(prefix="modelcycle-mlmodel-") as tmp:
                    stamped = Path(tmp) / "MLmodel"
                    mlmodel.save(str(stamped))
                    self._client.log_model_artifact(logged.model_id, str(stamped))
                self._client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
                self._client.finalize_logged_model(logged.model_id, "READY")
            except BaseException:
                with contextlib.suppress(Exception):
                    self._client.finalize_logged_model(logged.model_id, "FAILED")
                raise
        return f"models:/{logged.model_id}"

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
        import mlflow.artifacts
        import mlflow.pyfunc

        hint = ("the model's files are missing, truncated or corrupt: register the model again "
                "(`modelcycle run --window YYYY-MM`), or point the alias at another version (`modelcycle promote --version N`)")
        with _translate(f"cannot find the model {uri} in {redact_uri(self.registry_uri)}"):
            location, version = self._resolve(uri)
        where = uri if version is None else f"{uri} (version {version.version})"
        with _translate(f"cannot load the model {where}", hint):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri,
            )
            with _LOAD_LOCK:
                model = mlflow.pyfunc.load_model(local)
        return LoadedModel(model, uri, version)

    # -- registry -------------------------------------------------------------------------

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self._client.create_registered_model(name)
        except Exception as exc:
            if _mlflow_error_code(exc) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise

    def register(self, name: str, source: str, run_id: str | None,
                 tags: dict[str, str] | None = None) -> ModelVersion:
        """A new version of ``name`` from ``source``: ``models:/<model_id>`` (what
        :meth:`log_model_dir` returns), ``runs:/<run>/<path>``, an artifact URI or a local
        folder. Waits until the version is READY (instant on SQL stores)."""
        with _translate(f"cannot register a version of model '{name}' from {source}"):
            model_id = None
            location = source
            if re.fullmatch(r"models:/m-[0-9a-f]+/?", source):
                model_id = source[len("models:/"):].strip("/")
                logged = self._client.get_logged_model(model_id)
                location = logged.artifact_location
                run_id = run_id or logged.source_run_id
            elif source.startswith(("models:/", "runs:/")):
                location = self._resolve(source)[0]
            elif not _has_scheme(source):
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

        with _translate(f"cannot tag version {version} of model '{name}'"):
            for key, value in tags.items():
                self._client.set_model_version_tag(name, str(version), _key(key),
                                                   _truncate(_text(value), MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH))

    def delete_version(self, name: str, version: str) -> None:
        """Delete a version (aliases pointing at it go with it). A missing version is not an error."""
        with _translate(f"cannot delete version {version} of model '{name}'"):
            try:
                self._client.delete_model_version(name, str(version))
            except Exception as exc:
                if not _is_missing(exc):
                    raise
                log.debug("version %s of model %r is already gone", version, name)

    def get_version(self, name: str, version: str) -> ModelVersion:
        with _translate(f"cannot read version {version} of model '{name}'",
                        "see the champion and challenger with `modelcycle status`, every version with "
                        f"`mlflow ui --backend-store-uri {redact_uri(self.tracking_uri)}`"):
            return _model_version(self._client.get_model_version(name, str(version)))

    def list_versions(self, name: str) -> list[ModelVersion]:
        escaped = name.replace("'", "\\'")
        versions: list[ModelVersion] = []
        with _translate(f"cannot list the versions of model '{name}'"):
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
        with _translate(f"cannot read alias '{alias}' of model '{name}'"):
            try:
                mv = self._client.get_model_version_by_alias(name, _alias(alias))
            except Exception as exc:
                if _is_missing(exc) or _mlflow_error_code(exc) == "INVALID_PARAMETER_VALUE":
                    return None
                raise
        return _model_version(mv)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with _translate(f"cannot point alias '{alias}' of model '{name}' at version {version}"):
            self._client.set_registered_model_alias(name, _alias(alias), str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        with _translate(f"cannot delete alias '{alias}' of model '{name}'"):
            try:
                self._client.delete_registered_model_alias(name, _alias(alias))
            except Exception as exc:
                if not _is_missing(exc):
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
        with _translate(f"cannot search the runs of experiment '{experiment}'"):
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
        with _translate(f"cannot search the versions of model '{name}' from run {run_id}"):
            found = self._client.search_model_versions(f"name = '{escaped}' and run_id = '{run_id}'")
        return sorted((_model_version(mv) for mv in found), key=lambda v: int(v.version), reverse=True)

    def model_tags(self, name: str) -> dict[str, str]:
        with _translate(f"cannot read the tags of model '{name}'"):
            try:
                return dict(self._client.get_registered_model(name).tags or {})
            except Exception as exc:
                if _is_missing(exc):
                    return {}
                raise

    def set_model_tags(self, name: str, tags: dict[str, str]) -> None:
        from mlflow.utils.validation import MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH

        with _translate(f"cannot tag model '{name}'"):
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
