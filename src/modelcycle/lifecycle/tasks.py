"""The cycle's Prefect tasks. Each wraps one stage function or one side effect.

The act block's tasks (version, register, move the aliases) each record their side effect in
the cycle's journal through :func:`~modelcycle.lifecycle.effects.perform` and carry an
``on_rollback`` hook that undoes it with the same function crash recovery uses. The transaction
keeps only the workspace's path (Prefect copies what it keeps); a hook reopens the workspace's
services and journal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE
from prefect.transactions import Transaction

from modelcycle.config import Window
from modelcycle.errors import ModelcycleError
from modelcycle.gate import Decision, Policy, decide
from modelcycle.lifecycle import driftcheck, effects, stages
from modelcycle.lifecycle.effects import CYCLE_TAG
from modelcycle.lifecycle.journal import Journal
from modelcycle.lifecycle.services import Services, open_services
from modelcycle.notify import Event
from modelcycle.registry import history
from modelcycle.registry.base import CHALLENGER, CHAMPION, ModelVersion
from modelcycle.sources import tracked_paths
from modelcycle.steps.evaluate import Scores
from modelcycle.steps.split import Split
from modelcycle.steps.train import Trained
from modelcycle.steps.validate import ValidationReport
from modelcycle.versioning.base import Snapshot

TASK: dict[str, Any] = {"cache_policy": NONE, "persist_result": False}


@dataclass
class ChampionEval:
    version: ModelVersion
    scores: Scores
    load_seconds: float


def score_champion(svc: Services, version: ModelVersion, holdout: pd.DataFrame) -> ChampionEval:
    """Load a champion version and score it on ``holdout``; a model that does not load is named."""
    import time

    started = time.perf_counter()
    try:
        model = svc.registry.load_model(version.source)
    except ModelcycleError as exc:
        raise type(exc)(f"the champion, {svc.name} v{version.version}, cannot be loaded: {exc.message}",
                        exc.hint) from exc
    loaded = time.perf_counter() - started
    return ChampionEval(version, stages.evaluate(svc.ws, model, holdout), loaded)


# the stages ------------------------------------------------------------------------------


@task(name="fetch", **TASK)
def fetch_task(svc: Services, window: Window, rows: Callable[[], pd.DataFrame] | None,
               writes: stages.BackgroundWrites | None) -> pd.DataFrame:
    return stages.fetch(svc.ws, svc.source, window, rows=rows, writes=writes)


@task(name="validate", **TASK)
def validate_task(svc: Services, raw: pd.DataFrame, window: Window,
                  writes: stages.BackgroundWrites | None) -> tuple[pd.DataFrame, ValidationReport]:
    return stages.validate(svc.ws, raw, window, writes)


@task(name="prepare", **TASK)
def prepare_task(svc: Services, clean: pd.DataFrame, window: Window,
                 writes: stages.BackgroundWrites | None) -> Split:
    return stages.prepare(svc.ws, clean, window, writes)


@task(name="evaluate-champion", **TASK)
def evaluate_champion_task(svc: Services, version: ModelVersion | None, holdout: pd.DataFrame) -> ChampionEval | None:
    return None if version is None else score_champion(svc, version, holdout)


@task(name="train-challenger", **TASK)
def train_challenger_task(svc: Services, train_rows: pd.DataFrame) -> Trained:
    return stages.train(svc.ws, train_rows, svc.registry.save_model)


@task(name="evaluate-challenger", **TASK)
def evaluate_challenger_task(svc: Services, trained: Trained, holdout: pd.DataFrame) -> Scores:
    return stages.evaluate_trained(svc.ws, trained, holdout)


@task(name="noise-floor", **TASK)
def noise_floor_task(svc: Services, holdout: pd.DataFrame) -> Any:
    return stages.noise_floor(svc.ws, holdout)


@task(name="drift", **TASK)
def drift_task(svc: Services, champion: ModelVersion | None, window: Window, raw: pd.DataFrame | None,
               clean: pd.DataFrame) -> driftcheck.CycleDrift | None:
    """The window's drift from the champion's training rows; never raises (see driftcheck)."""
    return driftcheck.in_cycle(svc.ws, svc.source, champion, window, raw, clean)


@task(name="decide", **TASK)
def decide_task(champion: Scores | None, challenger: Scores, policy: Policy,
                data_problem: str | None, champion_problem: str | None = None) -> Decision:
    return decide(champion, challenger, policy, data_problem=data_problem, champion_problem=champion_problem)


@task(name="log-model", **TASK)
def log_model_task(svc: Services, run_id: str) -> str:
    """Upload the saved challenger to the cycle's MLflow run (a logged model, not yet registered)."""
    return svc.registry.log_model_dir(run_id, str(svc.ws.path(stages.MODEL)))


