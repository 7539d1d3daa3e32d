"""Resolve ``package.module:attribute`` (or ``package.module.attribute``) import paths."""

from __future__ import annotations

import importlib
from typing import Any

from modelcycle.errors import ConfigError


def resolve(path: str, *, what: str = "object", field: str | None = None) -> Any:
    """Import and return the object named by ``path``.

    ``what`` and ``field`` only shape the error message (for example ``what="estimator"``,
    ``field="model.estimator"``).
    """
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    where = f" (field '{field}')" if field else ""
    if not module_name or not attr:
        raise ConfigError(
            f"'{path}' is not an import path{where}",
            "write it as 'package.module:name', for example 'lightgbm:LGBMRegressor'",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module '{module_name}' for the {what} '{path}'{where}: {exc}",
            "check the spelling, or install the package into modelcycle's environment",
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigError(
                f"module '{module_name}' has no attribute '{attr}' for the {what} '{path}'{where}",
                "check the spelling of the name after the colon",
            ) from exc
    return obj
