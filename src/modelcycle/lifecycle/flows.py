"""The cycle and the backtest as Prefect flows.

    fetch -> validate -> prepare -+-> evaluate champion on the holdout ----------+
                                  +-> train challenger -> evaluate on the holdout +-> decide
    -> act (one transaction: version data + model, register, move aliases) -> notify

Tasks only wrap the stage functions. The act block is a Prefect transaction: each side effect
is a task with an ``on_rollback`` hook that restores what was there before, so a failure
anywhere inside rolls all of it back. The alias move is the last step (the commit point).
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.context import get_run_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.transactions import Transaction, transaction

from modelcycle.config import Window, month_range
from modelcycle.errors import ModelcycleError
from modelcycle.gate import Decision, Outcome, Policy, decide
from modelcycle.lifecycle import journal, stages
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


@task(name="evaluate-champion", **TASK)
def evaluate_champion_task(svc: Services, holdout: pd.DataFrame) -> ChampionEval | None:
    current = svc.registry.get_alias(svc.name, CHAMPION)
    if current is None:
        return None
    started = time.perf_counter()
    model = svc.registry.load_model(current.source)
    loaded = time.perf_counter() - started
    return ChampionEval(current, stages.evaluate(svc.ws, model, holdout), loaded)


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
                data_problem: str | None) -> Decision:
    return decide(champion, challenger, policy, data_problem=data_problem)


def _next_tag(svc: Services, window: Window) -> str:
    base = f"modelcycle/{svc.name}/{window.label}".replace("..", "_")
    existing = set(svc.versioning.tags(base))
    if base not in existing:
        return base
    n = 2
    while f"{base}.{n}" in existing:
        n += 1
    return f"{base}.{n}"


@dataclass
class _Act:
    """What the act block's rollback hooks need. Prefect deep-copies values stored on a
    transaction, so the transaction carries only this record's key."""

    svc: Services
    state0: VersionState
    aliases0: dict[str, str | None]
    registered: ModelVersion | None = None


_ACTS: dict[str, _Act] = {}


def _act(txn: Transaction) -> _Act:
    return _ACTS[txn.get("act")]


@task(name="version-data-and-model", **TASK)
def version_task(act_id: str, window: Window, decision: Decision) -> Snapshot:
    svc = _ACTS[act_id].svc
    message = (f"modelcycle: {svc.name} {window.label}: {decision.outcome.value}\n\n"
               + "\n".join(f"- {r}" for r in decision.reasons))
    return svc.versioning.commit(stages.STAGES, message, tag=_next_tag(svc, window))


@version_task.on_rollback
def _undo_version(txn: Transaction) -> None:
    act = _act(txn)
    act.svc.versioning.restore(act.state0)


@task(name="log-model", **TASK)
def log_model_task(svc: Services, run_id: str) -> str:
    """Upload the saved challenger to the cycle's MLflow run (a logged model, not yet registered)."""
    return svc.registry.log_model_dir(run_id, str(svc.ws.path(stages.MODEL)))


@task(name="register-challenger", **TASK)
def register_task(act_id: str, run_id: str, model_uri: str, snapshot: Snapshot,
                  tags: dict[str, str]) -> ModelVersion:
    act = _ACTS[act_id]
    svc = act.svc
    version = svc.registry.register(svc.name, model_uri, run_id, tags={
        **tags, "git_commit": snapshot.commit, "git_tag": snapshot.tag or "",
        "dvc_data_hash": snapshot.hashes.get(stages.CLEAN, ""),
        "dvc_model_hash": snapshot.hashes.get(stages.MODEL, "")})
    act.registered = version
    journal.update(svc.ws, registered=version.version)
    return version


@register_task.on_rollback
def _undo_register(txn: Transaction) -> None:
    act = _act(txn)
    if act.registered is not None:
        act.svc.registry.delete_version(act.svc.name, act.registered.version)


