"""Examples beside the core, not in it.

Each example is a package here that reaches modelcycle only through the seams a user's own
project uses too, so that any of them could live in the user's repository instead:

- its data: a source in modelcycle.yaml (the taxi demo's warehouse is a plain ``duckdb`` source);
- its features: ``features.builder``, an import path into the example's package;
- its ground truth, if it has one: ``reference.factory`` (see :mod:`modelcycle.lifecycle.reference`);
- its workspace: ``create(root, *, force, progress, **options)`` in its ``workspace`` module, built
  with :func:`modelcycle.lifecycle.workspace.create_from_config`.

The core never imports this package (an import-linter contract in pyproject.toml keeps it so);
the CLI's ``init --example`` and ``demo`` do. This ``__init__`` stays light: a logged
model imports an example's feature module, and nothing else should come with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelcycle.config import Workspace

#: name -> what it is (``modelcycle init --example NAME``).
EXAMPLES: dict[str, str] = {
    "taxifare": "simulated New York cab rides 2009-2015 in a DuckDB warehouse, the seeds' 2.5 MAE gate",
}


def create(name: str, root: Path, **options: Any) -> Workspace:
    """Create example ``name``'s workspace in ``root`` (``options``: the example's ``create``'s)."""
    import importlib

    if name not in EXAMPLES:
        raise KeyError(name)
    ws: Workspace = importlib.import_module(f"modelcycle.examples.{name}.workspace").create(root, **options)
    return ws
