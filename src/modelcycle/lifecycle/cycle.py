"""One cycle, in named phases:

    begin -> gather (fetch, validate, split) -> compare (train the challenger while the champion
    is scored on the same held-out rows) -> judge (the gate, then the after-decide hooks) ->
    act (version, register, move the aliases: one transaction) -> record (the run's metrics
    and tags, the notification, then the after-act hooks)

Each phase is a function of the :class:`Cycle` (what the cycle carries from one phase to the
next) and of what the phase before produced; one :class:`Timer` takes the timings. A failure
or an interrupt in any phase before the commit point rolls back every side effect the journal
recorded (:func:`fail`); after it, the cycle's changes stand.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from modelcycle import tracepoints
from modelcycle.config import Window
from modelcycle.errors import ModelcycleError
from modelcycle.gate import Choice, Decision, Policy
from modelcycle.gate.choose import corrected
from modelcycle.gate.confusion import CONFUSION_FILE
from modelcycle.lifecycle import act as acting
from modelcycle.lifecycle import (
    announcement,
    checks,
    datasets,
    driftcheck,
    effects,
    fanout,
    interrupts,
    lock,
    modellock,
    runners,
    runtime,
    services,
    stages,
    tasks,
    unpushed,
)
from modelcycle.lifecycle.effects import CYCLE_TAG, PROCESS_TAG
from modelcycle.lifecycle.journal import Journal
from modelcycle.lifecycle.services import Services
from modelcycle.lifecycle.result import CycleResult, Timer
from modelcycle.lifecycle.tasks import ChampionEval
from modelcycle.notify import CycleOutcome
from modelcycle.registry import hosts
from modelcycle.registry.base import CHAMPION, ModelVersion
from modelcycle.sources import tracked_paths
from modelcycle.steps.evaluate import Scores
from modelcycle.steps.train import Trained
from modelcycle.steps.validate import ValidationReport
from modelcycle.versioning.base import VersionState

log = logging.getLogger(__name__)


@dataclass
class Cycle:
    """What a cycle carries from one phase to the next."""

    svc: Services
    window: Window
    result: CycleResult
    journal: Journal
    state0: VersionState
    champion: ModelVersion | None             # the champion when the cycle started
    champion_problem: str | None              # why it cannot be compared with (gone, alias removed)
    timer: Timer
    run_id: str | None = None
    writes: stages.BackgroundWrites | None = None
    futures: list[Any] = field(default_factory=list)  # background work to await before a rollback
    swept: Callable[[], str | None] = lambda: None  # waits for the sweep of dead processes' runs

    @property
    def label(self) -> str:
        return self.window.label

    def say(self, text: str) -> None:
        self.svc.say(self.label, text)


@dataclass
class Gathered:
    #: the window's rows as fetched (what drift compares), not the history's: the full fetch is
    #: let go once validated (None when no drift will be measured)
    window_raw: pd.DataFrame | None
    clean: pd.DataFrame
    report: ValidationReport
    split: Any


@dataclass
class Compared:
    trained: Trained
    champion: ChampionEval | None
    challenger: Scores
    model_uri: str
    drift: driftcheck.CycleDrift | None = None
    choice: Choice | None = None  # params.yaml candidates: the gate's choice among them


# phases -----------------------------------------------------------------------------------


def _flow_run_id() -> str | None:
    run = runtime.current_flow_run()
    return str(run.id) if run is not None else None


def begin(svc: Services, window: Window) -> Cycle:
    """Repair what a dead cycle left, check the workspace, capture its state, start the journal.
    Nothing has changed when this returns or raises."""
    timer = Timer()
    result = CycleResult(window=window.label, outcome=CycleOutcome.FAILED, reasons=[], metric=svc.ws.config.metric,
                         flow_run_id=_flow_run_id())
    result.repaired = effects.recover(svc, sweep=False)
    if result.repaired:
        log.warning("repaired before the cycle: %s", result.repaired)
    services.refuse_literal_secrets(svc.ws)  # again: the file may have changed since it was opened
    state0 = svc.versioning.state(tracked=tracked_paths(svc.source, svc.ws.root))
    checks.check_branch(svc, state0)
    result.outside_moves = checks.detect_outside_moves(svc)
    champion = svc.registry.get_alias(svc.name, CHAMPION)
    result.champion_version = champion.version if champion else None
    holder = lock.read_holder(svc.ws.root)
    journal = Journal.begin(svc.ws, window=window.label, state=state0, effects=["workspace"],
                            command=holder.command if holder else f"cycle {window.label}",
                            flow_run_id=result.flow_run_id)
    timer.lap("setup")
    return Cycle(svc, window, result, journal, state0, champion, checks.champion_problem(svc, champion), timer,
                 swept=effects.sweep_beside(svc))


def open_run(cycle: Cycle) -> str:
    """The cycle's MLflow run, tagged with the cycle, this process (recovery finds it by them) and
    where it runs: the machine, and the worker that started it, if one did."""
    svc, label = cycle.svc, cycle.label
    cycle.run_id = svc.registry.start_run(experiment=svc.name, run_name=f"cycle {label}", tags={
        "modelcycle.window": label, "modelcycle.flow_run_id": cycle.result.flow_run_id or "",
        "modelcycle.champion_before": cycle.result.champion_version or "", CYCLE_TAG: cycle.journal.cycle,
        PROCESS_TAG: effects.process_id(), **hosts.tags(modellock.machine(), modellock.worker())})
    cycle.journal.set(run_id=cycle.run_id)
    cycle.result.mlflow_run_id = cycle.run_id
    svc.registry.log_params(cycle.run_id, checks.flat_params(svc, cycle.window))
    return cycle.run_id


def gather(cycle: Cycle, rows: Callable[[], pd.DataFrame]) -> Gathered:
    """Fetch the window and its history, validate them, split them by time."""
    svc, w, timer = cycle.svc, cycle.window, cycle.timer
    svc.ws = stages.set_window(svc.ws, w)
    cycle.say("fetching rows")
    raw = tasks.fetch_task(svc, w, rows, cycle.writes)
    tracepoints.reach("cycle:fetched")
    timer.lap("fetch")
    cycle.say(f"validating {len(raw)} rows")
    clean, report = tasks.validate_task(svc, raw, w, cycle.writes)
    cycle.result.dropped = dict(report.dropped)
    timer.lap("validate")
    split = tasks.prepare_task(svc, clean, w, cycle.writes)
    cycle.result.rows = {"raw": len(raw), "clean": len(clean), "train": len(split.train),
                         "history": split.history_rows, "fresh_train": split.fresh_train_rows,
                         "holdout": len(split.holdout), "window_in": report.window_rows_in,
                         "window_valid": report.window_rows_out}
    measures_drift = cycle.champion is not None and svc.ws.config.drift.enabled
    window_raw = driftcheck.window_rows(svc.ws, raw, w) if measures_drift else None
    timer.lap("prepare")
    return Gathered(window_raw, clean, report, split)


def compare(cycle: Cycle, got: Gathered) -> Compared:
    """Train the challenger while the champion is scored on the held-out rows and the window's
    drift from the champion's training rows is measured (:mod:`driftcheck`; it never fails the
    cycle), then score the challenger on the same rows; upload the challenger meanwhile."""
    svc, timer, result = cycle.svc, cycle.timer, cycle.result
    split = got.split
    many = svc.ws.params.candidates
    what = (f"{len(many)} candidates ({svc.ws.config.orchestration.task_runner})" if many else "the challenger")
    cycle.say(f"training {what} on {len(split.train)} rows, "
              f"scoring the champion on {len(split.holdout)} held-out rows")
    assert cycle.writes is not None
    cycle.writes.release()  # the gathered rows' files and digests, on the core the fit leaves idle
    stages.warm_up(svc.ws)  # before the threads below import the model's library (a deployed run's first import)
    trained_f = None if many else tasks.train_challenger_task.submit(svc, split.train)
    champion_f = tasks.evaluate_champion_task.submit(svc, cycle.champion, split.holdout)
    floor_f = tasks.noise_floor_task.submit(svc, split.holdout) if svc.ws.config.reference else None
    drift_f = tasks.drift_task.submit(svc, cycle.champion, cycle.window, got.window_raw, got.clean)
    cycle.futures += [trained_f, champion_f, floor_f, drift_f]
    tracepoints.reach("cycle:training")
    assert cycle.run_id is not None
    fanned = None
    if trained_f is None:
        fanned = fanout.fan_out(svc, cycle.run_id, split, lambda: _champion_scores(champion_f.result()),
                                data_problem=data_problem(svc, got.report), champion_problem=cycle.champion_problem)
        trained = fanned.trained
    else:
        trained = trained_f.result()
    tracepoints.reach("cycle:trained")
    logged_f = tasks.log_model_task.submit(svc, cycle.run_id)  # overlaps the evaluation and the decision
    cycle.futures.append(logged_f)
    champion: ChampionEval | None = champion_f.result()
    timer.lap("train_and_champion")
    timer.add("fit", fanned.seconds if fanned else trained.fit_seconds)
    if champion is not None:
        timer.add("champion_load", champion.load_seconds)
        timer.add("champion_predict", champion.scores.predict_seconds)
        result.champion_score = champion.scores.value
    challenger = fanned.scores if fanned else tasks.evaluate_challenger_task(svc, trained, split.holdout)
    timer.add("challenger_predict", challenger.predict_seconds)
    result.challenger_score = challenger.value
    timer.lap("evaluate_challenger")
    floor = floor_f.result() if floor_f is not None else None
    if floor is not None:
        result.noise_floor = floor.noise_floor
        timer.add("noise_floor", floor.seconds)
    cycle.writes.wait()  # every stage output on disk before DVC records it
    model_uri: str = logged_f.result()
    timer.lap("outputs_ready")  # what the background writes and the upload still needed
    drift = drift_f.result()  # measured meanwhile; it never raises
    if drift is not None:
        timer.add("drift", drift.seconds)
        result.drifted, result.drift_max_psi, result.drift_error = drift.drifted, drift.max_psi, drift.error
    return Compared(trained, champion, challenger, model_uri, drift, fanned.choice if fanned else None)


def _champion_scores(champion: ChampionEval | None) -> Scores | None:
    return champion.scores if champion else None


def _policy(svc: Services, cmp: Compared) -> Policy:
    """The gate's settings, corrected for the number of candidates when there are several."""
    policy = acting.policy_of(svc)
    return corrected(policy, len(cmp.choice.candidates)) if cmp.choice else policy


