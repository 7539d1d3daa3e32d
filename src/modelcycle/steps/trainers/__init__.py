"""Trainers: how a challenger is fitted, how it predicts, and how it is saved.

``model.trainer`` in modelcycle.yaml (default ``sklearn``) names a trainer: one of
:data:`TRAINERS`, or an entry point of an installed package in the group
``modelcycle.trainers`` (see :mod:`modelcycle.config.plugins`). The cycle
(:mod:`modelcycle.lifecycle.stages`) only ever calls a trainer through :class:`Trainer`.

How a trained model becomes an MLflow pyfunc. The registry's packaging
(:func:`modelcycle.registry.packaging.save_pyfunc_model`) already saves any *pipeline object*:
a picklable object (CloudPickle) whose ``predict(raw_records_frame)`` returns one prediction per
record, and which may also have ``predict_proba(frame)`` and ``classes`` (a classifier),
``input_columns`` (the raw columns it needs: the model's signature), ``features`` (a feature
builder's import path, shipped with the model) and ``task``/``target``. The generic pyfunc
(:mod:`modelcycle.registry.pyfunc`) unpickles it and calls it on raw records. So the smallest
seam is :meth:`Trainer.save`: the trainer is handed that writer (``writer``, the registry's
``save_model``) and decides what to give it. The ``sklearn`` trainer gives its
:class:`~modelcycle.steps.model.ModelPipeline`; a PyTorch trainer can give its own pipeline
object (a ``torch.nn.Module`` pickles, and its library joins the model's pip requirements like
LightGBM does), or, in a user's own package, write the model directory at ``path`` itself with
its own ``mlflow.pyfunc.PythonModel`` (the core's ``steps`` layer never imports MLflow, so a
built-in trainer goes through the writer). Whatever is saved at ``path`` is then logged,
registered and loaded like any other model: the champion is always scored through the loaded
pyfunc, the challenger through :meth:`Trainer.predict`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from modelcycle.config.plugins import TRAINER_GROUP, load_entry_point
from modelcycle.errors import ConfigError, ModelcycleError
from modelcycle.steps.train import Trained, TrainSpec


class PipelineWriter(Protocol):
    """The registry's ``save_model`` (:class:`modelcycle.registry.base.ModelWriter`), as the
    ``steps`` layer sees it: writes a pipeline object as an MLflow pyfunc directory."""

    def __call__(self, pipeline: Any, path: str, *, input_example: pd.DataFrame,
                 extra_code_paths: Sequence[Any] | None = None,
                 extra_pip_requirements: Sequence[str] | None = None) -> None: ...


@runtime_checkable
class Trainer(Protocol):
    """Fits a model on a training frame, predicts with it, saves it as an MLflow pyfunc."""

    def fit(self, train: pd.DataFrame, spec: TrainSpec) -> Trained:
        """The model fitted on ``train`` (raw rows with the target), with the fit's seconds."""
        ...

    def predict(self, model: Any, frame: pd.DataFrame, *, proba: bool = False) -> np.ndarray:
        """One prediction per raw record of ``frame`` (without the target); with ``proba`` the
        class probabilities (rows x classes), a ModelError or DataError when there are none."""
        ...

    def classes(self, model: Any) -> list[Any] | None:
        """A classifier's classes, in the order of its probability columns; None otherwise."""
        ...

    def save(self, trained: Trained, path: str, *, input_example: pd.DataFrame,
             extra_code_paths: Sequence[Any] | None, writer: PipelineWriter) -> None:
        """Write ``trained`` as an MLflow pyfunc model directory at ``path`` that takes raw
        records (see the module doc); ``input_example`` holds a few raw records."""
        ...


TrainerFactory = Callable[[], Trainer]


def _sklearn() -> Trainer:
    from modelcycle.steps.trainers.sklearn import SklearnTrainer

    return SklearnTrainer()


def _torch() -> Trainer:
    """The PyTorch image classifier (:mod:`modelcycle.steps.trainers.torch`); PyTorch is an
    optional extra, imported only here."""
    try:
        from modelcycle.steps.trainers.torch import TorchTrainer
    except ImportError as exc:
        if not (exc.name or "").startswith("torch"):
            raise
        raise ConfigError("model.trainer: torch needs PyTorch: pip install 'modelcycle[torch]'",
                          "the extra installs the CPU build of torch 2.13.0; or choose another model.trainer") from exc
    return TorchTrainer()


#: The built-in trainers (their names are listed in
#: :data:`modelcycle.config.plugins.BUILTIN_TRAINERS` too, so a config is checked when it loads).
TRAINERS: dict[str, TrainerFactory] = {"sklearn": _sklearn, "torch": _torch}


def trainer_for(kind: str) -> Trainer:
    """The trainer ``model.trainer`` names: a built-in one, else an installed package's entry
    point (a class or function called without arguments)."""
    factory: Any = TRAINERS.get(kind) or load_entry_point(TRAINER_GROUP, kind, "model.trainer")
    try:
        trainer = factory() if callable(factory) else factory
    except ModelcycleError:
        raise
    except Exception as exc:  # a user's class: report its own error
        raise ConfigError(f"the trainer '{kind}' cannot be created: {type(exc).__name__}: {exc}",
                          "fix the package that provides it") from exc
    if not isinstance(trainer, Trainer):
        raise ConfigError(f"the trainer '{kind}' ({type(trainer).__name__}) lacks fit, predict, classes or save",
                          "a trainer implements modelcycle.steps.trainers.Trainer")
    return trainer


class Scorable:
    """A trained model as :func:`modelcycle.steps.evaluate.evaluate` takes it (``predict``,
    ``predict_proba``, ``classes``), predicting through its trainer."""

    def __init__(self, trainer: Trainer, model: Any) -> None:
        self.trainer, self.model = trainer, model
        self.classes = trainer.classes(model)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.trainer.predict(self.model, frame)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.trainer.predict(self.model, frame, proba=True)


__all__ = ["TRAINERS", "PipelineWriter", "Scorable", "Trained", "TrainSpec", "Trainer", "TrainerFactory",
           "trainer_for"]
