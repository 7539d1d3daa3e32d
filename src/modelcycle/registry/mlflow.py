"""The MLflow 3 adapter: tracking, model packaging and the model registry.

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
:meth:`MlflowRegistry.save_model` writes a pyfunc directory ("models from code":
:mod:`modelcycle.registry.pyfunc` is the model's code, the fitted pipeline is the artifact
``pipeline.pkl``, the ``modelcycle`` package ships under ``code/``, pip requirements are explicit).
:meth:`MlflowRegistry.log_model_dir` then does with the explicit client what ``Model.log`` does
with the fluent one: ``create_logged_model(experiment, source_run_id=run)``,
``log_model_artifacts``, stamps ``model_id``/``run_id`` into ``MLmodel``, links the model to the
run as an output and finalizes it ``READY``. It returns ``models:/<model_id>``, which
:meth:`MlflowRegistry.register` and :meth:`MlflowRegistry.load_model` accept. The model shows on
the run's and the experiment's "Logged models" pages (not under the run's artifacts, which is
MLflow 3's layout). ``mlflow.pyfunc.log_model`` was not used: it resolves the tracking URI from
global state and re-saves the model.

Errors: every MLflow (and SQLAlchemy, requests, OS) error is translated once, by
:func:`_translate`, into :class:`modelcycle.errors.RegistryError` (``NoChampionError`` when an
alias is unset) with a message naming the store or model and a hint.

Console: the first registry raises a few chatty MLflow loggers to WARNING and defaults
``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false`` and ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true``
(explicit settings win; see :func:`_quiet_mlflow_loggers`). Importing this module does not import
MLflow (seconds); the first registry or model call does.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from modelcycle import dbcache, tracepoints
from modelcycle.config import redact
from modelcycle.errors import DataError, ModelcycleError, ModelError, RegistryError, disk_cause
from modelcycle.registry.base import ModelVersion, RunRecord, no_alias_error
from modelcycle.registry.base import alias_name as _alias
from modelcycle.registry.base import flatten_params as _flatten
from modelcycle.registry.base import param_text as _text
from modelcycle.registry.base import truncate as _truncate

log = logging.getLogger(__name__)

_STATUSES = ("FINISHED", "FAILED", "KILLED")
_KEY_BAD_CHARS = re.compile(r"[^\w\-./: ]")
_INPUT_EXAMPLE_ROWS = 5
_AWAIT_READY_SECONDS = 300
# mlflow.pyfunc.load_model of a "models from code" model runs the code file and reads the model
# it registered from a module global (mlflow.models.model.__mlflow_model__): loads must not
# interleave.
_LOAD_LOCK = threading.RLock()
_QUIET_ONCE = threading.Lock()
_quieted = False


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


def for_workspace(ws: Any) -> MlflowRegistry:
    """The registry of a workspace (``config.Workspace``), with its embedded store made its own
    first: a copied or moved workspace's store still points at the old folder's artifacts,
    and is pointed at its own (see :func:`relocate_store`)."""
    db = _sqlite_path(ws.tracking_uri)
    moved = None
    artifacts = ws.config.backends.mlflow_artifacts
    if db is not None and "://" not in artifacts and not Path(artifacts).is_absolute():
        db = db.expanduser()
        if db.resolve().is_relative_to(Path(ws.root).resolve()):
            marker = "/" + Path(artifacts).as_posix().strip("/").removeprefix("./")
            moved = relocate_store(db, ws.artifact_location.rstrip("/"), marker)
            if moved:
                log.warning("this workspace was moved or copied; its MLflow store now points at its "
                            "own artifacts (%s)", moved)
    registry = MlflowRegistry(ws.tracking_uri, registry_uri=ws.registry_uri, artifact_location=ws.artifact_location)
    registry.relocated = moved
    return registry


def embedded_uris(workspace: str | os.PathLike[str]) -> tuple[str, str]:
    """The embedded default backend of a workspace: ``(tracking_uri, artifact_location)``.

    ``sqlite:////abs/ws/.modelcycle/mlflow.db`` and ``file:///abs/ws/.modelcycle/mlartifacts``.
    """
    root = Path(workspace).expanduser().resolve() / ".modelcycle"
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}", (root / "mlartifacts").as_uri()


def redact_uri(uri: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return redact(uri)


def _sqlite_path(uri: str) -> Path | None:
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
        db = _sqlite_path(tracking_uri)
        if db is None:
            return None  # a server decides (mlflow-artifacts proxy) or MLflow's default
        return (db.expanduser().resolve().parent / "mlartifacts").as_uri()
    if _has_scheme(artifact_location):
        return artifact_location.rstrip("/")
    return Path(artifact_location).expanduser().resolve().as_uri()


def _safe_folder(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "experiment"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _mlflow_error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def _short(text: str, limit: int = 600) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _exc_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return _short(message)


def _is_missing(exc: BaseException) -> bool:
    if _mlflow_error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return True
    text = str(exc).lower()
    return "not found" in text or "does not exist" in text


@contextlib.contextmanager
def _translate(what: str, hint: str | None = None) -> Iterator[None]:
    """Turn any third-party error inside the block into ``RegistryError(what: cause, hint)``.

    modelcycle's own errors pass through unchanged."""
    try:
        yield
    except ModelcycleError:
        raise
    except Exception as exc:
        disk = disk_cause(exc)
        if disk is not None:  # a full or read-only disk: said as such, with the file, by the CLI
            raise disk from exc
        raise RegistryError(f"{what}: {_exc_text(exc)}", hint or _default_hint(exc)) from exc