def data_problem(svc: Services, report: ValidationReport) -> str | None:
    """Why the window's data is suspect (too many rows dropped, an empty class, a class imbalance), or None."""
    return report.suspect(svc.ws.config.data.max_invalid_fraction)


def judge(cycle: Cycle, got: Gathered, cmp: Compared) -> Decision:
    """The gate's decision, then the after-decide hooks (an approval may change it)."""
    svc = cycle.svc
    decision = cmp.choice.decision if cmp.choice else tasks.decide_task(
        cmp.champion.scores if cmp.champion else None, cmp.challenger, acting.policy_of(svc),
        data_problem(svc, got.report), cycle.champion_problem)
    cycle.result.decided(decision)
    tracepoints.reach("cycle:decided")
    for hook in svc.hooks.after_decide:
        decision = hook(svc, cycle.result, decision)
        cycle.result.decided(decision)
    cycle.timer.lap("decide")
    return decision


def act(cycle: Cycle, got: Gathered, cmp: Compared, decision: Decision) -> acting.Acted:
    """Check the decision against the champion now, write the metrics, then the transaction."""
    svc, result, label = cycle.svc, cycle.result, cycle.label
    edits = checks.user_edits(cycle.state0)
    with acting.slot(svc):
        decision, champion = acting.recheck_champion(svc, decision, cmp.champion, cmp.challenger,
                                                     got.split.holdout, _policy(svc, cmp),
                                                     data_problem(svc, got.report))
        if got.report.dropped:  # duplicates and broken cells never reach the holdout: say so
            decision = replace(decision, reasons=[*decision.reasons, f"validation: {got.report.summary()}"])
        drifted = cmp.drift.reason() if cmp.drift else None
        if drifted:  # information beside the decision, which it does not change
            decision = replace(decision, reasons=[*decision.reasons, drifted])
        result.decided(decision)
        result.champion_score = champion.scores.value if champion else result.champion_score
        assert cycle.run_id is not None
        if acting.rejects(svc, decision):
            return _reject(cycle, decision, champion)
        stages.write_json(svc.ws, stages.METRICS, {
            **stages.flat_metrics(cmp.challenger, champion.scores if champion else None),  # dvc exp show's columns
            "window": label, "metric": cmp.challenger.metric, "challenger": cmp.challenger.to_dict(),
            "champion": champion.scores.to_dict() if champion else None,
            "champion_version": champion.version.version if champion else None,
            "noise_floor": result.noise_floor, "decision": decision.to_dict(), "validation": got.report.to_dict(),
            "drift": cmp.drift.summary() if cmp.drift else None})
        stages.write_predictions(svc.ws, cmp.challenger, champion.scores if champion else None)
        cycle.say(f"{decision.outcome.value}: versioning, registering, moving aliases")
        message = (f"modelcycle: {svc.name} {label}: {decision.outcome.value}\n\n"
                   + "\n".join(f"- {r}" for r in decision.reasons)
                   + (f"\n\nThis cycle ran with uncommitted changes to {', '.join(edits)}; "
                      "they are committed here, as the cycle used them." if edits else ""))
        snapshot, version, serving = acting.commit(
            svc, cycle.journal, label=label, decision=decision, model_uri=cmp.model_uri, run_id=cycle.run_id,
            message=message, holdout=got.split.holdout, lineage={
                "window": label, "flow_run_id": result.flow_run_id or "", "mlflow_run_id": cycle.run_id,
                "decision": decision.outcome.value,
                **({"candidate": cmp.choice.name} if cmp.choice else {}),
                f"holdout_{cmp.challenger.metric}": f"{cmp.challenger.value:.6g}"})
    tracepoints.reach("cycle:committed")
    result.git_commit, result.git_tag = snapshot.commit, snapshot.tag
    result.data_hash = snapshot.hashes.get(datasets.layout(svc.ws).lineage)
    result.challenger_version, result.serving_version = version.version, serving
    result.unpushed = unpushed.warning(svc.ws, svc.versioning)
    cycle.timer.lap("act")
    if edits:
        log.warning("the cycle committed your uncommitted changes to %s with it (commit %s)",
                    ", ".join(edits), snapshot.commit[:10])
    return acting.Acted(decision, champion, snapshot, version, serving)