@task(name="notify", **TASK)
def notify_task(svc: Services, event: Event) -> list[str]:
    return svc.notifier.send(event)


# the act block ---------------------------------------------------------------------------


def _undo_hook(name: str) -> Any:
    """An ``on_rollback`` hook undoing side effect ``name`` (see the module doc), after any
    side effect journaled later than it (newest first, as :func:`effects.roll_back` does,
    whatever order Prefect runs the hooks in: a task that failed has no hook, and deleting
    the version before its alias is put back would leave the alias unset meanwhile)."""

    def hook(txn: Transaction) -> None:
        svc = open_services(txn.get("workspace"), committable=False)
        journal = Journal.open(svc.ws)
        if journal is not None:
            names = [e.name for e in journal.effects()]
            later = names[names.index(name) + 1:] if name in names else []
            for other in [*reversed(later), name]:
                effects.undo(svc, journal, other)

    hook.__name__ = f"undo_{name.replace(':', '_')}"
    return hook


def alias_of(svc: Services, alias: str) -> str | None:
    mv = svc.registry.get_alias(svc.name, alias)
    return mv.version if mv else None


@task(name="version-data-and-model", **TASK)
def version_task(svc: Services, journal: Journal, message: str, tag: str) -> Snapshot:
    tracked = tracked_paths(svc.source, svc.ws.root)  # a source's own files (an image folder)
    return effects.perform(journal, "commit",
                           lambda: svc.versioning.commit(stages.STAGES, message, tag=tag, tracked=tracked),
                           intent={"tag": tag}, result=lambda s: {"commit": s.commit, "pushed": s.pushed})


@task(name="register-challenger", **TASK)
def register_task(svc: Services, journal: Journal, run_id: str, model_uri: str, tags: dict[str, str]) -> ModelVersion:
    return effects.perform(
        journal, "register",
        lambda: svc.registry.register(svc.name, model_uri, run_id, tags={**tags, CYCLE_TAG: journal.cycle}),
        intent={"run_id": run_id}, result=lambda v: {"version": v.version})


def cycle_move(journal: Journal, alias: str, before: str | None, after: str,
               reason: str | None, who: str | None = None) -> history.Move:
    """The history's record of an alias the cycle of ``journal`` moves (``who``: the human who
    approved an escalation)."""
    return history.Move(alias, before, after, history.now(), "cycle", who=who, reason=reason, window=journal.window,
                        flow_run_id=journal.flow_run_id, run_id=journal.run_id)


@task(name="move-challenger-alias", **TASK)
def challenger_alias_task(svc: Services, journal: Journal, version: str, *, last: bool,
                          reason: str | None = None) -> None:
    effects.move_alias(svc, journal, CHALLENGER, version,
                       lambda before: cycle_move(journal, CHALLENGER, before, version, reason), commit=last)


@task(name="move-champion-alias", **TASK)
def champion_alias_task(svc: Services, journal: Journal, version: str, *, reason: str | None = None,
                        who: str | None = None) -> None:
    effects.move_alias(svc, journal, CHAMPION, version,
                       lambda before: cycle_move(journal, CHAMPION, before, version, reason, who), commit=True)


@task(name="check-serving", **TASK)
def serving_check_task(svc: Services, version: ModelVersion, holdout: pd.DataFrame) -> None:
    """A served workspace: the new champion loads and predicts in the serving runtime."""
    from modelcycle.lifecycle.servecheck import serving_check

    serving_check(svc, version, holdout)


version_task.on_rollback(_undo_hook("commit"))
register_task.on_rollback(_undo_hook("register"))
challenger_alias_task.on_rollback(_undo_hook("alias:challenger"))
champion_alias_task.on_rollback(_undo_hook("alias:champion"))