def _default_hint(exc: BaseException) -> str | None:
    text = str(exc).lower()
    code = _mlflow_error_code(exc)
    if "max retries exceeded" in text or "connection refused" in text or "failed to establish" in text:
        return ("is the MLflow server running and reachable? Check backends.mlflow_tracking_uri in modelcycle.yaml "
                "or MLFLOW_TRACKING_URI")
    if "out-of-date database schema" in text or "mlflow db upgrade" in text:
        return "upgrade the database with `mlflow db upgrade <tracking uri>` (back it up first)"
    if "database is locked" in text:
        return "another process holds the SQLite database; retry, or use an MLflow server for concurrent writers"
    if code == "RESOURCE_DOES_NOT_EXIST":
        return "check the name, version or id; `mlflow ui` shows what the store holds"
    return None


# --------------------------------------------------------------------------------------------
# Console noise
# --------------------------------------------------------------------------------------------


def _quiet_mlflow_loggers() -> None:
    """Keep MLflow's INFO chatter (database creation and migrations, system-metrics thread
    start/stop) off the user's console. Loggers the user configured, and an explicit
    ``MLFLOW_LOGGING_LEVEL=DEBUG``, are left alone."""
    global _quieted
    with _QUIET_ONCE:
        if _quieted:
            return
        _quieted = True
        # MLflow draws a tqdm bar for every local file it copies into a model; the CLI draws
        # its own progress. Only a default: an explicit setting wins.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # With a server, MLflow writes "View run ... at: <url>" to *stdout* when a run ends,
        # which would mix into the CLI's output; MlflowRegistry.run_url gives the link instead.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if os.environ.get("MLFLOW_LOGGING_LEVEL", "").upper() == "DEBUG":
            return
        for name in (
            "mlflow.pyfunc",  # "Validating input example against model signature"
            "mlflow.store.db.utils",
            "mlflow.store.tracking.sqlalchemy_store",
            "mlflow.store.model_registry.sqlalchemy_store",
            "mlflow.store.model_registry.abstract_store",  # "Waiting up to 300 seconds for ..."
            "mlflow.system_metrics",
            "alembic",
        ):
            logger = logging.getLogger(name)
            if logger.level in (logging.NOTSET, logging.DEBUG, logging.INFO):
                logger.setLevel(logging.WARNING)


# --------------------------------------------------------------------------------------------
# Packaging: pip requirements
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _module_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _pin(dist: str) -> str | None:
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    return f"{_canonical(dist)}=={version.split('+', 1)[0]}"


def _mlflow_requirement() -> str:
    for dist in ("mlflow", "mlflow-skinny"):
        if pinned := _pin(dist):
            return pinned
    import mlflow

    return f"mlflow=={mlflow.__version__}"


