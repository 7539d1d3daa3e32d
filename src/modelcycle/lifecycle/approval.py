"""A human decides an escalation of a deployed cycle, in the Prefect UI or on the command line.

When the gate escalates in a deployed run, :func:`ask_human` (an after-decide hook, so it runs
in the flow itself: Prefect pauses a flow run, never a task) announces that a decision is
needed, with both scores and the links, then *pauses* the flow run waiting for an
:class:`Answer`: the Prefect UI shows it as a form on the paused run, with the scores, the
interval, the threshold and the reasons in its description. ``modelcycle approve RUN`` /
``modelcycle reject RUN`` give the same answer through the same API call the UI makes.

The run pauses rather than suspends: paused, it keeps the challenger it trained, the
workspace's lock and the cycle's journal, and the answer goes straight to the act, the same
transaction as an automatic promotion. A suspended run would end its process and re-run the
flow from the start on resume, training again, while another cycle could take the workspace.
A paused run holds no worker: the process worker starts each run in a process of its own.

No answer within ``automation.approval_timeout_minutes`` keeps the champion. The answer, who
gave it and the comment go to the cycle's MLflow run (tags), its decision (the reasons, in the
decision log and the notification) and the alias history (the move's reason and who).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from modelcycle.errors import ModelcycleError, WorkspaceError
from modelcycle.gate import Decision
from modelcycle.gate.decide import Outcome
from modelcycle.lifecycle import runtime
from modelcycle.lifecycle.result import CycleResult
from modelcycle.lifecycle.services import Services
from modelcycle.notify import EventKind
from modelcycle.steps.evaluate import METRICS

log = logging.getLogger(__name__)

Choice = Literal["approve the challenger", "keep the champion"]
APPROVE: Choice = "approve the challenger"
KEEP: Choice = "keep the champion"
#: how often the paused run looks for an answer (Prefect's default is 10 s)
POLL_SECONDS = 2
#: how long `approve` / `reject` give a run that has just paused to save its form
FORM_WAIT_SECONDS = 10.0
PENDING_FILE = "pending.json"


def _answer_type() -> Any:
    from pydantic import Field
    from prefect.input import RunInput

    class Answer(RunInput):
        """A human's answer to an escalated cycle."""

        decision: Choice = Field(
            default=KEEP, description="approve the challenger (it becomes the champion) or keep the champion")
        comment: str = Field(default="", description="why (kept in the decision log and the MLflow run)")
        by: str = Field(default="", description="your name")

    return Answer


def describe(svc: Services, result: CycleResult, decision: Decision) -> str:
    """The form's description (Markdown): the scores, the interval, the threshold, the reasons."""
    g = svc.ws.config.gate
    metric = result.metric.upper()
    lines = [f"## {svc.name} {result.window}: a human decides",
             "", f"- champion (v{result.champion_version}) {metric}: **{_num(result.champion_score)}**"
             if result.champion_version else "- no champion yet",
             f"- challenger {metric}: **{_num(result.challenger_score)}**",
             f"- threshold: {metric} {'>=' if METRICS[decision.metric].greater_is_better else '<='} "
             f"{g.threshold:g}; minimum improvement {g.min_effect:.0%}"]
    low, high = decision.details.get("ci_low"), decision.details.get("ci_high")
    if isinstance(low, float) and isinstance(high, float):
        lines.append(f"- the challenger's improvement, {g.confidence:.0%} interval: {low:+.2%} .. {high:+.2%}")
    lines += ["", "**Why the gate could not decide:**", *[f"- {r}" for r in decision.reasons]]
    if result.mlflow_run_id:
        lines += ["", f"MLflow run `{result.mlflow_run_id}`"]
    lines += ["", "Approve the challenger to make it the champion (the same transaction as an automatic "
              f"promotion), or keep the champion. No answer within "
              f"{svc.ws.config.automation.approval_timeout_minutes:g} minutes keeps the champion."]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def pending_path(svc: Services) -> Path:
    return svc.ws.state_dir / PENDING_FILE


def ask_human(svc: Services, result: CycleResult, decision: Decision) -> Decision:
    """Pause a deployed run that escalated until a human answers (or the timeout keeps the
    champion); the decision the answer makes. Any other decision passes unchanged."""
    if decision.outcome is not Outcome.ESCALATE:
        return decision
    run = runtime.current_flow_run()
    if run is None:
        return decision
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    timeout = int(svc.ws.config.automation.approval_timeout_minutes * 60)
    _announce_pending(svc, result, decision, run)
    waiting = {"flow_run_id": str(run.id), "flow_run_name": result.window, "window": result.window,
               "mlflow_run_id": result.mlflow_run_id, "champion": result.champion_version,
               "champion_score": result.champion_score, "challenger_score": result.challenger_score,
               "metric": result.metric, "reasons": list(decision.reasons), "timeout_seconds": timeout}
    path = pending_path(svc)
    path.write_text(json.dumps(waiting, indent=2) + "\n", encoding="utf-8")
    svc.say(result.window, "escalated: waiting for a human (Prefect UI, or `modelcycle approve` / `reject`)")
    answer: Any = None
    try:
        answer = pause_flow_run(wait_for_input=_answer_type().with_initial_data(
            description=describe(svc, result, decision), decision=KEEP),
            timeout=timeout, poll_interval=POLL_SECONDS, key=f"approval-{result.window}")
    except FlowPauseTimeout:
        _running_again(run.id)
    finally:
        path.unlink(missing_ok=True)
    return _decided(svc, result, decision, answer, timeout)


