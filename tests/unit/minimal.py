"""The smallest modelcycle.yaml the unit tests load, and the environment variables that would
point a test's workspace at other backends than its own file says."""

from __future__ import annotations

import pytest

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