@task(name="move-aliases", **TASK)
def move_aliases_task(act_id: str, version: ModelVersion, decision: Decision) -> str | None:
    act = _ACTS[act_id]
    svc = act.svc
    try:
        svc.registry.set_alias(svc.name, CHALLENGER, version.version)
        if decision.outcome is Outcome.PROMOTE:
            svc.registry.set_alias(svc.name, CHAMPION, version.version)
    except BaseException:
        # a failed task's own rollback hook does not run: undo a half-done move here
        journal.restore_aliases(svc.registry, svc.name, act.aliases0)
        raise
    journal.update(svc.ws, committed=True)
    if decision.outcome is Outcome.PROMOTE:
        return version.version
    current = svc.registry.get_alias(svc.name, CHAMPION)
    return current.version if current else None


@move_aliases_task.on_rollback
def _undo_aliases(txn: Transaction) -> None:
    act = _act(txn)
    journal.restore_aliases(act.svc.registry, act.svc.name, act.aliases0)


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


def run_cycle(svc: Services, window: Window) -> CycleResult:
    """One cycle for ``window``. Raises ModelcycleError after rolling back what it changed."""
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
    repaired = journal.recover(svc.ws, reg, svc.versioning)
    if repaired:
        log.warning(repaired)
    state0: VersionState = svc.versioning.state()
    aliases0 = {a: (mv.version if (mv := reg.get_alias(name, a)) else None) for a in (CHAMPION, CHALLENGER)}
    result.champion_version = aliases0[CHAMPION]
    run_id = reg.start_run(experiment=name, run_name=f"cycle {window.label}", tags={
        "modelcycle.window": window.label, "modelcycle.flow_run_id": result.flow_run_id or "",
        "modelcycle.champion_before": aliases0[CHAMPION] or ""})
    result.mlflow_run_id = run_id
    journal.begin(svc.ws, window=window.label, state=state0, aliases=aliases0, run_id=run_id)
    t = lap("setup", t_start)
    logged_future = None
    try:
        with reg.system_metrics(run_id), stages.background_writes() as writes:
            svc.ws = stages.set_window(svc.ws, window)
            reg.log_params(run_id, _flat_params(svc, window))
            svc.say(window.label, "fetching rows")
            raw = fetch_task(svc, window, query)
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
            champion_future = evaluate_champion_task.submit(svc, split.holdout)
            floor_future = noise_floor_task.submit(svc, split.holdout) if svc.ws.config.simulation else None
            trained: Trained = trained_future.result()
            # the upload overlaps the evaluation and the decision; registering it is part of the act
            logged_future = log_model_task.submit(svc, run_id)
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
            decision = decide_task(champion.scores if champion else None, challenger, _policy(svc), problem)
            result.outcome, result.reasons = decision.outcome.value, list(decision.reasons)
            stages.write_json(svc.ws, stages.METRICS, {
                "window": window.label, "metric": challenger.metric,
                "challenger": challenger.to_dict(),
                "champion": champion.scores.to_dict() if champion else None,
                "champion_version": aliases0[CHAMPION], "noise_floor": result.noise_floor,
                "decision": decision.to_dict(), "validation": report.to_dict()})
            t = lap("decide", t)

            writes.wait()  # every stage output on disk before DVC records it
            model_uri: str = logged_future.result()
            t = lap("outputs_ready", t)  # what the background writes and the upload still needed
            svc.say(window.label, f"{decision.outcome.value}: versioning, registering, moving aliases")
            lineage = {"window": window.label, "flow_run_id": result.flow_run_id or "",
                       "mlflow_run_id": run_id, "decision": decision.outcome.value,
                       f"holdout_{challenger.metric}": f"{challenger.value:.6g}"}
            act_id = uuid.uuid4().hex
            _ACTS[act_id] = _Act(svc, state0, aliases0)
            try:
                with transaction() as txn:
                    txn.set("act", act_id)
                    snapshot = version_task(act_id, window, decision)
                    version = register_task(act_id, run_id, model_uri, snapshot, lineage)
                    serving = move_aliases_task(act_id, version, decision)
            finally:
                _ACTS.pop(act_id, None)
            result.git_commit, result.git_tag = snapshot.commit, snapshot.tag
            result.data_hash = snapshot.hashes.get(stages.CLEAN)
            result.challenger_version, result.serving_version = version.version, serving
            t = lap("act", t)
        journal.end(svc.ws)
    except BaseException as exc:
        result.error = str(exc) if isinstance(exc, ModelcycleError) else f"{type(exc).__name__}: {exc}"
        decided = f"the decision was to {result.outcome}; " if result.outcome != "failed" else ""
        result.outcome = "failed"
        result.reasons = [f"{decided}the cycle failed and everything it changed was rolled back: {result.error}"]
        if logged_future is not None:
            logged_future.wait()  # the upload ends before its run is marked failed
        _roll_back(svc, state0, aliases0, run_id, exc)
        _announce(svc, result)
        raise

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
    reg.log_metrics(run_id, metrics)
    reg.log_dict(run_id, report.to_dict(), "validation.json")
    reg.set_tags(run_id, {
        "modelcycle.decision": decision.outcome.value,
        "modelcycle.reasons": " | ".join(decision.reasons)[:4900],
        "modelcycle.git_commit": snapshot.commit, "modelcycle.git_tag": snapshot.tag or "",
        "modelcycle.dvc_data_hash": result.data_hash or "",
        "modelcycle.challenger_version": version.version,
        "modelcycle.champion_after": serving or ""})
    reg.end_run(run_id, "FINISHED")
    result.notify_problems = _announce(svc, result)
    timings["total"] = time.perf_counter() - t_start
    result.timings = timings
    return result


