"""The cycle and the backtest as Prefect flows, and the entry points the command line calls.

``cycle_flow(workspace, window=None)`` takes only plain parameters, so it can be deployed: with
no window it runs the next one (the month after the last cycle's, past windows rolled back
since). It holds the workspace's lock (re-entrant: the command line usually holds it already)
and runs :func:`~modelcycle.lifecycle.cycle.run_cycle`. Run by a deployment, it runs
:func:`~modelcycle.lifecycle.automation.run_deployed` instead: the next *complete* window,
nothing for a window already processed, a human asked about an escalation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from modelcycle.config import Window, month_range
from modelcycle.lifecycle import effects, heartbeat, interrupts, lock, rolledback
from modelcycle.lifecycle.cycle import run_cycle
from modelcycle.lifecycle.result import CycleResult
from modelcycle.lifecycle.services import Services, open_services
from modelcycle.notify import CycleOutcome

__all__ = ["CycleResult", "backtest", "backtest_flow", "cycle_flow", "run"]


def _cycle_run_name() -> str:
    """A cycle's flow run is named after its window; a deployed run without one is named after
    the window it finds (see automation.name_run), "next" until then."""
    from prefect.runtime import flow_run

    window = flow_run.parameters.get("window")
    return str(window) if window else "next"


@flow(name="modelcycle-cycle", flow_run_name=_cycle_run_name, validate_parameters=False)
def cycle_flow(workspace: str, window: str | None = None) -> CycleResult:
    """Fetch, validate, prepare, evaluate the champion while training a challenger, decide, act,
    notify. Without a window: the next one."""
    from modelcycle.lifecycle import automation

    svc = open_services(workspace)
    with heartbeat.beating("modelcycle-cycle"), \
            lock.hold(svc.ws.root, f"modelcycle cycle {window or 'next'}", on_wait=_waiting(svc, window)), \
            _model_slot(svc, window):
        if automation.deployment_id() is not None:
            return automation.run_deployed(svc, window)
        if window is None:
            svc.ws = svc.ws.reload_params()  # read under the lock: another cycle may have moved it
        return run_cycle(svc, Window.parse(window) if window else rolledback.next_window(svc.ws))


def _label(window: str | None) -> str:
    """The window a cycle's progress lines name: the run's name when it was given none."""
    from modelcycle.lifecycle import runtime

    run = runtime.current_flow_run()
    return str(window or (run.name if run is not None else None) or "next")


def _say(svc: Services, label: str, text: str) -> None:
    """A progress line in the run's Prefect log (what the UI shows of a deployed run) and on the
    command's screen."""
    from modelcycle.lifecycle import automation

    automation.prefect_progress(label, text)
    svc.say(label, text)


def _waiting(svc: Services, window: str | None) -> Callable[[lock.Holder], None]:
    """What a cycle says when another command holds the workspace: a deployed run would
    otherwise wait with nothing in its log. (A command typed in a terminal took the lock, and
    said so, before its flow started.)"""
    def said(holder: lock.Holder) -> None:
        _say(svc, _label(window), f"waiting for the workspace: {holder.describe()}")
    return said


def _model_slot(svc: Services, window: str | None) -> contextlib.AbstractContextManager[Any]:
    """The model's slot on a long-lived Prefect server: one cycle of a model at a time, whichever
    machine runs it (:mod:`~modelcycle.lifecycle.modellock`); nothing on a command's own server,
    where the workspace's file lock is enough. A run says where it runs, in its Prefect log."""
    from modelcycle.lifecycle import automation, modellock, runtime

    if not runtime.long_lived_server():
        return contextlib.nullcontext()
    run = runtime.current_flow_run()
    label = _label(window)
    worker = modellock.worker()
    automation.prefect_progress(label, f"the cycle of {svc.name} runs on {modellock.machine()}"
                                + (f" (worker {worker})" if worker else ""))
    return modellock.hold(svc.name, label, say=lambda text: _say(svc, label, text),
                          flow_run_id=str(run.id) if run is not None else None)


@flow(name="modelcycle-backtest", flow_run_name="{first}..{last}", validate_parameters=False)
def backtest_flow(workspace: str, first: str, last: str, approve_escalations: bool = False) -> list[CycleResult]:
    """Replay the cycle month by month; a failed month is recorded and the replay goes on.

    With ``approve_escalations``, an escalated challenger is approved before the next month, as a
    human who reviewed it would (a replay otherwise keeps the champion, as a timeout does)."""
    results: list[CycleResult] = []
    with heartbeat.beating("modelcycle-backtest"), lock.hold(Path(workspace), f"modelcycle backtest {first}..{last}"):
        for w in month_range(first, last):
            started = time.perf_counter()
            state = cycle_flow(workspace, w.label, return_state=True)
            if state.is_completed():
                result: CycleResult = state.result()
                result.timings["wall"] = time.perf_counter() - started
                results.append(result)
                if approve_escalations and result.outcome == CycleOutcome.ESCALATE and result.challenger_version:
                    from modelcycle.lifecycle import actions

                    done = actions.promote(open_services(workspace), result.challenger_version,
                                           reason=f"escalation of {w.label} approved in the backtest", by="backtest")
                    result.serving_version, result.approved = done.version, True
                    result.reasons.append(f"approved afterwards: v{done.version} serves from the next month")
            else:
                exc = state.result(raise_on_failure=False)
                if isinstance(exc, BaseException) and interrupts.is_interrupt(exc):
                    raise exc
                results.append(CycleResult(window=w.label, outcome=CycleOutcome.FAILED, reasons=[str(exc)],
                                           metric="", error=str(exc)))
    return results


def _run_settings() -> Any:
    """Flow-run heartbeats detect crashed runs on a long-lived server. Prefect's engine sends them
    from a thread joined at the end of every flow run, which costs up to a second a flow run
    (see :mod:`modelcycle.lifecycle.heartbeat`): its heartbeats are off here, and on a team's
    server modelcycle sends the same events at the same frequency from a thread that stops at
    once. The embedded server needs none (it ends with the command; recovery closes a dead
    process's runs). Every flow run carries this process's tag, by which recovery tells a dead
    process's runs from live ones."""
    from prefect import tags
    from prefect.settings import get_current_settings

    from modelcycle.lifecycle import runtime

    stack = contextlib.ExitStack()
    if runtime.team_server():
        frequency = get_current_settings().flows.heartbeat_frequency
        token = heartbeat.INTERVAL.set(float(frequency) if frequency else None)
        stack.callback(heartbeat.INTERVAL.reset, token)
    stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
    stack.enter_context(tags(f"{effects.FLOW_PROCESS_TAG}:{effects.process_id()}"))
    return stack


def run(workspace: Path, window: str | None = None) -> CycleResult:
    with _run_settings():
        started = time.perf_counter()
        result = cycle_flow(str(workspace), window)
        result.timings["wall"] = time.perf_counter() - started
        return result


def backtest(workspace: Path, first: str, last: str, *, approve_escalations: bool = False) -> list[CycleResult]:
    with _run_settings():
        return backtest_flow(str(workspace), first, last, approve_escalations)
