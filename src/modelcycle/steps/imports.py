"""Resolve ``package.module:attribute`` (or ``package.module.attribute``) import paths."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from modelcycle.errors import ConfigError

#: Import paths that moved, old -> new. A modelcycle.yaml written by an older modelcycle, or a model
#: it logged (the feature builder's path is saved inside the model), may still name the old place.
MOVED: dict[str, str] = {
    "modelcycle.steps.features:taxi_features": "modelcycle.examples.taxifare.features:taxi_features",
    "modelcycle.steps.features.taxi_features": "modelcycle.examples.taxifare.features:taxi_features",
}


def resolve(path: str, *, what: str = "object", field: str | None = None) -> Any:
    """Import and return the object named by ``path``.

    ``what`` and ``field`` only shape the error message (for example ``what="estimator"``,
    ``field="model.estimator"``). A path in :data:`MOVED` is resolved at its new place.
    """
    path = MOVED.get(path.strip(), path)
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


def load_from(folder: Path, name: str) -> Path | None:
    """Import the top-level module ``name`` from ``folder`` (``name.py`` or a package ``name/``)
    under that name, without putting ``folder`` on ``sys.path``; later imports of ``name`` (and of
    its submodules) find it. Returns its file or folder, or None if ``folder`` has no such module.
    A module of that name already imported from elsewhere is left as it is."""
    file, package = folder / f"{name}.py", folder / name
    where = file if file.is_file() else package if (package / "__init__.py").is_file() else None
    if where is None:
        return None
    if name in sys.modules:
        return where
    spec = importlib.util.spec_from_file_location(
        name, where if where == file else package / "__init__.py",
        submodule_search_locations=[str(package)] if where == package else None)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return where
