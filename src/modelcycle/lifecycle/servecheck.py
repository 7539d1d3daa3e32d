"""The load check of a served workspace's promotion (what TFX calls InfraValidator).

A workspace is *served* when ``modelcycle.yaml`` has a ``serve:`` section, or when
``.modelcycle/serving.json`` (written by the model server, modelcycle serve, while it runs) names a live
process. Then, before the champion alias moves, the new version is loaded by the serving
runtime and predicts the window's held-out rows; a failure raises, and the act block's
transaction rolls back as for any other failure.
"""

from __future__ import annotations

import logging

import pandas as pd

from modelcycle import tracepoints
from modelcycle.config import Workspace
from modelcycle.lifecycle.services import Services
from modelcycle.registry.base import ModelVersion

log = logging.getLogger(__name__)

POINT = "check-serving"   # trace points before:check-serving / after:check-serving


def is_served(ws: Workspace) -> bool:
    """Has the workspace a ``serve:`` section, or a model server (modelcycle serve) running?"""
    from modelcycle.serving.marker import live_marker

    return ws.config.serve is not None or live_marker(ws.state_dir) is not None


def serving_check(svc: Services, version: ModelVersion, holdout: pd.DataFrame) -> None:
    """If the workspace is served: load ``version`` in the serving runtime and check that it
    serves ``holdout`` (one finite prediction per row). Raises the serving layer's error."""
    if not is_served(svc.ws):
        return
    from modelcycle.serving import loader

    tracepoints.reach(f"before:{POINT}")
    served = loader.load_version(svc.registry, svc.name, version)
    loader.check_serves(served, holdout)
    tracepoints.reach(f"after:{POINT}")
