"""One registered model version, loaded for serving: :class:`Served`.

The server, the cycle's load check (before the champion alias moves) and shadow scoring all load
a version through :func:`load_version`, so "it loads and predicts here" means the same thing in
the three places.

The hot path skips what MLflow's pyfunc ``predict`` does on every call (schema enforcement, a
copy of the frame): a model modelcycle registered is a ``ModelcyclePyfunc`` wrapping a
``ModelPipeline``, and :meth:`Served.predict` calls the pipeline directly, after the server has
checked the request's columns once per batch (:mod:`modelcycle.serving.inputs`). Any other
pyfunc model (registered by hand and pointed at with the MLflow UI) is called through MLflow's
``predict`` as it is.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.errors import ModelcycleError, ServingError
from modelcycle.registry.base import ModelVersion, Registry

#: MLflow schema types -> the kinds the request checker knows.
_KINDS = {"double": "float", "float": "float", "long": "int", "integer": "int", "boolean": "bool",
          "string": "str", "datetime": "datetime", "binary": "bytes"}


@dataclass
class Served:
    """A loaded version ready to predict: ``predict(frame) -> np.ndarray``, one value per row.

    ``columns`` maps each input column to its kind (``float``, ``int``, ``bool``, ``str``,
    ``datetime``, ``image``, ``any``), from the model's signature (``image``: the model's
    metadata names the column an image column); ``loaded_s`` is how long loading took.
    """

    name: str
    version: ModelVersion
    columns: dict[str, str]
    task: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    loaded_s: float = 0.0
    _predict: Any = None
    _zones: dict[str, str | None] = field(default_factory=dict)

    @property
    def input_columns(self) -> list[str]:
        return list(self.columns)

    _proba: Any = None
    #: the input example saved with the model (a frame of raw records), if any
    example: pd.DataFrame | None = None

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self._zones and not all(_in_zone(frame, c, z) for c, z in self._zones.items()):
            from modelcycle.registry.pyfunc import normalise_datetimes

            frame = normalise_datetimes(frame, self._zones)
        if self.columns and list(frame.columns) != self.input_columns:
            frame = frame[self.input_columns]
        return frame

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions for raw records whose columns were checked (extra columns are ignored)."""
        return np.asarray(self._predict(self._inputs(frame)))

    @property
    def zones(self) -> dict[str, str | None]:
        """The time zone each datetime input column was trained in (None: naive)."""
        return self._zones

    @property
    def gives_probabilities(self) -> bool:
        return self._proba is not None

    def probabilities(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, a ``proba_<class>`` column per class (classifiers that modelcycle
        registered); a ServingError for any other model."""
        if self._proba is None:
            raise ServingError(f"version {self.version.version} of {self.name} gives no class probabilities",
                               "ask for predictions (no `output` param)")
        return self._proba(self._inputs(frame))


def _in_zone(frame: pd.DataFrame, column: str, zone: str | None) -> bool:
    """Whether ``column`` holds datetimes in ``zone`` already (None: naive), or is absent."""
    if column not in frame.columns:
        return True
    dtype = frame[column].dtype
    if zone is None:
        return dtype.kind == "M" and getattr(dtype, "tz", None) is None
    return str(getattr(dtype, "tz", None)) == zone


def _columns_of(model: Any) -> dict[str, str]:
    """Input columns and their kinds from an MLflow pyfunc model's signature ({} if none)."""
    try:
        schema = model.metadata.get_input_schema()
    except AttributeError:
        return {}
    if schema is None or not schema.has_input_names():
        return {}
    kinds: dict[str, str] = {}
    for name, kind in zip(schema.input_names(), schema.input_types(), strict=False):
        text = str(getattr(kind, "name", kind)).lower()
        kinds[str(name)] = _KINDS.get(text, "any")
    return kinds


def from_loaded(name: str, version: ModelVersion, loaded: Any, loaded_s: float = 0.0) -> Served:
    """A :class:`Served` from what a registry's ``load_model`` returned: MLflow's
    ``LoadedModel`` (a modelcycle pyfunc, or any other pyfunc) or the in-memory registry's
    pipeline."""
    pyfunc = getattr(loaded, "pyfunc_model", None)
    if pyfunc is not None:
        served = _from_pyfunc(name, version, loaded, pyfunc, loaded_s)
        example = getattr(pyfunc, "input_example", None)
        served.example = example if isinstance(example, pd.DataFrame) else None
        return served
    # the in-memory registry hands back the pipeline itself
    columns = {c: "any" for c in getattr(loaded, "input_columns", None) or []}
    return Served(name, version, columns, getattr(loaded, "task", None), {}, loaded_s, loaded.predict)


def _from_pyfunc(name: str, version: ModelVersion, loaded: Any, pyfunc: Any, loaded_s: float) -> Served:
    columns = _columns_of(pyfunc)
    inner = _unwrap(pyfunc)
    pipeline = getattr(inner, "pipeline", None)
    meta = dict(getattr(loaded, "metadata", {}) or {})
    if pipeline is not None and hasattr(pipeline, "predict"):
        zones = dict(getattr(inner, "datetime_columns", None) or {})
        columns.update({c: "datetime" for c in zones if c in columns})
        # an image column (a torch image model's) takes a file path or base64 text per record
        columns.update({c: "image" for c in meta.get("image_columns") or [] if c in columns})
        proba = None
        if meta.get("task") == "classification" and hasattr(pipeline, "predict_proba"):
            from functools import partial

            from modelcycle.registry.pyfunc import proba_frame

            proba = partial(proba_frame, pipeline)
        return Served(name, version, columns, meta.get("task"), meta, loaded_s, pipeline.predict, zones, proba)
    return Served(name, version, columns, meta.get("task"), meta, loaded_s, pyfunc.predict)


def _unwrap(pyfunc: Any) -> Any:
    try:
        return pyfunc.unwrap_python_model()
    except Exception:  # noqa: BLE001  # not a python_model flavour (e.g. a plain sklearn pyfunc)
        return None


def load_version(reg: Registry, name: str, version: ModelVersion) -> Served:
    """Load ``version`` of ``name`` for serving; a ServingError naming it if it cannot load."""
    started = time.perf_counter()
    try:
        loaded = reg.load_model(version.source)
    except ModelcycleError as exc:
        raise ServingError(f"version {version.version} of {name} cannot be loaded for serving: {exc.message}",
                           exc.hint) from exc
    except Exception as exc:  # a model's own code may raise anything while it loads
        raise ServingError(f"version {version.version} of {name} cannot be loaded for serving: "
                           f"{type(exc).__name__}: {exc}",
                           "point the alias at another version (`modelcycle promote --version N`)") from exc
    return from_loaded(name, version, loaded, time.perf_counter() - started)


def check_serves(served: Served, rows: pd.DataFrame) -> None:
    """Predict ``rows`` (raw records; the target and other extra columns may be among them) and
    check there is one finite prediction per row; a ServingError saying what went wrong."""
    where = f"version {served.version.version} of {served.name}"
    if rows.empty:
        return
    missing = [c for c in served.columns if c not in rows.columns]
    if missing:
        raise ServingError(f"{where} needs the column(s) {', '.join(missing)}, which the window's rows lack",
                           "the model's signature and the source's columns differ: retrain on this source")
    try:
        predictions = served.predict(rows)
    except Exception as exc:
        raise ServingError(f"{where} loads but cannot predict the window's held-out rows: "
                           f"{type(exc).__name__}: {exc}",
                           "the model does not work where it is served; the champion stays") from exc
    if len(predictions) != len(rows):
        raise ServingError(f"{where} gave {len(predictions)} predictions for {len(rows)} rows",
                           "the model's predict must return one value per record")
    if served.task != "classification" and predictions.dtype.kind in "fc":
        bad = int(np.count_nonzero(~np.isfinite(predictions)))
        if bad:
            raise ServingError(f"{where} predicted {bad} non-finite value(s) (NaN or infinity) on "
                               f"{len(rows)} held-out rows", "the champion stays; check the model's features")
    elif predictions.dtype.kind == "O":
        bad = sum(1 for p in predictions if p is None or (isinstance(p, float) and math.isnan(p)))
        if bad:
            raise ServingError(f"{where} predicted {bad} empty value(s) on {len(rows)} held-out rows",
                               "the champion stays; check the model")
