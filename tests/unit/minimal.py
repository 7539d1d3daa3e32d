"""The smallest modelcycle.yaml the unit tests load, the environment variables that would point a
test's workspace at other backends than its own file says, and candidates given to a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = """\
name: rides
source: {kind: files, url: "data/*.csv"}
data:
  timestamp: ts
  target: y
  columns: {ts: datetime, y: float, x: float}
metric: mae
gate: {threshold: 2.5}
"""

BACKEND_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PREFECT_API_URL", "MODELCYCLE_DVC_REMOTE")


def no_backend_variables(monkeypatch: pytest.MonkeyPatch, *more: str) -> None:
    """Unset :data:`BACKEND_VARIABLES` (and ``more``) for the test."""
    for name in (*BACKEND_VARIABLES, *more):
        monkeypatch.delenv(name, raising=False)


def with_candidates(root: Path, candidates: dict[str, dict[str, Any]], **orchestration: Any) -> None:
    """Give the workspace at ``root`` these ``candidates:`` in params.yaml and, when given, these
    ``orchestration:`` settings in modelcycle.yaml."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["candidates"] = candidates
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if orchestration:
        config = yaml.safe_load((root / "modelcycle.yaml").read_text())
        config["orchestration"] = orchestration
        (root / "modelcycle.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