def pip_requirements_for(modules: set[str], *, shipped: set[str] = frozenset(),
                         extra: list[str] | None = None) -> list[str]:
    """Pinned requirements: MLflow, CloudPickle, NumPy, pandas, plus the distributions that
    provide ``modules`` (top-level module names the pickled pipeline refers to), minus the
    standard library and the modules shipped as code with the model."""
    dists: set[str] = {"cloudpickle", "numpy", "pandas"}
    mapping = _module_distributions()
    skip = {"builtins", "__main__", "modelcycle", "mlflow", *shipped}
    for module in sorted(modules):
        if module in skip or module in sys.stdlib_module_names or module.startswith("_"):
            continue
        found = mapping.get(module)
        if found:
            dists.update(found)
        else:
            log.debug("no installed distribution provides module %r; not a requirement", module)
    dists = {d for d in dists if _canonical(d) not in ("mlflow", "mlflow-skinny", "modelcycle")}
    pins = {p for d in dists if (p := _pin(d))}
    reqs = [_mlflow_requirement(), *sorted(pins)]
    for item in extra or []:
        if item not in reqs:
            reqs.append(item)
    return reqs


class _ModuleCollector:
    """Called for every object the pickler visits; collects the top-level modules of their
    classes (whole MRO, so LightGBM's scikit-learn base classes count) and functions."""

    def __init__(self) -> None:
        self.modules: set[str] = set()
        self._seen: set[type] = set()

    def __call__(self, obj: Any) -> None:
        kind = type(obj)
        if kind not in self._seen:
            self._seen.add(kind)
            self._add_mro(kind)
        if isinstance(obj, type) and obj not in self._seen:
            self._seen.add(obj)
            self._add_mro(obj)
        elif callable(obj) and isinstance(getattr(obj, "__module__", None), str):
            self.modules.add(obj.__module__.split(".", 1)[0])

    def _add_mro(self, cls: type) -> None:
        for klass in getattr(cls, "__mro__", (cls,)):
            module = getattr(klass, "__module__", None)
            if isinstance(module, str):
                self.modules.add(module.split(".", 1)[0])


# --------------------------------------------------------------------------------------------
# Packaging: the pyfunc directory
# --------------------------------------------------------------------------------------------


def _package_dir() -> Path:
    import modelcycle

    return Path(modelcycle.__file__).resolve().parent