def _roll_back(svc: Services, state0: VersionState, aliases0: dict[str, str | None], run_id: str,
               exc: BaseException) -> None:
    """Put back whatever the failed cycle changed (the act block's own hooks ran already)."""
    try:
        svc.versioning.restore(state0)
        journal.restore_aliases(svc.registry, svc.name, aliases0)
        journal.end(svc.ws)
    except Exception:
        log.exception("rolling back the failed cycle did not finish; `modelcycle doctor` will retry")
    try:
        svc.registry.set_tags(run_id, {"modelcycle.error": str(exc)[:4900],
                                       "modelcycle.error_type": type(exc).__name__})
        if not isinstance(exc, ModelcycleError):
            svc.registry.log_dict(run_id, {"traceback": traceback.format_exc()}, "error.json")
        svc.registry.end_run(run_id, "FAILED")
    except Exception:
        log.debug("could not mark run %s failed", run_id, exc_info=True)


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
    return run_cycle(open_services(workspace), Window.parse(window))


@flow(name="modelcycle-backtest", flow_run_name="{first}..{last}", validate_parameters=False)
def backtest_flow(workspace: str, first: str, last: str, approve_escalations: bool = False) -> list[CycleResult]:
    """Replay the cycle month by month; a failed month is recorded and the replay goes on.

    With ``approve_escalations``, an escalated challenger is approved before the next month, as a
    human who reviewed it would (a replay otherwise keeps the champion, as a timeout does)."""
    results: list[CycleResult] = []
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
            results.append(CycleResult(window=w.label, outcome="failed", reasons=[str(exc)],
                                       metric="", error=str(exc)))
    return results


# entry points used by the CLI ------------------------------------------------------------------


def _quiet_heartbeats() -> Any:
    """Flow-run heartbeats detect crashed runs on a long-lived server; a cycle on the embedded
    server does not need them, and they cost up to a second per flow run."""
    from modelcycle.lifecycle import runtime

    if runtime.team_server():
        from contextlib import nullcontext

        return nullcontext()
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def run(workspace: Path, window: str) -> CycleResult:
    with _quiet_heartbeats():
        started = time.perf_counter()
        result = cycle_flow(str(workspace), window)
        result.timings["wall"] = time.perf_counter() - started
        return result


def backtest(workspace: Path, first: str, last: str, *, approve_escalations: bool = False) -> list[CycleResult]:
    with _quiet_heartbeats():
        return backtest_flow(str(workspace), first, last, approve_escalations)
