"""Model packaging: a fitted pipeline written as an MLflow pyfunc model directory.

:func:`save_pyfunc_model` writes "models from code": :mod:`modelcycle.registry.pyfunc` is the
model's code, the fitted pipeline is the artifact ``pipeline.pkl`` (CloudPickle), the
``modelcycle`` package (and any extra code path, e.g. the workspace's ``features.py``) ships
under ``code/``, the signature is inferred from a raw input example (datetime columns accept
text, see :func:`_signature`), and pip requirements are explicit: pinned from the libraries the
pickle refers to (:func:`pip_requirements_for`), never inferred by MLflow. The directory is then
logged and registered by :class:`modelcycle.registry.mlflow.MlflowRegistry`.

Importing this module does not import MLflow; writing a model does.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence, Set
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelcycle.atomic import write_atomic
from modelcycle.errors import ModelcycleError, ModelError, RegistryError
from modelcycle.registry.base import CodePaths
from modelcycle.registry.translate import exc_text, quiet_mlflow_loggers, translate

if TYPE_CHECKING:
    from modelcycle.steps.model import ModelPipeline

log = logging.getLogger(__name__)

_INPUT_EXAMPLE_ROWS = 5


# --------------------------------------------------------------------------------------------
# Pip requirements
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _module_distributions() -> Mapping[str, list[str]]:
    """Which installed distributions provide each top-level module.

    Python answers by reading every distribution's file list (0.2 s with 300 installed on a quiet
    machine, over a second under load). The answer is kept in modelcycle's cache folder with the
    folders it was read from and their modification times: an install or an uninstall adds or
    removes a ``*.dist-info`` folder there, which changes its folder's time, and the answer is
    then read again."""
    from modelcycle import dbcache

    key = _install_folders()
    path = dbcache.cache_dir() / "module-distributions.json"
    try:
        kept = json.loads(path.read_text())
        if kept["folders"] == key:
            return {str(k): [str(d) for d in v] for k, v in kept["modules"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    mapping = importlib.metadata.packages_distributions()
    try:
        write_atomic(path, json.dumps({"folders": key, "modules": mapping}))
    except OSError:
        log.debug("could not keep the module distributions in %s", path, exc_info=True)
    return mapping


def _install_folders() -> list[list[str | int]]:
    """The folders of ``sys.path`` that hold distributions' metadata, with their times (ns)."""
    found: list[list[str | int]] = []
    for entry in sys.path:
        folder = os.path.abspath(entry or os.curdir)
        try:
            with os.scandir(folder) as names:
                holds = any(n.name.endswith((".dist-info", ".egg-info")) for n in names)
            if holds:
                found.append([folder, os.stat(folder).st_mtime_ns])
        except OSError:
            continue
    return found


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


def pip_requirements_for(modules: Set[str], *, shipped: Set[str] = frozenset(),
                         extra: Sequence[str] | None = None) -> list[str]:
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
# The pyfunc directory
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
    any_type: Any = AnyType  # untyped in MLflow
    columns = [
        ColSpec(any_type(), spec.name, required=spec.required)
        if isinstance(spec, ColSpec) and spec.name in datetime_columns else spec
        for spec in signature.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=signature.outputs, params=signature.params)


def _pipeline_metadata(pipeline: Any) -> dict[str, Any]:
    import modelcycle

    estimator = getattr(pipeline, "estimator", pipeline)  # a pipeline without an estimator (torch) is its own
    meta: dict[str, Any] = {
        "modelcycle_version": getattr(modelcycle, "__version__", "unknown"),
        "estimator": f"{type(estimator).__module__}:{type(estimator).__qualname__}",
    }
    for key in ("target", "task", "features", "input_columns", "feature_names", "classes", "image_columns"):
        value = getattr(pipeline, key, None)
        if value is not None:
            meta[key] = json.loads(json.dumps(value, default=str))
    return meta


def save_pyfunc_model(pipeline: ModelPipeline, path: str | os.PathLike[str], *, input_example: pd.DataFrame,
                      extra_code_paths: CodePaths | None = None,
                      extra_pip_requirements: Sequence[str] | None = None) -> None:
    """Write ``pipeline`` as an MLflow pyfunc model directory at ``path`` (see the module doc).

    ``extra_code_paths``: files or folders shipped beside ``modelcycle`` in ``code/`` (e.g. the
    workspace's own feature module named by ``pipeline.features``); each lands on ``sys.path``
    when the model loads. ``extra_pip_requirements``: added to the inferred-from-pickle pins.
    """
    import mlflow.pyfunc

    from modelcycle.registry import pyfunc

    quiet_mlflow_loggers()
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
        raise ModelError(f"the model cannot predict on its input example: {exc_text(exc)}",
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
            raise ModelError(f"the model pipeline cannot be serialised: {exc_text(exc)}",
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
        with translate(f"cannot write the MLflow model to {target}"):
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

