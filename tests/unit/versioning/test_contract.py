"""Both versioning adapters take what the protocol says callers pass: same methods, same
parameters. The lifecycle talks to a :class:`~modelcycle.versioning.base.Versioning`; fast
tests give it the in-memory fake, real runs DVC + git. A parameter one of them lacks (or names
or defaults differently) would pass the fast tests and fail a real cycle."""

from __future__ import annotations


import pytest

from modelcycle.versioning.base import Versioning
from modelcycle.versioning.dvcgit import DvcGitVersioning
from modelcycle.versioning.memory import MemoryVersioning
from tests.contracts import parameters, public_methods

METHODS = public_methods(Versioning)


def test_the_protocol_covers_what_the_act_step_calls() -> None:
    assert {"state", "commit", "restore", "head", "tags", "hashes"} <= set(METHODS)


@pytest.mark.parametrize("implementation", [MemoryVersioning, DvcGitVersioning])
@pytest.mark.parametrize("method", METHODS)
def test_each_adapter_has_the_protocols_signature(implementation: type, method: str) -> None:
    assert hasattr(implementation, method), f"{implementation.__name__} has no {method}"
    assert parameters(getattr(implementation, method)) == parameters(getattr(Versioning, method))
