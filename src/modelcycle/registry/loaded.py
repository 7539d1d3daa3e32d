"""The model a registry loads: a pyfunc model with modelcycle's predict and probabilities.

:func:`load_location` downloads a model's files (with the registry's explicit URIs) and loads
them as an MLflow pyfunc model; :class:`LoadedModel` wraps it. Importing this module does not
import MLflow.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.errors import DataError, ModelcycleError
from modelcycle.registry.base import ModelVersion
from modelcycle.registry.translate import exc_text, translate

# mlflow.pyfunc.load_model of a "models from code" model runs the code file and reads the model
# it registered from a module global (mlflow.models.model.__mlflow_model__): loads must not
# interleave.
_LOAD_LOCK = threading.RLock()

_CORRUPT_HINT = ("the model's files are missing, truncated or corrupt: register the model again "
                 "(`modelcycle run --window YYYY-MM`), or point the alias at another version "
                 "(`modelcycle promote --version N`)")


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
    def pyfunc_model(self) -> Any:
        """The MLflow ``PyFuncModel`` itself (its signature, ``unwrap_python_model()``)."""
        return self._model

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
            raise DataError(f"the records do not fit the model {self.uri}: {exc_text(exc)}",
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



def load_location(location: str, uri: str, version: ModelVersion | None, *,
                  tracking_uri: str, registry_uri: str) -> LoadedModel:
    """Download the model at the artifact ``location`` (what ``uri`` resolved to, from
    ``version`` when it is a registered one) and load it."""
    import mlflow.artifacts
    import mlflow.pyfunc

    where = uri if version is None else f"{uri} (version {version.version})"
    with translate(f"cannot load the model {where}", _CORRUPT_HINT):
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, tracking_uri=tracking_uri, registry_uri=registry_uri,
        )
        with _LOAD_LOCK:
            model = mlflow.pyfunc.load_model(local)
    return LoadedModel(model, uri, version)
