"""What the contract tests compare: a protocol's public methods, and each method's parameters as
written (name, kind, default, annotation), so a fake and its real adapter cannot drift apart."""

from __future__ import annotations

import inspect
import typing


def public_methods(protocol: type) -> list[str]:
    """The methods ``protocol`` declares itself, without the private ones, sorted."""
    return sorted(name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_"))


def parameters(function: typing.Callable[..., object]) -> list[tuple[str, object, object, str]]:
    """(name, kind, default, annotation as written) of each parameter but ``self``."""
    return [(p.name, p.kind, p.default, str(p.annotation))
            for p in inspect.signature(function).parameters.values() if p.name != "self"]
