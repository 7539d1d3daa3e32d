"""The examples `modelcycle init --example NAME` and `modelcycle demo` build, found by name.

An example is a package ``modelcycle.examples.NAME`` shipped beside the core. No module of
modelcycle imports it (an import-linter contract in pyproject.toml keeps it so): the CLI finds
the packages in that folder and imports the one asked for by its name, as a cycle imports a
user's feature builder by the import path in modelcycle.yaml. An example package has

- in its ``__init__`` (which must stay light: a logged model imports the example's feature
  module, and its package's ``__init__`` with it): ``ABOUT``, one line for ``init --help``,
  ``FIRST_WINDOW``, the window of the workspace's first cycle (``YYYY-MM``), and for
  ``modelcycle demo`` ``DEMO_MONTHS`` (the first and last month it replays after that) and
  ``DEMO_STORY`` (what happens in them, one line);
- a ``workspace`` module with ``create(root, *, force, progress, **options)`` returning the
  :class:`~modelcycle.config.Workspace` (built with
  :func:`modelcycle.lifecycle.workspace.create_from_config`).

A second example is a second package there; nothing here changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from modelcycle.errors import ConfigError

PACKAGE = "modelcycle.examples"


def names() -> list[str]:
    """The examples shipped with modelcycle, sorted."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(list(spec.submodule_search_locations)) if m.ispkg)


def package(name: str) -> ModuleType:
    """Example ``name``'s package (its ``ABOUT`` and ``FIRST_WINDOW``); ConfigError naming the
    examples there are when there is no such example."""
    known = names()
    if name not in known:
        raise ConfigError(f"there is no example '{name}'", f"examples: {', '.join(known) or 'none'}")
    return importlib.import_module(f"{PACKAGE}.{name}")


def about() -> str:
    """``name (what it is); ...`` for ``init --help``."""
    return "; ".join(f"{name} ({getattr(package(name), 'ABOUT', 'an example')})" for name in names())


def create(name: str, root: Path, *, force: bool, progress: Callable[[str], None], **options: Any) -> Any:
    """Create example ``name``'s workspace in ``root``; ``options`` are the example's own
    (``rows_per_month`` for taxifare), given only when the user gave them."""
    import inspect

    package(name)
    make = importlib.import_module(f"{PACKAGE}.{name}.workspace").create
    accepted = inspect.signature(make).parameters
    refused = [k for k in options if k not in accepted]
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        raise ConfigError(f"the example '{name}' has no option {flags}", f"leave {flags} out for {name}")
    return make(root, force=force, progress=progress, **options)


def append(name: str, ws: Any) -> tuple[str, int]:
    """Append the next period of example ``name``'s data to workspace ``ws``'s source."""
    package(name)
    module = importlib.import_module(f"{PACKAGE}.{name}.workspace")
    if not hasattr(module, "append"):
        raise ConfigError(f"the example '{name}' cannot append data", "append rows to its source yourself")
    month, rows = module.append(ws)
    return str(month), int(rows)