def _reject(cycle: Cycle, decision: Decision, champion: ChampionEval | None) -> acting.Acted:
    """``act.keep_rejected: false`` and the champion is kept: roll the challenger back (see
    :func:`acting.reject`); the outcome the user sees is ``rolled_back``."""
    svc, result = cycle.svc, cycle.result
    assert cycle.run_id is not None
    cycle.say(f"{decision.outcome.value}: rolling the challenger back (act.keep_rejected is false)")
    put_back = acting.reject(svc, cycle.journal, label=cycle.label, run_id=cycle.run_id, reasons=decision.reasons)
    tracepoints.reach("cycle:committed")
    serving = tasks.alias_of(svc, CHAMPION)
    result.outcome, result.serving_version, result.rolled_back = CycleOutcome.ROLLED_BACK, serving, put_back
    result.reasons.append(f"rolled back (act.keep_rejected is false): no git commit or tag, no DVC change, no "
                          f"model version; the challenger stays in MLflow run {cycle.run_id} only")
    cycle.timer.lap("act")
    return acting.Acted(decision, champion, None, None, serving, rolled_back=put_back)


def record(cycle: Cycle, got: Gathered, cmp: Compared, acted: acting.Acted) -> None:
    """After the commit point: the run's metrics and tags, its end, the notification, then the
    after-act hooks. A failure here leaves the journal (committed) for the next run or
    ``doctor`` to close, and never undoes the cycle."""
    svc, result, run_id = cycle.svc, cycle.result, cycle.run_id
    assert run_id is not None
    reg, champion, challenger = svc.registry, acted.champion, cmp.challenger
    metrics: dict[str, float] = {f"challenger_{result.metric}": challenger.value,
                                 **{f"rows_{k}": float(v) for k, v in result.rows.items()},
                                 "window_invalid_fraction": got.report.window_invalid_fraction,
                                 **{f"seconds_{k}": v for k, v in cycle.timer.laps.items()}}
    if champion is not None:
        metrics[f"champion_{result.metric}"] = champion.scores.value
    if cmp.trained.best_epoch is not None:  # a trainer that learns in epochs: the epoch whose weights it kept
        metrics["best_epoch"] = float(cmp.trained.best_epoch)
    details = acted.decision.details
    if details.get("negative_flips") is not None:  # classifiers: rows that flipped between the two
        metrics["negative_flips"] = float(details["negative_flips"])
        metrics["positive_flips"] = float(details["positive_flips"])
    if result.noise_floor:
        metrics["noise_floor"] = result.noise_floor
        metrics[f"challenger_{result.metric}_over_floor"] = challenger.value / result.noise_floor
        if champion is not None:
            metrics[f"champion_{result.metric}_over_floor"] = champion.scores.value / result.noise_floor
    try:
        reg.log_metrics(run_id, metrics)
        if cmp.trained.history:  # the learning curve: each metric over the epochs, in one batch
            reg.log_metric_steps(run_id, cmp.trained.history)
        reg.log_dict(run_id, got.report.to_dict(), "validation.json")
        if details.get("confusion"):
            reg.log_dict(run_id, details["confusion"], CONFUSION_FILE)
        driftcheck.record(reg, run_id, svc.ws, cmp.drift)
        reg.set_tags(run_id, {
            "modelcycle.decision": acted.decision.outcome.value, "modelcycle.outcome": str(result.outcome),
            **({"modelcycle.rolled_back": result.rolled_back or ""} if acted.rejected else {}),
            "modelcycle.reasons": " | ".join(result.reasons)[:4900],
            "modelcycle.git_commit": result.git_commit or "", "modelcycle.git_tag": result.git_tag or "",
            "modelcycle.dvc_data_hash": result.data_hash or "",
            "modelcycle.challenger_version": result.challenger_version or "",
            "modelcycle.champion_after": result.serving_version or ""})
        tracepoints.reach("cycle:tracked")
        reg.end_run(run_id, "FINISHED")
        cycle.journal.end()
    except ModelcycleError as exc:
        log.warning("the cycle for %s committed, but its MLflow bookkeeping did not finish (%s); the "
                    "next run or `modelcycle doctor` closes it", cycle.label, exc.message)
    result.notify_problems = announce(svc, result)
    tracepoints.reach("cycle:notified")
    for hook in svc.hooks.after_act:
        try:
            hook(svc, result)
        except Exception as exc:  # noqa: BLE001 - the cycle committed: a hook never undoes it
            log.warning("an after-act hook failed for %s: %s", cycle.label, exc)


