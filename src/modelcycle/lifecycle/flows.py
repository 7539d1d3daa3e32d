"""The cycle and the backtest as Prefect flows.

    fetch -> validate -> prepare -+-> evaluate champion on the holdout ----------+
                                  +-> train challenger -> evaluate on the holdout +-> decide
    -> act (one transaction: version data + model, register, move aliases) -> notify

Tasks only wrap the stage functions. Safety (see :mod:`modelcycle.lifecycle.effects`):

* the cycle holds the workspace's lock (:mod:`modelcycle.lifecycle.lock`) and repairs what a
  dead cycle left before it starts;
* a journal records each side effect's intent before it happens and its completion after; the
  act block is a Prefect transaction whose tasks' ``on_rollback`` hooks, the cycle's own
  rollback and crash recovery undo through the same functions; the last alias move is the
  commit point;
* the decision is checked again at act time against the champion *then* (another worker, the
  MLflow UI or a ``promote`` may have moved it): the new champion is scored on the same rows
  and the gate decides again; on a team's Prefect server the act block holds a global
  concurrency limit per model, so two workers never act for one model at once;
* SIGINT and SIGTERM stop a cycle between two side effects; training is awaited, then
  everything is rolled back.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.context import get_run_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.transactions import Transaction, transaction

from modelcycle import tracepoints
from modelcycle.config import Window, month_range
from modelcycle.errors import ModelcycleError, WorkspaceError
from modelcycle.gate import Decision, Outcome, Policy, decide
from modelcycle.lifecycle import effects, interrupts, lock, services, stages
from modelcycle.lifecycle.effects import CHAMPION_TAG, CYCLE_TAG, PROCESS_TAG
from modelcycle.lifecycle.journal import Journal
from modelcycle.lifecycle.services import Services, open_services
from modelcycle.registry.base import CHALLENGER, CHAMPION, ModelVersion
from modelcycle.steps.evaluate import Scores
from modelcycle.steps.train import Trained
from modelcycle.versioning.base import Snapshot, VersionState

log = logging.getLogger(__name__)
TASK: dict[str, Any] = {"cache_policy": NONE, "persist_result": False}


@dataclass
class ChampionEval:
    version: ModelVersion
    scores: Scores
    load_seconds: float


@dataclass
class CycleResult:
    """What one cycle did, for the CLI, the backtest table and the benchmark."""

    window: str
    outcome: str
    reasons: list[str]
    metric: str
    champion_version: str | None = None     # the champion the cycle started with
    challenger_version: str | None = None   # the version the challenger was registered as
    serving_version: str | None = None      # the champion after the cycle
    champion_score: float | None = None
    challenger_score: float | None = None
    noise_floor: float | None = None
    rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    git_commit: str | None = None
    git_tag: str | None = None
    data_hash: str | None = None
    mlflow_run_id: str | None = None
    flow_run_id: str | None = None
    error: str | None = None
    notify_problems: list[str] = field(default_factory=list)
    approved: bool = False                  # an escalation approved afterwards (backtest option)
    rolled_back: str | None = None          # what a failed cycle put back, in words
    repaired: str | None = None             # what the cycle's start-up recovery repaired

    @property
    def compute_seconds(self) -> float:
        """Model compute on the cycle's critical path: the challenger's fit (features included)
        or the champion's load and predictions, whichever took longer (they run in parallel),
        then the challenger's predictions."""
        t = self.timings
        champion = t.get("champion_load", 0.0) + t.get("champion_predict", 0.0)
        return max(t.get("fit", 0.0), champion) + t.get("challenger_predict", 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compute_seconds"] = self.compute_seconds
        return d


# tasks -----------------------------------------------------------------------------------------


@task(name="fetch", **TASK)
def fetch_task(svc: Services, window: Window, query: Future[pd.DataFrame] | None = None) -> pd.DataFrame:
    return stages.fetch(svc.ws, svc.source, window, rows=query.result if query is not None else None)


def _start_query(svc: Services, window: Window) -> Future[pd.DataFrame]:
    """Run the source query (it only reads) while the cycle captures the versioned state; the
    fetch task takes its result, or its error."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelcycle-fetch")
    try:
        return pool.submit(svc.source.fetch, *stages.fetch_range(svc.ws, window))
    finally:
        pool.shutdown(wait=False)


@task(name="validate", **TASK)
def validate_task(svc: Services, raw: pd.DataFrame, window: Window) -> tuple[pd.DataFrame, Any]:
    return stages.validate(svc.ws, raw, window)


@task(name="prepare", **TASK)
def prepare_task(svc: Services, clean: pd.DataFrame, window: Window) -> Any:
    return stages.prepare(svc.ws, clean, window)


def _score_champion(svc: Services, version: ModelVersion, holdout: pd.DataFrame) -> ChampionEval:
    started = time.perf_counter()
    try:
        model = svc.registry.load_model(version.source)
    except ModelcycleError as exc:
        raise type(exc)(f"the champion, {svc.name} v{version.version}, cannot be loaded: {exc.message}",
                        exc.hint) from exc
    loaded = time.perf_counter() - started
    return ChampionEval(version, stages.evaluate(svc.ws, model, holdout), loaded)


@task(name="evaluate-champion", **TASK)
def evaluate_champion_task(svc: Services, version: ModelVersion | None, holdout: pd.DataFrame) -> ChampionEval | None:
    return None if version is None else _score_champion(svc, version, holdout)


@task(name="train-challenger", **TASK)
def train_challenger_task(svc: Services, train_rows: pd.DataFrame) -> Trained:
    return stages.train(svc.ws, train_rows, svc.registry.save_model)


@task(name="evaluate-challenger", **TASK)
def evaluate_challenger_task(svc: Services, trained: Trained, holdout: pd.DataFrame) -> Scores:
    return stages.evaluate(svc.ws, trained.model, holdout)


@task(name="noise-floor", **TASK)
def noise_floor_task(svc: Services, holdout: pd.DataFrame) -> Any:
    return stages.noise_floor(svc.ws, holdout)


@task(name="decide", **TASK)
def decide_task(champion: Scores | None, challenger: Scores, policy: Policy,
                data_problem: str | None, champion_problem: str | None = None) -> Decision:
    return decide(champion, challenger, policy, data_problem=data_problem, champion_problem=champion_problem)


@task(name="log-model", **TASK)
def log_model_task(svc: Services, run_id: str) -> str:
    """Upload the saved challenger to the cycle's MLflow run (a logged model, not yet registered)."""
    return svc.registry.log_model_dir(run_id, str(svc.ws.path(stages.MODEL)))


# the act block: each side effect a task, undone by its on_rollback hook -----------------------


def _undo_hook(name: str) -> Any:
    """An ``on_rollback`` hook that undoes side effect ``name`` with the same function crash
    recovery uses. The transaction carries only the workspace's path (Prefect copies what it
    keeps); the hook reopens the workspace's services and journal."""

    def hook(txn: Transaction) -> None:
        svc = open_services(txn.get("workspace"), committable=False)
        journal = Journal.open(svc.ws)
        if journal is not None:
            effects.undo(svc, journal, name)

    hook.__name__ = f"undo_{name.replace(':', '_')}"
    return hook


@task(name="version-data-and-model", **TASK)
def version_task(svc: Services, journal: Journal, message: str, tag: str) -> Snapshot:
    return effects.perform(journal, "commit", lambda: svc.versioning.commit(stages.STAGES, message, tag=tag),
                           intent={"tag": tag}, result=lambda s: {"commit": s.commit, "pushed": s.pushed})


@task(name="register-challenger", **TASK)
def register_task(svc: Services, journal: Journal, run_id: str, model_uri: str, tags: dict[str, str]) -> ModelVersion:
    return effects.perform(
        journal, "register",
        lambda: svc.registry.register(svc.name, model_uri, run_id, tags={**tags, CYCLE_TAG: journal.cycle}),
        intent={"run_id": run_id}, result=lambda v: {"version": v.version})


def _alias_of(svc: Services, alias: str) -> str | None:
    mv = svc.registry.get_alias(svc.name, alias)
    return mv.version if mv else None


@task(name="move-challenger-alias", **TASK)
def challenger_alias_task(svc: Services, journal: Journal, version: str, *, last: bool) -> None:
    effects.perform(journal, "alias:challenger",
                    lambda: svc.registry.set_alias(svc.name, CHALLENGER, version),
                    intent={"before": _alias_of(svc, CHALLENGER), "to": version}, commit=last)


@task(name="move-champion-alias", **TASK)
def champion_alias_task(svc: Services, journal: Journal, version: str) -> None:
    reg = svc.registry

    def move() -> None:
        reg.set_alias(svc.name, CHAMPION, version)
        reg.set_model_tags(svc.name, {CHAMPION_TAG: version})

    effects.perform(journal, "alias:champion", move, commit=True, intent={
        "before": _alias_of(svc, CHAMPION), "to": version,
        "tag_before": reg.model_tags(svc.name).get(CHAMPION_TAG)})


version_task.on_rollback(_undo_hook("commit"))
register_task.on_rollback(_undo_hook("register"))
challenger_alias_task.on_rollback(_undo_hook("alias:challenger"))
champion_alias_task.on_rollback(_undo_hook("alias:champion"))


@task(name="notify", **TASK)
def notify_task(svc: Services, event: dict[str, Any]) -> list[str]:
    return svc.notifier.send(event)


# the cycle -------------------------------------------------------------------------------------


def _policy(svc: Services) -> Policy:
    g = svc.ws.config.gate
    return Policy(metric=svc.ws.config.metric, threshold=g.threshold, min_effect=g.min_effect,
                  confidence=g.confidence, resamples=g.resamples, seed=g.seed, test=g.test,
                  method=g.method, on_bad_data=g.on_bad_data)


def _flat_params(svc: Services, window: Window) -> dict[str, Any]:
    c, p = svc.ws.config, svc.ws.params
    return {"window": window.label, "estimator": c.model.estimator,
            "features": c.features.builder or ",".join(c.features.columns or []) or "raw columns",
            "metric": c.metric, **{f"gate.{k}": v for k, v in c.gate.model_dump().items()}, "seed": p.seed,
            "data.history_months": p.data.history_months,
            "split.holdout_fraction": p.split.holdout_fraction,
            **{f"model.{k}": v for k, v in p.model.items()}}


def _flow_run_id() -> str | None:
    try:
        ctx = get_run_context()
        return str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else None
    except Exception:
        return None


def _next_tag(svc: Services, window: Window) -> str:
    base = f"modelcycle/{svc.name}/{window.label}".replace("..", "_")
    existing = set(svc.versioning.tags(base))
    if base not in existing:
        return base
    n = 2
    while f"{base}.{n}" in existing:
        n += 1
    return f"{base}.{n}"


def _check_branch(svc: Services, state: VersionState) -> None:
    """A cycle commits on a branch: refuse a detached HEAD before anything changes."""
    if state.head is not None and state.branch is None:
        raise WorkspaceError(
            f"git's HEAD in {svc.ws.root} is detached (at {state.head[:10]}): a cycle's commit would "
            "belong to no branch",
            "get back on a branch first: `git switch main` (or `git switch -c NEW-BRANCH` to keep "
            "commits made on the detached HEAD), then run the cycle again")


def _champion_problem(svc: Services, current: ModelVersion | None) -> str | None:
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


def _user_edits(state: VersionState) -> list[str]:
    """The config files a user edited without committing them (committed with the cycle)."""
    return [p for p in state.dirty
            if not p.endswith(".gitignore") and p != "dvc.lock" and p not in state.outputs
            and not p.startswith(("reports/", "data/", "models/"))]


@contextlib.contextmanager
def _act_slot(svc: Services) -> Iterator[None]:
    """On a team's Prefect server, one act block per model at a time across every machine: a
    Prefect global concurrency limit (``modelcycle-act-<model>``, one slot, created when
    missing; a dead holder's lease expires after a minute). With the workspace's own server,
    the workspace lock already serialises the cycles."""
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


def _recheck_champion(svc: Services, decision: Decision, champion: ChampionEval | None, challenger: Scores,
                      holdout: pd.DataFrame, policy: Policy, problem: str | None) -> tuple[Decision, ChampionEval | None]:
    """The gate decided against the champion the cycle started with; if the champion has moved
    since, score the new one on the same rows and decide again (or, if it cannot be scored,
    do not promote)."""
    started_with = champion.version.version if champion else None
    current = svc.registry.get_alias(svc.name, CHAMPION)
    now = current.version if current else None
    if now == started_with:
        return decision, champion
    what = (f"the champion moved from {'v' + started_with if started_with else 'none'} to "
            f"{'v' + now if now else 'none'} while this cycle ran")
    if current is None:
        again = decide(None, challenger, policy, data_problem=problem,
                       champion_problem=f"{what} (its alias was removed)")
        return again, None
    try:
        rescored = _score_champion(svc, current, holdout)
    except ModelcycleError as exc:
        return Decision(Outcome.KEEP if decision.outcome is Outcome.PROMOTE else decision.outcome,
                        [f"{what}; v{now} could not be scored on this window ({exc.message}), so the "
                         "challenger is not promoted", *decision.reasons],
                        None, challenger.value, challenger.metric), None
    again = decide(rescored.scores, challenger, policy, data_problem=problem)
    return Decision(again.outcome, [f"{what}: the challenger was compared again, with v{now}, on the same rows",
                                    *again.reasons], again.champion, again.challenger, again.metric,
                    again.details), rescored


def _finished(future: Any) -> bool:
    inner = getattr(future, "wrapped_future", future)
    return bool(inner.done()) if hasattr(inner, "done") else True


def _await(futures: list[Any], writes: Any) -> None:
    """After a failure or an interrupt: wait for the training, the champion's scoring and the
    background writes, so nothing writes into the workspace after the rollback. A second
    signal while waiting gives up: the process exits and leaves the repair to the journal."""
    pending = [f for f in futures if f is not None]
    if not pending and writes is None:
        return

    def second(signum: int, _held: interrupts.Held) -> None:
        import os

        from modelcycle.console import err_console

        err_console.print("[error]stopped without rolling back[/error]: the next run or "
                          "`modelcycle doctor` repairs the workspace")
        os._exit(interrupts.EXIT_CODES.get(signum, 130))

    with interrupts.deferred(second):
        for f in pending:
            with contextlib.suppress(BaseException):
                f.wait()
        if writes is not None:
            with contextlib.suppress(BaseException):
                writes.close()


def run_cycle(svc: Services, window: Window) -> CycleResult:
    """One cycle for ``window``. Raises after rolling back what it changed. The caller holds the
    workspace lock."""
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    name, reg = svc.name, svc.registry
    result = CycleResult(window=window.label, outcome="failed", reasons=[], metric=svc.ws.config.metric,
                         flow_run_id=_flow_run_id())

    def lap(key: str, since: float) -> float:
        now = time.perf_counter()
        timings[key] = now - since
        return now

    query = _start_query(svc, window)
    result.repaired = effects.recover(svc)
    if result.repaired:
        log.warning("repaired before the cycle: %s", result.repaired)
    services.refuse_literal_secrets(svc.ws)  # again: the file may have changed since it was opened
    state0: VersionState = svc.versioning.state()
    _check_branch(svc, state0)
    champion_now = reg.get_alias(name, CHAMPION)
    result.champion_version = champion_now.version if champion_now else None
    champion_problem = _champion_problem(svc, champion_now)
    holder = lock.read_holder(svc.ws.root)
    journal = Journal.begin(svc.ws, window=window.label, state=state0, effects=["workspace"],
                            command=holder.command if holder else f"cycle {window.label}",
                            flow_run_id=result.flow_run_id)
    t = lap("setup", t_start)
    run_id: str | None = None
    futures: list[Any] = []
    writes: Any = None
    decision: Decision | None = None
    try:
        tracepoints.reach("cycle:started")
        run_id = reg.start_run(experiment=name, run_name=f"cycle {window.label}", tags={
            "modelcycle.window": window.label, "modelcycle.flow_run_id": result.flow_run_id or "",
            "modelcycle.champion_before": result.champion_version or "",
            CYCLE_TAG: journal.cycle, PROCESS_TAG: effects.process_id()})
        journal.set(run_id=run_id)
        result.mlflow_run_id = run_id
        with reg.system_metrics(run_id), stages.background_writes() as writes:
            svc.ws = stages.set_window(svc.ws, window)
            reg.log_params(run_id, _flat_params(svc, window))
            svc.say(window.label, "fetching rows")
            raw = fetch_task(svc, window, query)
            tracepoints.reach("cycle:fetched")
            t = lap("fetch", t)
            svc.say(window.label, f"validating {len(raw)} rows")
            clean, report = validate_task(svc, raw, window)
            result.dropped = dict(report.dropped)
            t = lap("validate", t)
            split = prepare_task(svc, clean, window)
            result.rows = {"raw": len(raw), "clean": len(clean), "train": len(split.train),
                           "history": split.history_rows, "fresh_train": split.fresh_train_rows,
                           "holdout": len(split.holdout), "window_in": report.window_rows_in,
                           "window_valid": report.window_rows_out}
            t = lap("prepare", t)

            svc.say(window.label, f"training the challenger on {len(split.train)} rows, "
                                  f"scoring the champion on {len(split.holdout)} held-out rows")
            trained_future = train_challenger_task.submit(svc, split.train)
            champion_future = evaluate_champion_task.submit(svc, champion_now, split.holdout)
            floor_future = noise_floor_task.submit(svc, split.holdout) if svc.ws.config.reference else None
            futures += [trained_future, champion_future, floor_future]
            tracepoints.reach("cycle:training")
            trained: Trained = trained_future.result()
            tracepoints.reach("cycle:trained")
            # the upload overlaps the evaluation and the decision; registering it is part of the act
            logged_future = log_model_task.submit(svc, run_id)
            futures.append(logged_future)
            champion: ChampionEval | None = champion_future.result()
            t = lap("train_and_champion", t)
            timings["fit"] = trained.fit_seconds
            if champion is not None:
                timings["champion_load"] = champion.load_seconds
                timings["champion_predict"] = champion.scores.predict_seconds
                result.champion_score = champion.scores.value
            challenger = evaluate_challenger_task(svc, trained, split.holdout)
            timings["challenger_predict"] = challenger.predict_seconds
            result.challenger_score = challenger.value
            t = lap("evaluate_challenger", t)

            floor = floor_future.result() if floor_future is not None else None
            if floor is not None:
                result.noise_floor = floor.noise_floor
                timings["noise_floor"] = floor.seconds

            limit = svc.ws.config.data.max_invalid_fraction
            problem = (f"{report.window_invalid_fraction:.0%} of the window's rows failed validation "
                       f"(limit {limit:.0%})") if report.window_invalid_fraction > limit else None
            policy = _policy(svc)
            decision = decide_task(champion.scores if champion else None, challenger, policy, problem,
                                   champion_problem)
            result.outcome, result.reasons = decision.outcome.value, list(decision.reasons)
            tracepoints.reach("cycle:decided")
            t = lap("decide", t)

            writes.wait()  # every stage output on disk before DVC records it
            model_uri: str = logged_future.result()
            t = lap("outputs_ready", t)  # what the background writes and the upload still needed
            edits = _user_edits(state0)
            with _act_slot(svc):
                decision, champion = _recheck_champion(svc, decision, champion, challenger, split.holdout,
                                                       policy, problem)
                if report.dropped:  # duplicates and broken cells never reach the holdout: say so
                    decision = replace(decision, reasons=[*decision.reasons, f"validation: {report.summary()}"])
                result.outcome, result.reasons = decision.outcome.value, list(decision.reasons)
                result.champion_score = champion.scores.value if champion else result.champion_score
                stages.write_json(svc.ws, stages.METRICS, {
                    "window": window.label, "metric": challenger.metric,
                    "challenger": challenger.to_dict(),
                    "champion": champion.scores.to_dict() if champion else None,
                    "champion_version": champion.version.version if champion else None,
                    "noise_floor": result.noise_floor,
                    "decision": decision.to_dict(), "validation": report.to_dict()})
                svc.say(window.label, f"{decision.outcome.value}: versioning, registering, moving aliases")
                message = (f"modelcycle: {name} {window.label}: {decision.outcome.value}\n\n"
                           + "\n".join(f"- {r}" for r in decision.reasons)
                           + (f"\n\nThis cycle ran with uncommitted changes to {', '.join(edits)}; "
                              "they are committed here, as the cycle used them." if edits else ""))
                promote = decision.outcome is Outcome.PROMOTE
                with transaction() as txn:
                    txn.set("workspace", str(svc.ws.root))
                    snapshot = version_task(svc, journal, message, _next_tag(svc, window))
                    version = register_task(svc, journal, run_id, model_uri, {
                        "window": window.label, "flow_run_id": result.flow_run_id or "",
                        "mlflow_run_id": run_id, "decision": decision.outcome.value,
                        f"holdout_{challenger.metric}": f"{challenger.value:.6g}",
                        "git_commit": snapshot.commit, "git_tag": snapshot.tag or "",
                        "dvc_data_hash": snapshot.hashes.get(stages.CLEAN, ""),
                        "dvc_model_hash": snapshot.hashes.get(stages.MODEL, "")})
                    challenger_alias_task(svc, journal, version.version, last=not promote)
                    if promote:
                        champion_alias_task(svc, journal, version.version)
            tracepoints.reach("cycle:committed")
            serving = version.version if promote else _alias_of(svc, CHAMPION)
            result.git_commit, result.git_tag = snapshot.commit, snapshot.tag
            result.data_hash = snapshot.hashes.get(stages.CLEAN)
            result.challenger_version, result.serving_version = version.version, serving
            t = lap("act", t)
            if edits:
                log.warning("the cycle committed your uncommitted changes to %s with it (commit %s)",
                            ", ".join(edits), snapshot.commit[:10])
    except BaseException as exc:
        if journal.committed:  # failed after the commit point: the cycle's changes stand
            log.warning("the cycle for %s committed, then failed: %s", window.label, exc)
            raise
        _fail(svc, result, journal, run_id, exc, futures, writes)
        raise

    _bookkeeping(svc, result, journal, run_id, decision, report, timings, challenger, champion)
    result.notify_problems = _announce(svc, result)
    tracepoints.reach("cycle:notified")
    timings["total"] = time.perf_counter() - t_start
    result.timings = timings
    return result


def _fail(svc: Services, result: CycleResult, journal: Journal, run_id: str | None, exc: BaseException,
          futures: list[Any], writes: Any) -> None:
    """Roll back a cycle that failed or was interrupted, close its run, announce it."""
    signum = interrupts.signal_of(exc)
    if signum is not None:
        result.error = {2: "interrupted (Ctrl-C)", 15: "terminated (SIGTERM)"}.get(int(signum), f"signal {signum}")
    else:
        result.error = str(exc) if isinstance(exc, ModelcycleError) else f"{type(exc).__name__}: {exc}"
    decided = f"the decision was to {result.outcome}; " if result.outcome != "failed" else ""
    result.outcome = "failed"
    if signum is not None and any(f is not None and not _finished(f) for f in futures):
        svc.say(result.window, "stopping: waiting for the training to finish before rolling back "
                               "(press Ctrl-C again to quit now and leave the repair to `modelcycle doctor`)")
    _await(futures, writes)
    tracepoints.reach("cycle:rolling-back")
    with interrupts.deferred():
        try:
            rolled = effects.roll_back(svc, journal)
            result.rolled_back = rolled.describe()
            effects.close_run(svc.registry, run_id, "KILLED" if signum is not None else "FAILED", {
                "modelcycle.error": result.error[:4900], "modelcycle.error_type": type(exc).__name__,
                "modelcycle.rolled_back": result.rolled_back})
            if run_id and not isinstance(exc, ModelcycleError) and signum is None:
                with contextlib.suppress(ModelcycleError):
                    svc.registry.log_dict(run_id, {"traceback": traceback.format_exc()}, "error.json")
            journal.end()
        except ModelcycleError as rb:
            log.error("the rollback of the cycle for %s did not finish: %s", result.window, rb.message)
            result.rolled_back = None
    if result.rolled_back is not None:
        what = f"everything it changed was rolled back ({result.rolled_back})"
    else:
        what = "its rollback did not finish (run `modelcycle doctor`)"
    result.reasons = [f"{decided}the cycle failed and {what}: {result.error}"]
    interrupts.note_rollback(f"the cycle for {result.window} stopped and {what}")
    if signum is None:
        _announce(svc, result)


def _bookkeeping(svc: Services, result: CycleResult, journal: Journal, run_id: str | None,
                 decision: Decision | None, report: Any, timings: dict[str, float], challenger: Scores,
                 champion: ChampionEval | None) -> None:
    """After the commit point: metrics, tags and the end of the MLflow run. A failure here
    leaves the journal (committed) for the next run or ``doctor`` to close."""
    assert decision is not None and run_id is not None
    reg = svc.registry
    metrics: dict[str, float] = {f"challenger_{result.metric}": challenger.value,
                                 **{f"rows_{k}": float(v) for k, v in result.rows.items()},
                                 "window_invalid_fraction": report.window_invalid_fraction,
                                 **{f"seconds_{k}": v for k, v in timings.items()}}
    if champion is not None:
        metrics[f"champion_{result.metric}"] = champion.scores.value
    if result.noise_floor:
        metrics["noise_floor"] = result.noise_floor
        metrics[f"challenger_{result.metric}_over_floor"] = challenger.value / result.noise_floor
        if champion is not None:
            metrics[f"champion_{result.metric}_over_floor"] = champion.scores.value / result.noise_floor
    try:
        reg.log_metrics(run_id, metrics)
        reg.log_dict(run_id, report.to_dict(), "validation.json")
        reg.set_tags(run_id, {
            "modelcycle.decision": decision.outcome.value,
            "modelcycle.reasons": " | ".join(decision.reasons)[:4900],
            "modelcycle.git_commit": result.git_commit or "", "modelcycle.git_tag": result.git_tag or "",
            "modelcycle.dvc_data_hash": result.data_hash or "",
            "modelcycle.challenger_version": result.challenger_version or "",
            "modelcycle.champion_after": result.serving_version or ""})
        tracepoints.reach("cycle:tracked")
        reg.end_run(run_id, "FINISHED")
        journal.end()
    except ModelcycleError as exc:
        log.warning("the cycle for %s committed, but its MLflow bookkeeping did not finish (%s); the "
                    "next run or `modelcycle doctor` closes it", result.window, exc.message)


def _announce(svc: Services, result: CycleResult) -> list[str]:
    event = {"model": svc.name, "window": result.window, "outcome": result.outcome,
             "reasons": result.reasons or ([result.error] if result.error else []),
             "version": result.challenger_version, "champion": result.serving_version,
             "metric": result.metric, "champion_score": result.champion_score,
             "challenger_score": result.challenger_score, "git_commit": result.git_commit}
    try:
        return notify_task(svc, event)
    except Exception as exc:  # a notification never undoes a decision
        log.warning("notification failed: %s", exc)
        return [str(exc)]


@flow(name="modelcycle-cycle", flow_run_name="{window}", validate_parameters=False)
def cycle_flow(workspace: str, window: str) -> CycleResult:
    """Fetch, validate, prepare, evaluate the champion while training a challenger, decide, act, notify."""
    svc = open_services(workspace)
    with lock.hold(svc.ws.root, f"modelcycle cycle {window}"):
        return run_cycle(svc, Window.parse(window))


@flow(name="modelcycle-backtest", flow_run_name="{first}..{last}", validate_parameters=False)
def backtest_flow(workspace: str, first: str, last: str, approve_escalations: bool = False) -> list[CycleResult]:
    """Replay the cycle month by month; a failed month is recorded and the replay goes on.

    With ``approve_escalations``, an escalated challenger is approved before the next month, as a
    human who reviewed it would (a replay otherwise keeps the champion, as a timeout does)."""
    results: list[CycleResult] = []
    with lock.hold(Path(workspace), f"modelcycle backtest {first}..{last}"):
        for w in month_range(first, last):
            started = time.perf_counter()
            state = cycle_flow(workspace, w.label, return_state=True)
            if state.is_completed():
                result: CycleResult = state.result()
                result.timings["wall"] = time.perf_counter() - started
                results.append(result)
                if approve_escalations and result.outcome == "escalate" and result.challenger_version:
                    from modelcycle.lifecycle import actions

                    done = actions.promote(open_services(workspace), result.challenger_version,
                                           reason=f"escalation of {w.label} approved in the backtest", by="backtest")
                    result.serving_version, result.approved = done.version, True
                    result.reasons.append(f"approved afterwards: v{done.version} serves from the next month")
            else:
                exc = state.result(raise_on_failure=False)
                if isinstance(exc, BaseException) and interrupts.is_interrupt(exc):
                    raise exc
                results.append(CycleResult(window=w.label, outcome="failed", reasons=[str(exc)],
                                           metric="", error=str(exc)))
    return results


# entry points used by the CLI ------------------------------------------------------------------


def _run_settings() -> Any:
    """Flow-run heartbeats detect crashed runs on a long-lived server; a cycle on the embedded
    server does not need them (its recovery closes a dead process's runs), and they cost up to
    a second per flow run. Every flow run carries this process's tag, by which recovery tells
    a dead process's runs from live ones."""
    from prefect import tags

    from modelcycle.lifecycle import runtime

    stack = contextlib.ExitStack()
    if not runtime.team_server():
        stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
    stack.enter_context(tags(f"{effects.FLOW_PROCESS_TAG}:{effects.process_id()}"))
    return stack


def run(workspace: Path, window: str) -> CycleResult:
    with _run_settings():
        started = time.perf_counter()
        result = cycle_flow(str(workspace), window)
        result.timings["wall"] = time.perf_counter() - started
        return result


def backtest(workspace: Path, first: str, last: str, *, approve_escalations: bool = False) -> list[CycleResult]:
    with _run_settings():
        return backtest_flow(str(workspace), first, last, approve_escalations)
