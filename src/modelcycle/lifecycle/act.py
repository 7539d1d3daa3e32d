"""The act block: check the decision against the champion *now*, then version, register and
move the aliases in one Prefect transaction.

* The champion is read again at act time: another worker, the MLflow UI or a ``promote`` may
  have moved it while the cycle trained. The new champion is then scored on the same held-out
  rows and the gate decides again (or, if it cannot be scored, the challenger is not promoted).
* On a team's Prefect server the block holds a Prefect global concurrency limit per model, so
  two workers never act for one model at once. With the workspace's own server the workspace
  lock already serialises cycles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
from prefect.transactions import transaction

from modelcycle.errors import ModelcycleError
from modelcycle.gate import Decision, Outcome, Policy, decide
from modelcycle.lifecycle import stages, tasks
from modelcycle.lifecycle.automation import tag_base
from modelcycle.lifecycle.journal import Journal
from modelcycle.lifecycle.services import Services
from modelcycle.lifecycle.tasks import ChampionEval
from modelcycle.registry.base import CHAMPION, ModelVersion
from modelcycle.steps.evaluate import Scores
from modelcycle.versioning.base import Snapshot


@dataclass
class Acted:
    """What the act block did."""

    decision: Decision               # the decision acted on (it may differ from the gate's first)
    champion: ChampionEval | None    # the champion it was compared with
    snapshot: Snapshot
    version: ModelVersion            # the challenger's registered version
    serving: str | None              # the champion after the cycle


@contextlib.contextmanager
def slot(svc: Services) -> Iterator[None]:
    """On a team's Prefect server, one act block per model at a time across every machine: a
    Prefect global concurrency limit (``modelcycle-act-<model>``, one slot, created when
    missing; a dead holder's lease expires after a minute)."""
    from modelcycle.lifecycle import runtime

    if not runtime.team_server():
        yield
        return
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = f"modelcycle-act-{svc.name}"
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    with concurrency(name, occupy=1, lease_duration=60, strict=True):
        yield


def recheck_champion(svc: Services, decision: Decision, champion: ChampionEval | None, challenger: Scores,
                     holdout: pd.DataFrame, policy: Policy,
                     problem: str | None) -> tuple[Decision, ChampionEval | None]:
    """If the champion moved since the cycle started, score the new one on the same rows and
    decide again (or, if it cannot be scored, do not promote)."""
    started_with = champion.version.version if champion else None
    current = svc.registry.get_alias(svc.name, CHAMPION)
    now = current.version if current else None
    if now == started_with:
        return decision, champion
    what = (f"the champion moved from {'v' + started_with if started_with else 'none'} to "
            f"{'v' + now if now else 'none'} while this cycle ran")
    if current is None:
        return decide(None, challenger, policy, data_problem=problem,
                      champion_problem=f"{what} (its alias was removed)"), None
    try:
        rescored = tasks.score_champion(svc, current, holdout)
    except ModelcycleError as exc:
        return Decision(Outcome.KEEP if decision.outcome is Outcome.PROMOTE else decision.outcome,
                        [f"{what}; v{now} could not be scored on this window ({exc.message}), so the "
                         "challenger is not promoted", *decision.reasons],
                        None, challenger.value, challenger.metric), None
    again = decide(rescored.scores, challenger, policy, data_problem=problem)
    return Decision(again.outcome, [f"{what}: the challenger was compared again, with v{now}, on the same rows",
                                    *again.reasons], again.champion, again.challenger, again.metric,
                    again.details), rescored


def next_tag(svc: Services, label: str) -> str:
    """The git tag of a cycle for window ``label``: ``modelcycle/<model>/<window>[.N]``."""
    base = tag_base(svc.name, label)
    existing = set(svc.versioning.tags(base))
    if base not in existing:
        return base
    n = 2
    while f"{base}.{n}" in existing:
        n += 1
    return f"{base}.{n}"


def commit(svc: Services, journal: Journal, *, label: str, decision: Decision, model_uri: str, run_id: str,
           lineage: dict[str, str], message: str,
           holdout: pd.DataFrame | None = None) -> tuple[Snapshot, ModelVersion, str | None]:
    """The transaction: version the data and the model, register the challenger, move the
    challenger alias and, when promoting, check that a served workspace can serve the new
    version (on ``holdout``) and move the champion alias (the commit point)."""
    promote = decision.outcome is Outcome.PROMOTE
    reason = "; ".join([decision.outcome.value, *decision.reasons])
    with transaction() as txn:
        txn.set("workspace", str(svc.ws.root))
        snapshot = tasks.version_task(svc, journal, message, next_tag(svc, label))
        version = tasks.register_task(svc, journal, run_id, model_uri, {
            **lineage, "git_commit": snapshot.commit, "git_tag": snapshot.tag or "",
            "dvc_data_hash": snapshot.hashes.get(stages.CLEAN, ""),
            "dvc_model_hash": snapshot.hashes.get(stages.MODEL, "")})
        tasks.challenger_alias_task(svc, journal, version.version, last=not promote, reason=reason)
        if promote:
            if holdout is not None:
                tasks.serving_check_task(svc, version, holdout)
            tasks.champion_alias_task(svc, journal, version.version, reason=reason,
                                      who=decision.details.get("approved_by"))
    serving = version.version if promote else tasks.alias_of(svc, CHAMPION)
    return snapshot, version, serving