def _finished(future: Any) -> bool:
    inner = getattr(future, "wrapped_future", future)
    return bool(inner.done()) if hasattr(inner, "done") else True


def _await(cycle: Cycle) -> None:
    """After a failure or an interrupt: wait for the training, the champion's scoring and the
    background writes, so nothing writes into the workspace after the rollback. A second
    signal while waiting gives up: the process exits and leaves the repair to the journal."""

    def second(signum: int, _held: interrupts.Held) -> None:
        import os

        from modelcycle.console import err_console

        err_console.print("[error]stopped without rolling back[/error]: the next run or "
                          "`modelcycle doctor` repairs the workspace")
        os._exit(interrupts.EXIT_CODES.get(signal.Signals(signum), 130))

    with interrupts.deferred(second):
        for f in (f for f in cycle.futures if f is not None):
            with contextlib.suppress(BaseException):
                f.wait()
        if cycle.writes is not None:
            with contextlib.suppress(BaseException):
                cycle.writes.close()


def fail(cycle: Cycle, exc: BaseException) -> None:
    """Roll back a cycle that failed or was interrupted, close its run, announce it."""
    svc, result = cycle.svc, cycle.result
    signum = interrupts.signal_of(exc)
    if signum is not None:
        result.error = {2: "interrupted (Ctrl-C)", 15: "terminated (SIGTERM)"}.get(int(signum), f"signal {signum}")
    else:
        result.error = str(exc) if isinstance(exc, ModelcycleError) else f"{type(exc).__name__}: {exc}"
    decided = f"the decision was to {result.outcome}; " if result.outcome != CycleOutcome.FAILED else ""
    result.outcome = CycleOutcome.FAILED
    if signum is not None and any(f is not None and not _finished(f) for f in cycle.futures):
        cycle.say("stopping: waiting for the training to finish before rolling back "
                  "(press Ctrl-C again to quit now and leave the repair to `modelcycle doctor`)")
    _await(cycle)
    tracepoints.reach("cycle:rolling-back")
    with interrupts.deferred():
        try:
            rolled = effects.roll_back(svc, cycle.journal)
            result.rolled_back = rolled.describe()
            effects.close_run(svc.registry, cycle.run_id, "KILLED" if signum is not None else "FAILED", {
                "modelcycle.error": result.error[:4900], "modelcycle.error_type": type(exc).__name__,
                "modelcycle.rolled_back": result.rolled_back})
            if cycle.run_id and not isinstance(exc, ModelcycleError) and signum is None:
                with contextlib.suppress(ModelcycleError):
                    svc.registry.log_dict(cycle.run_id, {"traceback": traceback.format_exc()}, "error.json")
            cycle.journal.end()
        except ModelcycleError as rb:
            log.error("the rollback of the cycle for %s did not finish: %s", cycle.label, rb.message)
            result.rolled_back = None
    if result.rolled_back is not None:
        what = f"everything it changed was rolled back ({result.rolled_back})"
    else:
        what = "its rollback did not finish (run `modelcycle doctor`)"
    result.reasons = [f"{decided}the cycle failed and {what}: {result.error}"]
    interrupts.note_rollback(f"the cycle for {cycle.label} stopped and {what}")
    if signum is None:
        announce(svc, result)