def _example_frame(pipeline: Any, input_example: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(input_example, pd.DataFrame):
        input_example = pd.DataFrame(input_example)
    if input_example.empty:
        raise ModelError("the input example for the model has no rows",
                         "pass a few raw records, e.g. frame.head()")
    columns = list(getattr(pipeline, "input_columns", None) or [])
    if columns and all(c in input_example.columns for c in columns):
        # The signature must ask for the columns predict needs, not the target or extras.
        input_example = input_example[columns]
    return input_example.head(_INPUT_EXAMPLE_ROWS).reset_index(drop=True)


def _datetime_columns(example: pd.DataFrame) -> dict[str, str | None]:
    zones: dict[str, str | None] = {}
    for column in example.columns:
        if pd.api.types.is_datetime64_any_dtype(example[column]):
            zone = getattr(example[column].dt, "tz", None)
            zones[str(column)] = str(zone) if zone is not None else None
    return zones


def _signature(example: pd.DataFrame, predictions: np.ndarray, datetime_columns: dict[str, str | None]) -> Any:
    """Input schema from the raw example, output schema from the predictions.

    Datetime columns are declared ``Any``: MLflow's enforcement refuses dates sent as text
    (JSON and CSV clients; under pandas 3 text is the ``str`` dtype, which MLflow does not parse),
    so the model parses them itself (:func:`modelcycle.registry.pyfunc.normalise_datetimes`).
    Other columns keep their strict types. An integer column is ``long`` and a later window with
    a missing value there (float64) is refused by MLflow, which would also refuse int64 against
    ``double``: the refusal surfaces as a DataError naming the column (MLflow's "integer columns"
    hint is silenced here).

    The inference param ``output`` (``"label"`` by default, ``"proba"`` for a classifier's class
    probabilities, see :mod:`modelcycle.registry.pyfunc`) is declared for every model, so MLflow
    passes it on instead of dropping it; a regression model asked for ``"proba"`` says it has none."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    from modelcycle.registry.pyfunc import OUTPUT_LABEL, OUTPUT_PARAM

    output: Any = predictions
    if predictions.dtype == object and predictions.ndim == 1:
        output = pd.Series(predictions, name="prediction")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example, output, params={OUTPUT_PARAM: OUTPUT_LABEL})
    columns = [
        ColSpec(AnyType(), spec.name, required=spec.required)
        if isinstance(spec, ColSpec) and spec.name in datetime_columns else spec
        for spec in signature.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=signature.outputs, params=signature.params)


def _pipeline_metadata(pipeline: Any) -> dict[str, Any]:
    import modelcycle

    estimator = getattr(pipeline, "estimator", None)
    meta: dict[str, Any] = {
        "modelcycle_version": getattr(modelcycle, "__version__", "unknown"),
        "estimator": f"{type(estimator).__module__}:{type(estimator).__qualname__}",
    }
    for key in ("target", "task", "features", "input_columns", "feature_names", "classes"):
        value = getattr(pipeline, key, None)
        if value is not None:
            meta[key] = json.loads(json.dumps(value, default=str))
    return meta


def save_pyfunc_model(pipeline: Any, path: str | os.PathLike[str], *, input_example: pd.DataFrame,
                      extra_code_paths: list[str | os.PathLike[str]] | None = None,
                      extra_pip_requirements: list[str] | None = None) -> None:
    """Write ``pipeline`` as an MLflow pyfunc model directory at ``path`` (see the module doc).

    ``extra_code_paths``: files or folders shipped beside ``modelcycle`` in ``code/`` (e.g. the
    workspace's own feature module named by ``pipeline.features``); each lands on ``sys.path``
    when the model loads. ``extra_pip_requirements``: added to the inferred-from-pickle pins.
    """
    import mlflow.pyfunc

    from modelcycle.registry import pyfunc

    _quiet_mlflow_loggers()
    target = Path(path)
    if target.exists() and any(target.iterdir()):
        raise RegistryError(f"cannot save the model to {target}: the folder exists and is not empty",
                            "choose a new folder, or delete the old one first")
    example = _example_frame(pipeline, input_example)
    try:
        predictions = np.asarray(pipeline.predict(example))
    except ModelcycleError:
        raise
    except Exception as exc:
        raise ModelError(f"the model cannot predict on its input example: {_exc_text(exc)}",
                         "check that the example holds raw records with the columns the model needs") from exc

    code_paths = [str(_package_dir())]
    shipped: set[str] = set()
    for extra in extra_code_paths or []:
        extra_path = Path(extra).expanduser().resolve()
        if not extra_path.exists():
            raise ModelError(f"the extra code path {extra_path} does not exist",
                             "list files or folders that exist (for example features.py of the workspace)")
        module = extra_path.stem if extra_path.is_file() else extra_path.name
        if module == "modelcycle" or module in shipped:
            raise ModelError(f"the extra code path {extra_path} collides with another shipped module '{module}'",
                             "rename the module or drop the duplicate path")
        shipped.add(module)
        code_paths.append(str(extra_path))

    with tempfile.TemporaryDirectory(prefix="modelcycle-save-") as staging:
        pickle_path = Path(staging) / pyfunc.PIPELINE_FILE
        collector = _ModuleCollector()
        try:
            pyfunc.dump_pipeline(pipeline, pickle_path, on_object=collector)
        except Exception as exc:
            raise ModelError(f"the model pipeline cannot be serialised: {_exc_text(exc)}",
                             "estimators and feature functions must be picklable") from exc
        features = getattr(pipeline, "features", None)
        if isinstance(features, str) and features:
            feature_top = features.split(":", 1)[0].split(".", 1)[0]
            collector.modules.add(feature_top)  # an installed feature package is a requirement
            if feature_top not in shipped and feature_top != "modelcycle" \
                    and feature_top not in _module_distributions() and feature_top not in sys.stdlib_module_names:
                log.warning("the feature module '%s' of this model is neither shipped with it nor an installed "
                            "package: the model will not load elsewhere; pass extra_code_paths=[<its file>]",
                            feature_top)
        requirements = pip_requirements_for(collector.modules, shipped=shipped, extra=extra_pip_requirements)
        datetimes = _datetime_columns(example)
        metadata = _pipeline_metadata(pipeline)
        metadata["datetime_columns"] = datetimes
        with _translate(f"cannot write the MLflow model to {target}"):
            signature = _signature(example, predictions, datetimes)
            mlflow.pyfunc.save_model(
                path=str(target),
                python_model=pyfunc.__file__,
                artifacts={pyfunc.PIPELINE_ARTIFACT: str(pickle_path)},
                signature=signature,
                input_example=example,
                pip_requirements=requirements,
                code_paths=code_paths,
                model_config={pyfunc.DATETIME_COLUMNS: datetimes},
                metadata={"modelcycle": metadata},
            )


# --------------------------------------------------------------------------------------------
# Loaded models
# --------------------------------------------------------------------------------------------


class LoadedModel:
    """A pyfunc model loaded through the registry: ``predict(raw) -> np.ndarray``.

    ``uri`` is what was asked for, ``version`` the registered version it resolved to (when it
    came from the registry), ``pipeline`` the :class:`~modelcycle.steps.model.ModelPipeline`.
    """

    def __init__(self, pyfunc_model: Any, uri: str, version: ModelVersion | None = None) -> None:
        self._model = pyfunc_model
        self.uri = uri
        self.version = version
        schema = pyfunc_model.metadata.get_input_schema()
        self._inputs: list[str] = list(schema.input_names()) if schema is not None and schema.has_input_names() else []

    @property
    def pipeline(self) -> Any:
        return self._model.unwrap_python_model().pipeline

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self._model.metadata.metadata or {}
        return dict(meta.get("modelcycle", {}))

    @property
    def model_id(self) -> str | None:
        return getattr(self._model.metadata, "model_id", None)

    @property
    def classes(self) -> list[Any] | None:
        """A classifier's classes, in the order of its probability columns; None otherwise."""
        classes = getattr(self.pipeline, "classes", None)
        return list(classes) if classes is not None else None

    def _call(self, raw: pd.DataFrame, params: dict[str, Any] | None) -> Any:
        if isinstance(raw, pd.DataFrame) and self._inputs and set(self._inputs) <= set(raw.columns):
            raw = raw[self._inputs]  # extra columns (the target, ids) are fine: drop them quietly
        try:
            if params is None:
                return self._model.predict(raw)
            if self._takes_output:
                return self._model.predict(raw, params=params)
            # saved before the `output` param existed: ask the wrapped pipeline directly
            from modelcycle.registry.pyfunc import normalise_datetimes, proba_frame

            zones = getattr(self._model.unwrap_python_model(), "datetime_columns", None) or {}
            frame = raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(raw)
            return proba_frame(self.pipeline, normalise_datetimes(frame, zones))
        except ModelcycleError:
            raise
        except Exception as exc:
            columns = ", ".join(self.metadata.get("input_columns", [])) or "see the model's signature"
            raise DataError(f"the records do not fit the model {self.uri}: {_exc_text(exc)}",
                            f"the model takes raw records with columns: {columns}") from exc

    @property
    def _takes_output(self) -> bool:
        from modelcycle.registry.pyfunc import OUTPUT_PARAM

        schema = self._model.metadata.get_params_schema()
        return schema is not None and any(p.name == OUTPUT_PARAM for p in schema.params)

    def predict(self, raw: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._call(raw, None))

    def probabilities(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities of a classifier: a ``proba_<class>`` column per class (in the
        order of :attr:`classes`), one row per record. A regression model is a DataError."""
        from modelcycle.registry.pyfunc import OUTPUT_PARAM, OUTPUT_PROBA

        task = self.metadata.get("task")
        if task is not None and task != "classification":
            raise DataError(f"the model {self.uri} is a {task} model: class probabilities exist only for "
                            "classifiers", "predict without asking for probabilities")
        return pd.DataFrame(self._call(raw, {OUTPUT_PARAM: OUTPUT_PROBA}))

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        return self.probabilities(raw).to_numpy(dtype="float64")

    def __repr__(self) -> str:
        version = f" v{self.version.version}" if self.version else ""
        return f"LoadedModel({self.uri!r}{version})"


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
                 if (db := _sqlite_path(uri)) is not None and not db.expanduser().exists()
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
        db = _sqlite_path(uri)
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
        """See :func:`save_pyfunc_model`."""
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