def _running_again(flow_run_id: Any) -> None:
    """After the pause timed out the run is still Paused on the server: set it running again, so
    the cycle goes on to keep the champion and the run completes."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Running(message="no answer in time: the champion is kept"),
                                  force=True)


def _decided(svc: Services, result: CycleResult, decision: Decision, answer: Any, timeout: int) -> Decision:
    if answer is None:
        outcome, tags = Outcome.KEEP, {"modelcycle.approval": "timeout"}
        said = f"no answer within {timeout / 60:g} minutes: the champion is kept"
        who = None
    else:
        who = (answer.by or "").strip() or "someone in the Prefect UI"
        approved = answer.decision == APPROVE
        outcome = Outcome.PROMOTE if approved else Outcome.KEEP
        said = (f"{'approved' if approved else 'rejected'} by {who}"
                + (f": {answer.comment.strip()}" if answer.comment.strip() else ""))
        tags = {"modelcycle.approval": "approved" if approved else "rejected", "modelcycle.approval.by": who,
                "modelcycle.approval.comment": answer.comment.strip()[:4900]}
    if result.mlflow_run_id:
        try:
            svc.registry.set_tags(result.mlflow_run_id, tags)
        except ModelcycleError as exc:
            log.warning("could not record the answer in the MLflow run: %s", exc.message)
    result.approved = outcome is Outcome.PROMOTE
    details = {**decision.details, "approval": tags["modelcycle.approval"]}
    if who:
        details["approved_by"] = who
    return replace(decision, outcome=outcome, reasons=[*decision.reasons, f"escalated; {said}"], details=details)


def _announce_pending(svc: Services, result: CycleResult, decision: Decision, run: Any) -> None:
    from modelcycle.lifecycle.announcement import cycle_event

    result.decided(decision)
    timeout = svc.ws.config.automation.approval_timeout_minutes
    event = replace(cycle_event(svc, result), kind=EventKind.PENDING, champion=result.champion_version,
                    reasons=(*decision.reasons, f"waiting for a human's answer on flow run '{result.window}' "
                             f"(the Prefect UI's form, or `modelcycle approve` / `reject`); no answer within "
                             f"{timeout:g} minutes keeps the champion"))
    try:
        svc.notifier.send(event)
    except Exception as exc:  # noqa: BLE001 - a notification never stops the cycle
        log.warning("notification failed: %s", exc)


# the command line's side: find paused runs, answer them --------------------------------


def _client() -> Any:
    from prefect.client.orchestration import get_client

    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise WorkspaceError("deployed runs need a Prefect server, and none is configured",
                             "start the workspace's servers with `modelcycle up`, or set "
                             "backends.prefect_api_url (or PREFECT_API_URL)")
    return get_client(sync_client=True)


def paused_runs(flow_name: str = "modelcycle-cycle") -> list[Any]:
    """The flow runs of the cycle waiting for a human, oldest first."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with _client() as client:
        return list(client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.PAUSED]))),
            sort=FlowRunSort.START_TIME_ASC, limit=200))


def find_paused(run: str) -> Any:
    """The paused cycle run named ``run`` (its window, e.g. 2015-03) or with that id."""
    runs = paused_runs()
    hits = [r for r in runs if str(r.id) == run or str(r.id).startswith(run) or r.name == run]
    if len(hits) == 1:
        return hits[0]
    waiting = ", ".join(f"{r.name} ({str(r.id)[:8]})" for r in runs) or "none"
    if not hits:
        raise WorkspaceError(f"no cycle run named or numbered '{run}' waits for a human (waiting: {waiting})",
                             "`modelcycle pending` lists them; give the window (e.g. 2015-03) or the flow run id")
    raise WorkspaceError(f"'{run}' names {len(hits)} waiting runs ({waiting})", "give the flow run's id instead")


def answer(run: str, *, approve: bool, by: str, comment: str = "") -> Any:
    """Resume the paused run with an answer, as the Prefect UI's form does; returns the run.
    A run that has just paused saves its form a moment later (Prefect refuses an answer before
    that): the answer is given again for up to :data:`FORM_WAIT_SECONDS`."""
    from prefect.client.schemas.responses import SetStateStatus

    found = find_paused(run)
    deadline = time.monotonic() + FORM_WAIT_SECONDS
    with _client() as client:
        while True:
            response = client.resume_flow_run(found.id, run_input={
                "decision": APPROVE if approve else KEEP, "comment": comment, "by": by})
            early = "schema not found" in (getattr(response.details, "reason", "") or "").lower()
            if response.status != SetStateStatus.REJECT or not early or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    if response.status == SetStateStatus.REJECT:
        reason = getattr(response.details, "reason", "") or "the run can no longer be resumed"
        if early:
            raise WorkspaceError(f"Prefect refused the answer for run '{found.name}': {reason} (the run has not "
                                 f"saved its form within {FORM_WAIT_SECONDS:g} s of the answer)",
                                 "`modelcycle pending` shows whether it still waits; answer again in a moment")
        raise WorkspaceError(f"Prefect refused the answer for run '{found.name}': {reason}",
                             "its approval may have timed out (the champion was then kept); "
                             "`modelcycle status` shows the decision")
    return found
