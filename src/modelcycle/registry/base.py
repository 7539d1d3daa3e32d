"""The registry interface the lifecycle talks to.

Two implementations: :mod:`modelcycle.registry.mlflow` (MLflow 3 through an explicit
``MlflowClient``: no global tracking URI, no active-run state, safe from parallel threads) and
:mod:`modelcycle.registry.memory` (a fake for fast tests). Every method raises
:class:`modelcycle.errors.RegistryError` (never an MLflow exception).

Registry stages are deprecated in MLflow; modelcycle uses aliases only. The words users know
from the seeds map onto them: ``Production`` -> ``champion``, ``Staging`` -> ``challenger``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from modelcycle.errors import NoChampionError, RegistryError

if TYPE_CHECKING:
    from modelcycle.steps.model import ModelPipeline

PROMOTE_HINT = "run a first cycle (`modelcycle run --window YYYY-MM`), or `modelcycle promote --version N`"
CHAMPION = "champion"
CHALLENGER = "challenger"
#: on the registered model: the version modelcycle last made champion (a move it did not make
#: shows as a champion elsewhere)
CHAMPION_TAG = "modelcycle.champion"
_SYNONYMS = {"production": CHAMPION, "staging": CHALLENGER, CHAMPION: CHAMPION, CHALLENGER: CHALLENGER}


def canonical_alias(word: str) -> str:
    """``Production``/``champion`` -> ``champion``; ``Staging``/``challenger`` -> ``challenger``."""
    try:
        return _SYNONYMS[word.strip().lower()]
    except KeyError:
        raise RegistryError(
            f"'{word}' is not an alias modelcycle manages",
            "use champion (or Production) or challenger (or Staging)",
        ) from None


@dataclass
class RunRecord:
    """What a run holds, as both registries report it (``get_run``)."""

    run_id: str
    experiment: str
    name: str
    status: str = "RUNNING"
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    model_ids: list[str] = field(default_factory=list)


def alias_name(word: str) -> str:
    """Production/Staging map to champion/challenger; other aliases pass through."""
    try:
        return canonical_alias(word)
    except RegistryError:
        return word


def no_alias_error(name: str, word: str) -> NoChampionError:
    """The error for loading ``name@word`` when no version holds that alias."""
    role = word if word in (CHAMPION, CHALLENGER) else f"'{word}' alias"
    return NoChampionError(f"no {role} for '{name}' yet", PROMOTE_HINT)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{"model": {"lr": 0.1}}`` -> ``("model.lr", 0.1)``."""
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten_params(value, name + ".")
        else:
            yield name, value


def param_text(value: Any) -> str:
    """How a param or tag value is written: strings as they are, lists/dicts as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict, set)):
        try:
            return json.dumps(list(value) if isinstance(value, set) else value, default=str)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 12] + "…[truncated]"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    source: str
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_ms: int | None = None


@runtime_checkable
class Predictor(Protocol):
    def predict(self, raw: pd.DataFrame) -> np.ndarray: ...


#: Files or folders shipped as code with a model (e.g. the workspace's ``features.py``).
CodePaths = Sequence[str | os.PathLike[str]]


class ModelWriter(Protocol):
    """``Registry.save_model``: what the training stage is given to write its model with."""

    def __call__(self, pipeline: ModelPipeline, path: str, *, input_example: pd.DataFrame,
                 extra_code_paths: CodePaths | None = None,
                 extra_pip_requirements: Sequence[str] | None = None) -> None: ...


class Registry(Protocol):
    """Runs, metrics, models, versions and aliases of one tracking + registry backend."""

    tracking_uri: str

    def check(self, timeout: float = 5.0) -> None:
        """Reach the store once; a RegistryError naming it when it does not answer in time."""
        ...

    # runs ---------------------------------------------------------------------------------
    def start_run(self, *, experiment: str, run_name: str, tags: dict[str, str] | None = None,
                  parent_run_id: str | None = None) -> str:
        """Create a run and return its id. Nothing global is set: the run is addressed by id."""
        ...

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log params in one batch (nested dicts are flattened with dots)."""
        ...

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
        """Log metrics in one batch."""
        ...

    def log_metric_steps(self, run_id: str, steps: Sequence[Mapping[str, float]], step_key: str = "epoch") -> None:
        """Log a learning curve in one batch: each mapping is one step, its number under
        ``step_key`` and its metrics under the other keys (MLflow draws each metric over the steps)."""
        ...

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None: ...

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None: ...

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """``status`` is FINISHED, FAILED or KILLED."""
        ...

    def system_metrics(self, run_id: str) -> AbstractContextManager[None]:
        """Sample CPU/memory of this process into the run while the block runs."""
        ...

    # models -------------------------------------------------------------------------------
    def save_model(self, pipeline: ModelPipeline, path: str, *, input_example: pd.DataFrame,
                   extra_code_paths: CodePaths | None = None,
                   extra_pip_requirements: Sequence[str] | None = None) -> None:
        """Write ``pipeline`` (a ModelPipeline) as an MLflow pyfunc model directory at ``path``,
        with signature, input example and explicit pip requirements (never inferred).

        ``extra_code_paths``: files or folders shipped with the model (e.g. the workspace's
        ``features.py``), each importable when the model loads; a missing one is a ModelError.
        ``extra_pip_requirements``: added to the requirements found from the pipeline."""
        ...

    def log_model_dir(self, run_id: str, path: str, artifact_path: str = "model") -> str:
        """Upload a saved model directory into the run; returns the model's artifact URI."""
        ...

    def load_model(self, uri: str) -> Predictor:
        """Load a pyfunc model from a path, ``runs:/`` or ``models:/`` URI."""
        ...

    # registry -----------------------------------------------------------------------------
    def register(self, name: str, source: str, run_id: str | None,
                 tags: dict[str, str] | None = None) -> ModelVersion:
        """Create a new version of registered model ``name`` (the model is created if new)."""
        ...

    def delete_version(self, name: str, version: str) -> None: ...

    def get_version(self, name: str, version: str) -> ModelVersion: ...

    def list_versions(self, name: str) -> list[ModelVersion]:
        """All versions, newest first."""
        ...

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None (also when the model does not exist)."""
        ...

    def set_alias(self, name: str, alias: str, version: str) -> None: ...

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Add or overwrite tags of a registered version."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """What a run holds: params, latest metrics, tags, status, artifacts."""
        ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias; a missing alias is not an error."""
        ...

    def find_runs(self, experiment: str, tags: dict[str, str], status: str | None = None) -> list[RunRecord]:
        """Runs of ``experiment`` carrying every tag of ``tags`` (and in ``status``, e.g.
        RUNNING, when given), with their tags (params, metrics and artifacts left empty); none
        when the experiment does not exist."""
        ...

    def find_versions(self, name: str, run_id: str) -> list[ModelVersion]:
        """Versions of ``name`` registered from run ``run_id``, newest first (also a version
        whose registration the caller never saw answered)."""
        ...

    def model_tags(self, name: str) -> dict[str, str]:
        """Tags of the registered model ``name`` ({} when it does not exist)."""
        ...

    def set_model_tags(self, name: str, tags: dict[str, str]) -> None:
        """Add or overwrite tags of the registered model ``name`` (created if new)."""
        ...

    def load_alias(self, name: str, alias: str) -> Predictor:
        """Load the model an alias points at; NoChampionError-like RegistryError if unset."""
        ...
