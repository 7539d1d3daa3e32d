"""Both registries take what the protocol says callers pass: same methods, same parameters.

The lifecycle talks to a :class:`~modelcycle.registry.base.Registry`; fast tests give it the
in-memory fake, real runs the MLflow adapter. A parameter one of them lacks (or names
differently, or defaults differently) would pass the fast tests and fail a real cycle.
Importing the MLflow adapter does not import MLflow, so this stays fast.
"""

from __future__ import annotations

import sys
import typing

import pytest

from modelcycle.registry import base
from modelcycle.registry.base import Registry
from modelcycle.registry.memory import MemoryRegistry
from modelcycle.registry.mlflow import MlflowRegistry
from tests.contracts import parameters, public_methods

METHODS = public_methods(Registry)


def test_the_protocol_covers_what_the_lifecycle_calls() -> None:
    assert {"check", "save_model", "log_model_dir", "load_model", "register", "set_alias"} <= set(METHODS)


@pytest.mark.parametrize("implementation", [MemoryRegistry, MlflowRegistry])
@pytest.mark.parametrize("method", METHODS)
def test_each_registry_has_the_protocols_signature(implementation: type, method: str) -> None:
    assert hasattr(implementation, method), f"{implementation.__name__} has no {method}"
    assert parameters(getattr(implementation, method)) == parameters(getattr(Registry, method))


def test_save_model_takes_the_code_paths_the_training_stage_passes() -> None:
    """The training stage passes a list of Paths (the workspace's feature module): the protocol
    says so without Any, and as a read-only Sequence (a ``list[str | PathLike]`` would refuse a
    ``list[Path]``, lists being invariant)."""
    import collections.abc
    import os
    from pathlib import Path

    namespace = vars(sys.modules[base.__name__]) | {"ModelPipeline": object}
    hints = typing.get_type_hints(Registry.save_model, namespace)
    sequence, none = typing.get_args(hints["extra_code_paths"])
    assert none is type(None)
    assert typing.get_origin(sequence) is collections.abc.Sequence
    (element,) = typing.get_args(sequence)
    kinds = [typing.get_origin(t) or t for t in typing.get_args(element)]
    assert kinds == [str, os.PathLike]
    assert isinstance(Path("features.py"), os.PathLike)