def announce(svc: Services, result: CycleResult) -> list[str]:
    """Notify the cycle's outcome (scores, threshold, reasons, links); return the problems met."""
    try:
        return tasks.notify_task(svc, announcement.cycle_event(svc, result))
    except Exception as exc:  # noqa: BLE001 - a notification never undoes a decision
        log.warning("notification failed: %s", exc)
        return [str(exc)]


@contextlib.contextmanager
def _tracking(cycle: Cycle) -> Iterator[None]:
    """The run's system metrics and the stage outputs' background writes, for the phases."""
    assert cycle.run_id is not None
    with cycle.svc.registry.system_metrics(cycle.run_id), stages.BackgroundWrites(hold=True) as writes:
        cycle.writes = writes
        yield


def run_cycle(svc: Services, window: Window) -> CycleResult:
    """One cycle for ``window``. Raises after rolling back what it changed. The caller holds the
    workspace lock."""
    runners.preflight(svc.ws)  # candidates on a Dask scheduler that does not answer: stop before anything
    query = stages.Query(svc.ws, svc.source, window)  # it only reads: beside the setup
    cycle = begin(svc, window)
    try:
        tracepoints.reach("cycle:started")
        open_run(cycle)
        with _tracking(cycle):
            got = gather(cycle, query)
            cmp = compare(cycle, got)
            decision = judge(cycle, got, cmp)
            acted = act(cycle, got, cmp, decision)
    except BaseException as exc:
        if cycle.journal.committed:  # failed after the commit point: the cycle's changes stand
            log.warning("the cycle for %s committed, then failed: %s", cycle.label, exc)
            raise
        fail(cycle, exc)
        raise
    finally:
        cycle.swept()
    record(cycle, got, cmp, acted)
    cycle.timer.add("total", cycle.timer.total())
    cycle.result.timings = dict(cycle.timer.laps)
    return cycle.result
