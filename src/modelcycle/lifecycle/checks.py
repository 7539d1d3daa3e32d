"""What a cycle checks and reads before it changes anything (its ``begin`` phase) and the
plain facts it records about the workspace: a detached HEAD is refused, a champion the registry
lost is named, alias moves made outside modelcycle are recorded, the user's uncommitted edits
are listed, the run's parameters are flattened."""

from __future__ import annotations

import logging
from typing import Any

from modelcycle.config import Window
from modelcycle.errors import ModelcycleError, WorkspaceError
from modelcycle.lifecycle import stages
from modelcycle.lifecycle.effects import CHAMPION_TAG
from modelcycle.lifecycle.services import Services
from modelcycle.registry import history
from modelcycle.registry.base import ModelVersion
from modelcycle.versioning.base import VersionState

log = logging.getLogger(__name__)


def check_branch(svc: Services, state: VersionState) -> None:
    """A cycle commits on a branch: refuse a detached HEAD before anything changes."""
    if state.head is not None and state.branch is None:
        raise WorkspaceError(
            f"git's HEAD in {svc.ws.root} is detached (at {state.head[:10]}): a cycle's commit would "
            "belong to no branch",
            "get back on a branch first: `git switch main` (or `git switch -c NEW-BRANCH` to keep "
            "commits made on the detached HEAD), then run the cycle again")


def champion_problem(svc: Services, current: ModelVersion | None) -> str | None:
    """Why the champion cannot be compared with, when modelcycle made a champion that the
    registry no longer has; None otherwise."""
    if current is not None:
        return None
    expected = svc.registry.model_tags(svc.name).get(CHAMPION_TAG)
    if not expected:
        return None  # no champion was ever made: the first cycle
    try:
        svc.registry.get_version(svc.name, expected)
    except ModelcycleError:
        return (f"the champion's version {expected} is gone from the registry (deleted), and no "
                "version holds the champion alias")
    return f"the champion alias was removed from version {expected}, and no version holds it now"


def detect_outside_moves(svc: Services) -> list[str]:
    """Record the alias moves made outside modelcycle since the last one it recorded (the MLflow
    UI or API); the moves in words. A registry that does not answer is logged, never fatal."""
    try:
        found = history.detect_outside(svc.registry, svc.name)
    except ModelcycleError as exc:
        log.warning("could not check the alias history for moves made outside modelcycle: %s", exc.message)
        return []
    from modelcycle.lifecycle.actions import announce_outside

    announce_outside(svc.notifier, svc.name, found)
    said = [f"the {m.alias} alias was moved outside modelcycle from "
            f"{history.named(m.before)} to {history.named(m.after)}"
            for m in found]
    for line in said:
        log.warning("%s (recorded in its history)", line)
    return said


def user_edits(state: VersionState) -> list[str]:
    """The config files a user edited without committing them (committed with the cycle)."""
    return [p for p in state.dirty
            if not p.endswith(".gitignore") and p != "dvc.lock" and p not in state.outputs
            and not p.startswith(("reports/", "data/", "models/"))]


def flat_params(svc: Services, window: Window) -> dict[str, Any]:
    """The cycle's settings as the MLflow run's parameters."""
    c, p = svc.ws.config, svc.ws.params
    return {"window": window.label, **stages.model_settings(svc.ws),
            "features": c.features.builder or ",".join(c.features.columns or []) or "raw columns",
            "metric": c.metric, **{f"gate.{k}": v for k, v in c.gate.model_dump().items()}, "seed": p.seed,
            "data.history_months": p.data.history_months,
            "split.holdout_fraction": p.split.holdout_fraction,
            **{f"model.{k}": v for k, v in p.model.items()}}
