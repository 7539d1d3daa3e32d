"""The act block: check the decision against the champion *now*, then version, register and
move the aliases in one Prefect transaction.

* The champion is read again at act time: another worker, the MLflow UI or a ``promote`` may
  have moved it while the cycle trained. The new champion is then scored on the same held-out
  rows and the gate decides again (or, if it cannot be scored, the challenger is not promoted).
* On a team's Prefect server the block holds a Prefect global concurrency limit per model, so
  two workers never act for one model at once. With the workspace's own server the workspace
  lock already serialises cycles.
* The push of the data and model to the DVC remote is part of the transaction: DVC's remote is
  first brought in line with ``backends.dvc_remote``, and earlier cycles not pushed are pushed
  again; a failed push then fails the block (``versioning.push: required``, the default), or
  is written down and retried later (``best-effort``; :mod:`modelcycle.lifecycle.unpushed`).
* With ``act.keep_rejected: false``, a challenger that is not promoted (the decision is keep:
  the gate kept the champion, a human rejected an escalation or its approval timed out, the
  window's data was suspect) is rolled back instead (:func:`reject`): the workspace goes back
  to what the cycle found, through the same undo a failed cycle's rollback and crash recovery
  use, and nothing is versioned, registered or moved. Only its MLflow run stays.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
from prefect import task
from prefect.transactions import transaction

from modelcycle.errors import ModelcycleError, VersioningError
from modelcycle.gate import Decision, Outcome, Policy, decide
from modelcycle.lifecycle import datasets, effects, rolledback, stages, tasks, unpushed
from modelcycle.lifecycle.automation import tag_base
from modelcycle.lifecycle.journal import Journal
from modelcycle.lifecycle.services import Services
from modelcycle.lifecycle.tasks import ChampionEval
from modelcycle.registry.base import CHAMPION, ModelVersion
from modelcycle.steps.evaluate import Scores
from modelcycle.versioning.base import Snapshot

log = logging.getLogger(__name__)

@dataclass
class Acted:
    """What the act block did."""

    decision: Decision               # the decision acted on (it may differ from the gate's first)
    champion: ChampionEval | None    # the champion it was compared with
    snapshot: Snapshot | None        # None: the challenger was rolled back (nothing versioned)
    version: ModelVersion | None     # the challenger's registered version (None: rolled back)
    serving: str | None              # the champion after the cycle
    rolled_back: str | None = None   # what a rolled-back challenger's cycle put back, in words

    @property
    def rejected(self) -> bool:
        return self.snapshot is None


@contextlib.contextmanager
def slot(svc: Services) -> Iterator[None]:
    """On a Prefect server that outlives the command, the act block runs inside the model's slot
    (:mod:`~modelcycle.lifecycle.modellock`: ``modelcycle-<model>``, one slot across every
    machine). The cycle's flow holds it already, for the whole cycle; this takes it (without a
    call to the server) only where an act block would run outside one."""
    from modelcycle.lifecycle import modellock, runtime

    if not runtime.long_lived_server():
        yield
        return
    with modellock.hold(svc.name, f"the act of {svc.name}", say=lambda text: log.warning("%s", text)):
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
    unpushed.sync(svc.ws, svc.versioning)  # DVC pushes where modelcycle.yaml says, now
    unpushed.retry(svc.ws, svc.versioning)  # earlier cycles whose push failed (best-effort), before this one's
    with transaction() as txn:
        txn.set("workspace", str(svc.ws.root))
        snapshot = tasks.version_task(svc, journal, message, next_tag(svc, label))
        check_pushed(svc, snapshot)
        unpushed.record(svc.ws, label, snapshot)  # before the commit point: a crash after it keeps the record
        version = tasks.register_task(svc, journal, run_id, model_uri, {
            **lineage, "git_commit": snapshot.commit, "git_tag": snapshot.tag or "",
            "dvc_data_hash": snapshot.hashes.get(datasets.layout(svc.ws).lineage, ""),
            "dvc_model_hash": snapshot.hashes.get(stages.MODEL, "")})
        tasks.challenger_alias_task(svc, journal, version.version, last=not promote, reason=reason)
        if promote:
            if holdout is not None:
                tasks.serving_check_task(svc, version, holdout)
            tasks.champion_alias_task(svc, journal, version.version, reason=reason,
                                      who=decision.details.get("approved_by"))
    serving = version.version if promote else tasks.alias_of(svc, CHAMPION)
    return snapshot, version, serving


def check_pushed(svc: Services, snapshot: Snapshot) -> None:
    """With ``versioning.push: required`` (the default), a push that failed fails the act block,
    which rolls back the commit and tag and the DVC outputs (nothing was registered or moved yet).
    With ``best-effort`` the cycle goes on and the push is retried later (:mod:`unpushed`)."""
    if snapshot.pushed or snapshot.push_error is None:
        return
    if svc.ws.config.versioning.push == "required":
        raise VersioningError(snapshot.push_error, snapshot.push_hint)
    log.warning("%s", snapshot.push_error)


def policy_of(svc: Services) -> Policy:
    """The gate's settings of the workspace (modelcycle.yaml ``gate:`` and its metric)."""
    g = svc.ws.config.gate
    return Policy(metric=svc.ws.config.metric, threshold=g.threshold, min_effect=g.min_effect,
                  confidence=g.confidence, resamples=g.resamples, seed=g.seed, test=g.test,
                  method=g.method, on_bad_data=g.on_bad_data)


def rejects(svc: Services, decision: Decision) -> bool:
    """Whether this decision rolls the challenger back instead of versioning it, when
    ``act.keep_rejected`` is false: it keeps the champion, or it escalates a challenger that
    misses the threshold (the seeds' transactional rule: a new model under the bar is rolled back,
    whatever the champion scores; the champion stays). An escalation of a challenger that meets
    the threshold is versioned, so a human can promote it later; one a human rejects, or whose
    approval times out, reaches the act as keep."""
    if svc.ws.config.act.keep_rejected:
        return False
    if decision.outcome is Outcome.KEEP:
        return True
    return decision.outcome is Outcome.ESCALATE and not policy_of(svc).meets(decision.challenger)


@task(name="roll-back-challenger", **tasks.TASK)
def reject(svc: Services, journal: Journal, *, label: str, run_id: str, reasons: list[str]) -> str:
    """The act of a challenger that is not kept: put the workspace back as the cycle found it
    (git, params.yaml, dvc.lock, the DVC outputs: :func:`effects.restore_workspace`, the undo the
    transaction's hooks and crash recovery use), then record the window as rolled back
    (:mod:`rolledback`), the cycle's last side effect and its commit point. Returns what was put
    back, in words.

    A crash or an interrupt before the record leaves a journal that is not committed: the
    rollback (or the next run's recovery) repeats the restore, which is safe, and forgets the
    record; the window then counts as not processed. After the record, the workspace is as
    before the cycle and the window is processed."""
    done = effects.Rollback()
    if effects.undo(svc, journal, "workspace"):
        done.undone.append("workspace")
    effects.perform(journal, "reject", lambda: rolledback.record(svc.ws, label, run_id=run_id, reasons=reasons),
                    intent={"window": label, "run_id": run_id}, commit=True)
    return done.describe()
