"""What a cycle announces: its :class:`~modelcycle.notify.Event`, with both scores, the gate's
threshold, the improvement's interval, the reasons, and where to look (the MLflow run, the
registered version, the Prefect flow run: UI links when the backends are servers, ids when they
are embedded in the workspace)."""

from __future__ import annotations

from modelcycle.lifecycle import runtime
from modelcycle.lifecycle.result import CycleResult
from modelcycle.lifecycle.services import Services
from modelcycle.notify import CycleOutcome, Event
from modelcycle.notify import links


def flow_run_name() -> str | None:
    """The name of the Prefect flow run this code runs in (None outside one)."""
    run = runtime.current_flow_run()
    return str(run.name) if run is not None and run.name else None


def cycle_event(svc: Services, result: CycleResult) -> Event:
    """The event announcing ``result``."""
    ws, gate = svc.ws, svc.ws.config.gate
    compared = result.improvement is not None
    version = result.challenger_version
    return Event(
        model=svc.name, window=result.window, outcome=result.outcome,
        reasons=tuple(result.reasons or ([result.error] if result.error else [])),
        version=version, champion=result.serving_version, metric=result.metric,
        champion_score=result.champion_score, challenger_score=result.challenger_score,
        git_commit=result.git_commit,
        threshold=gate.threshold, min_effect=gate.min_effect if compared else None,
        improvement=result.improvement, ci_low=result.ci_low, ci_high=result.ci_high,
        confidence=result.confidence,
        run_id=result.mlflow_run_id, run_url=links.mlflow_run_url(ws.tracking_uri, result.mlflow_run_id),
        # a failed cycle's version was rolled back: it has no page
        version_url=(links.mlflow_version_url(ws.registry_uri, svc.name, version)
                     if result.outcome != CycleOutcome.FAILED else None),
        flow_run_id=result.flow_run_id, flow_run_name=flow_run_name() if result.flow_run_id else None,
        flow_run_url=links.prefect_flow_run_url(ws.prefect_api_url, result.flow_run_id),
        unpushed=result.unpushed)
