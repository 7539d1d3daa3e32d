"""The MLflow pyfunc wrapper around a :class:`modelcycle.steps.model.ModelPipeline`.

This file has two lives:

* imported as ``modelcycle.registry.pyfunc`` it is an ordinary module: the registry uses
  :data:`PIPELINE_ARTIFACT` and :func:`dump_pipeline`, and tests may use :class:`ModelcyclePyfunc`;
* given to ``mlflow.pyfunc.save_model(python_model=<this file>)`` it is the model's code
  ("models from code", MLflow's recommended format): MLflow copies the file into the model
  directory and, when any MLflow client loads the model, executes it under a generated module
  name, so the last lines register a fresh :class:`ModelcyclePyfunc` with
  ``mlflow.models.set_model``. Nothing here is pickled by MLflow (no "python_model.pkl"), so
  no CloudPickle warning at save time and no dependence on ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``.

The fitted pipeline itself is the artifact ``artifacts/pipeline.pkl`` (CloudPickle, which
stores importable classes by reference and classes defined in ``__main__`` by value). The
``modelcycle`` package travels with the model in its ``code/`` directory, which MLflow puts
first on ``sys.path`` before running this file, so the model loads in any environment that has
MLflow and the estimator's library, with or without modelcycle installed.

Outputs. ``predict(records)`` returns one prediction per record: the value of a regression
model, the class label of a classifier (what ``mlflow models serve`` and existing callers get).
A classifier also gives its class probabilities when asked with the ``output`` param, which the
model's signature declares (default ``"label"``)::

    model = mlflow.pyfunc.load_model("models:/NAME@champion")
    model.predict(records)                              # labels, one per record
    model.predict(records, params={"output": "proba"})  # DataFrame of probabilities

The probability frame has one row per record (in order, index 0..n-1) and one column per class,
named ``proba_<class>`` (:data:`PROBA_PREFIX` + the class as text, e.g. ``proba_0``/``proba_1``
or ``proba_no``/``proba_yes``), in the order of the classifier's ``classes_`` (sorted classes
for scikit-learn and LightGBM); each row sums to 1. Over HTTP the param goes beside the records:
``{"dataframe_records": [...], "params": {"output": "proba"}}``. Asking a regression model for
probabilities is an error that says so.

Keep this file importable without side effects beyond the guarded ``set_model`` at the end,
and with no ``from __future__ import annotations``: MLflow reads the ``predict`` type hints at
runtime (``pd.DataFrame`` means "no schema from hints, use the saved signature").
"""

import os
import warnings
from typing import Any

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

#: Name of the pipeline in the model's ``artifacts`` (``context.artifacts[PIPELINE_ARTIFACT]``).
PIPELINE_ARTIFACT = "pipeline"
PIPELINE_FILE = "pipeline.pkl"


#: ``model_config`` key: raw datetime columns of the training data -> their time zone (or None).
DATETIME_COLUMNS = "datetime_columns"

#: The inference param that chooses the output, its values, and the probability columns' prefix.
OUTPUT_PARAM = "output"
OUTPUT_LABEL = "label"
OUTPUT_PROBA = "proba"
PROBA_PREFIX = "proba_"


def proba_columns(classes: Any) -> list[str]:
    """The probability column of each class: ``proba_<class>``."""
    return [f"{PROBA_PREFIX}{c}" for c in classes]


def proba_frame(pipeline: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Class probabilities of ``pipeline`` for the records ``frame``, a ``proba_<class>`` column
    per class. A model that is not a classifier raises ValueError saying so."""
    task = getattr(pipeline, "task", None)
    estimator = getattr(pipeline, "estimator", None)
    scorer = pipeline if estimator is None else estimator  # a pipeline without an estimator (torch) scores itself
    if (task is not None and task != "classification") or not hasattr(scorer, "predict_proba"):
        kind = f"a {task} model" if task else f"{type(estimator).__name__}, which gives no class probabilities"
        raise ValueError(f"this model is {kind}: class probabilities (output='proba') exist only for "
                         "classifiers; predict without the param to get its predictions")
    proba = np.asarray(pipeline.predict_proba(frame), dtype="float64")
    classes = getattr(pipeline, "classes", None)
    if classes is None:
        classes = getattr(estimator, "classes_", None)
    if classes is None or len(classes) != proba.shape[1]:
        classes = range(proba.shape[1])
    return pd.DataFrame(proba, columns=proba_columns(classes))


def normalise_datetimes(frame: pd.DataFrame, columns: dict[str, str | None]) -> pd.DataFrame:
    """Parse datetime columns that arrive as text (JSON/CSV clients; pandas 3 ``str`` columns,
    which MLflow's own schema enforcement refuses) and align their time zone with the training
    data: naive training times take an aware input converted to UTC, aware ones take naive input
    localised to their zone."""
    todo = [c for c in columns if c in frame.columns]
    if not todo:
        return frame
    frame = frame.copy(deep=False)
    for column in todo:
        values = frame[column]
        if not pd.api.types.is_datetime64_any_dtype(values):
            try:
                values = pd.to_datetime(values, format="ISO8601")
            except (ValueError, TypeError):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
                        values = pd.to_datetime(values)
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"column '{column}' must hold dates and times: {exc}") from exc
        zone = columns[column]
        current = getattr(values.dt, "tz", None)
        if zone is None and current is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif zone is not None:
            values = values.dt.tz_localize(zone) if current is None else values.dt.tz_convert(zone)
        frame[column] = values
    return frame


class ModelcyclePyfunc(PythonModel):
    """Raw records in, predictions out: features are built inside the model."""

    def __init__(self) -> None:
        self.pipeline: Any = None
        self.datetime_columns: dict[str, str | None] = {}

    def load_context(self, context: Any) -> None:
        config = getattr(context, "model_config", None) or {}
        self.datetime_columns = dict(config.get(DATETIME_COLUMNS) or {})
        path = context.artifacts[PIPELINE_ARTIFACT]
        try:
            with open(path, "rb") as fh:
                self.pipeline = cloudpickle.load(fh)
        except Exception as exc:
            # Raised as a plain exception type so that any MLflow client (with or without
            # modelcycle installed) shows a readable message; modelcycle's registry translates it.
            raise RuntimeError(
                f"the model pipeline file {path} cannot be read ({type(exc).__name__}: {exc}); "
                "the artifact is truncated or corrupt, or was written by an incompatible version "
                "of the estimator library: register the model again, or point the alias at "
                "another version"
            ) from exc
        if not hasattr(self.pipeline, "predict"):
            raise RuntimeError(f"{path} does not hold a model pipeline (no predict method)")

    # MLflow 3 calls a predict without ``context`` as such (it inspects the signature).
    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:  # type: ignore[override]
        """Labels or values (``output="label"``, the default) as an array, or class
        probabilities (``output="proba"``) as a DataFrame with a ``proba_<class>`` column per class."""
        if self.pipeline is None:
            raise RuntimeError("the model pipeline is not loaded: call load_context first")
        try:
            return self._predict(model_input, params)
        except Exception as exc:
            if _served_by_mlflow() and _says_what_is_wrong(exc):
                # MLflow's scoring server answers any other exception with "an unexpected error"
                # and keeps the reason in a stack trace; an MlflowException's message is shown
                from mlflow.exceptions import MlflowException
                from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

                raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
            raise

    def _predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None) -> Any:
        output = str((params or {}).get(OUTPUT_PARAM) or OUTPUT_LABEL).strip().lower()
        if output not in (OUTPUT_LABEL, OUTPUT_PROBA):
            raise ValueError(f"the param output={output!r} is not known: use '{OUTPUT_LABEL}' (the default: "
                             f"one prediction per record) or '{OUTPUT_PROBA}' (class probabilities)")
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        model_input = normalise_datetimes(model_input, self.datetime_columns)
        if output == OUTPUT_PROBA:
            return proba_frame(self.pipeline, model_input)
        return np.asarray(self.pipeline.predict(model_input))


#: What ``mlflow models serve`` sets for its scoring server's process (the model's local path).
SERVER_MODEL_PATH_VAR = "__pyfunc_model_path__"


def _served_by_mlflow() -> bool:
    """Whether this process is MLflow's scoring server (``mlflow models serve``): elsewhere a
    caller gets the records' error as it is raised (modelcycle's own serving, a DataError)."""
    return bool(os.environ.get(SERVER_MODEL_PATH_VAR))


def _says_what_is_wrong(exc: Exception) -> bool:
    """A modelcycle error about the records (an image file that does not exist, a cell that is
    no image) or this module's ValueError (probabilities of a regression model, an unknown output)."""
    return any(c.__name__ == "ModelcycleError" for c in type(exc).__mro__) or type(exc) is ValueError


def dump_pipeline(pipeline: Any, path: str | os.PathLike[str], *, on_object: Any = None) -> None:
    """Write ``pipeline`` with CloudPickle to ``path``.

    ``on_object`` (optional) is called with every object the pickler visits, which lets the
    registry find out which libraries the pickle refers to (its pip requirements).
    """

    class _Pickler(cloudpickle.Pickler):  # type: ignore[misc, unused-ignore]  # cloudpickle is untyped
        def persistent_id(self, obj: Any) -> None:  # the pickle protocol's hook: None pickles obj as usual
            if on_object is not None:
                on_object(obj)
            return None

    with open(path, "wb") as fh:
        _Pickler(fh, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(pipeline)


# Run by MLflow as the model's code (module name "code_model_<hex>"), not on a normal import.
if __name__ != "modelcycle.registry.pyfunc":
    mlflow.models.set_model(ModelcyclePyfunc())
