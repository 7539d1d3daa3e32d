"""What a notification says: both scores, the threshold, the interval, the reasons, the links."""

from __future__ import annotations

import json

import pytest

from modelcycle.notify import CycleOutcome, Event, EventKind, format_body, format_console, format_message
from modelcycle.notify import links

HTTP = dict(run_id="abc123", run_url=links.mlflow_run_url("http://mlflow:5000/", "abc123"),
            version_url=links.mlflow_version_url("http://mlflow:5000", "taxifare", "4"),
            flow_run_id="f-1", flow_run_name="clever-fox",
            flow_run_url=links.prefect_flow_run_url("http://prefect:4200/api", "f-1", env={}))
EMBEDDED = dict(run_id="abc123", flow_run_id="f-1", flow_run_name="clever-fox")
COMPARED = dict(metric="mae", champion_score=2.31, challenger_score=2.12, threshold=2.5, min_effect=0.01,
                improvement=0.082, ci_low=0.051, ci_high=0.11, confidence=0.95)


def event(outcome: CycleOutcome, **kw) -> Event:
    return Event(model="taxifare", window="2015-03", outcome=outcome, reasons=("first reason", "second reason"),
                 version="4", champion="4" if outcome == CycleOutcome.PROMOTE else "3", **kw)


@pytest.mark.parametrize("outcome", list(CycleOutcome))
def test_each_outcome_carries_scores_threshold_interval_reasons_and_links(outcome: CycleOutcome) -> None:
    text = format_message(event(outcome, **COMPARED, **HTTP))
    lines = text.splitlines()
    assert lines[0].startswith(f"[taxifare] 2015-03: {outcome.upper()}")
    assert "champion MAE 2.31 vs challenger 2.12 (threshold ≤ 2.5)" in lines
    assert "improvement +8.2% (95% interval +5.1% to +11.0%; a promotion needs at least +1.0%)" in lines
    assert "  - first reason" in lines and "  - second reason" in lines
    assert "MLflow run: http://mlflow:5000/#/runs/abc123" in lines
    assert "model version v4: http://mlflow:5000/#/models/taxifare/versions/4" in lines
    flow = "http://prefect:4200/runs/flow-run/f-1"
    assert f"Prefect flow run clever-fox: {flow}" in lines and "approve" not in text
    if outcome == CycleOutcome.ESCALATE:  # a run from the command line kept its champion
        assert "decide: `modelcycle promote --version 4` promotes the challenger" in lines
    else:
        assert "promote --version" not in text
    assert "modelcycle up" not in text  # every page has a link: no hint


def test_titles_say_what_happened() -> None:
    titles = {o: format_message(event(o)).splitlines()[0] for o in CycleOutcome}
    assert titles[CycleOutcome.PROMOTE] == "[taxifare] 2015-03: PROMOTE (v4 is the champion)"
    assert titles[CycleOutcome.KEEP] == "[taxifare] 2015-03: KEEP (champion v3 kept, challenger v4)"
    assert titles[CycleOutcome.ESCALATE] == "[taxifare] 2015-03: ESCALATE: a human decides (challenger v4)"
    assert titles[CycleOutcome.FAILED] == "[taxifare] 2015-03: FAILED (challenger v4)"
    assert titles[CycleOutcome.ROLLED_BACK] == ("[taxifare] 2015-03: ROLLED_BACK (champion v3 kept; the challenger "
                                                "left no commit, tag or model version)")


def waiting(**kw) -> Event:
    """A deployed cycle's escalation, waiting for a human's answer."""
    return Event(model="taxifare", window="2015-03", outcome=CycleOutcome.ESCALATE, kind=EventKind.PENDING,
                 reasons=("neither meets the threshold",), champion="3", **kw)


def test_a_waiting_cycle_links_its_form_and_says_how_to_answer() -> None:
    lines = format_message(waiting(**COMPARED, **HTTP)).splitlines()
    assert lines[0] == "[taxifare] 2015-03: ESCALATE: a human decides"
    assert "champion MAE 2.31 vs challenger 2.12 (threshold ≤ 2.5)" in lines
    assert "approval form (Prefect flow run clever-fox): http://prefect:4200/runs/flow-run/f-1" in lines
    assert "decide: `modelcycle approve f-1` or `modelcycle reject f-1`" in lines


def test_embedded_backends_give_the_ids_and_how_to_open_the_uis() -> None:
    text = format_message(waiting(**COMPARED, **EMBEDDED))
    assert "MLflow run id: abc123" in text
    assert "Prefect flow run: clever-fox (id f-1)" in text
    assert "`modelcycle up` starts the MLflow and Prefect UIs" in text
    assert "http" not in text and "approval form" not in text
    assert "`modelcycle approve f-1`" in text


def test_no_champion_no_interval() -> None:
    text = format_body(event(CycleOutcome.PROMOTE, metric="r2", challenger_score=0.91, threshold=0.8))
    assert text.splitlines()[0] == "challenger R² 0.91 (threshold ≥ 0.8); no champion to compare with"
    assert "improvement" not in text and "interval" not in text


def test_an_escalation_outside_a_flow_run_says_how_to_promote() -> None:
    assert "`modelcycle promote --version 4`" in format_message(event(CycleOutcome.ESCALATE))


def test_the_console_form_is_short_and_only_links_what_a_browser_opens() -> None:
    embedded = format_console(event(CycleOutcome.PROMOTE, **COMPARED, **EMBEDDED))
    assert "abc123" not in embedded and "modelcycle up" not in embedded and "interval" not in embedded
    assert "champion MAE 2.31 vs challenger 2.12" in embedded and "  - first reason" in embedded
    served = format_console(event(CycleOutcome.PROMOTE, **COMPARED, **HTTP))
    assert "http://mlflow:5000/#/runs/abc123" in served and "http://prefect:4200/runs/flow-run/f-1" in served


def test_an_old_log_line_without_the_new_fields_reads_and_formats() -> None:
    line = json.loads('{"model": "taxifare", "window": "2015-02", "outcome": "keep", "reasons": ["kept"], '
                      '"kind": "decision", "version": "3", "champion": "2", "metric": "mae", '
                      '"champion_score": 2.4, "challenger_score": 2.5, "git_commit": "abc", '
                      '"time": "2026-01-01T00:00:00+00:00"}')
    old = Event.from_dict(line)
    assert (old.threshold, old.improvement, old.run_id, old.run_url, old.flow_run_id) == (None,) * 5
    assert format_message(old).splitlines() == ["[taxifare] 2015-02: KEEP (champion v2 kept, challenger v3)",
                                                "champion MAE 2.4 vs challenger 2.5", "  - kept"]


def test_a_new_event_reads_back_whole() -> None:
    new = event(CycleOutcome.ESCALATE, **COMPARED, **HTTP)
    assert Event.from_dict(json.loads(json.dumps(new.to_dict()))) == new


def test_human_moves_keep_their_short_form() -> None:
    moved = Event(model="m", window="-", outcome=CycleOutcome.PROMOTE, kind=EventKind.OUTSIDE, reasons=("moved",))
    assert format_message(moved) == "[m] MOVED OUTSIDE MODELCYCLE\n  - moved"


# links ----------------------------------------------------------------------------------------

def test_mlflow_links_only_for_http_servers() -> None:
    assert links.mlflow_run_url("https://u:secret@ml.example.com/mlflow/", "r1") == \
        "https://ml.example.com/mlflow/#/runs/r1"
    assert links.mlflow_run_url("http://ml:5000", "r1", experiment_id="7") == "http://ml:5000/#/experiments/7/runs/r1"
    assert links.mlflow_run_url("sqlite:////ws/.modelcycle/mlflow.db", "r1") is None
    assert links.mlflow_version_url("http://ml:5000", "my model", "2") == "http://ml:5000/#/models/my%20model/versions/2"
    assert links.mlflow_version_url("databricks", "m", "2") is None


def test_prefect_ui_from_the_api_url() -> None:
    assert links.prefect_ui_url("http://127.0.0.1:4200/api/", env={}) == "http://127.0.0.1:4200"
    assert links.prefect_ui_url("http://p:4200/api", env={"PREFECT_UI_URL": "https://ui.example.com/"}) == \
        "https://ui.example.com"
    assert links.prefect_ui_url(None, env={"PREFECT_UI_URL": "https://ui.example.com"}) is None  # embedded
    assert links.prefect_ui_url("https://api.prefect.cloud/api/accounts/a1/workspaces/w2", env={}) == \
        "https://app.prefect.cloud/account/a1/workspace/w2"
    assert links.prefect_flow_run_url("http://p:4200/api", "f-1", env={}) == "http://p:4200/runs/flow-run/f-1"
    assert links.prefect_flow_run_url(None, "f-1", env={}) is None


def test_the_terminal_line_links_only_http_pages() -> None:
    from modelcycle.cli.render import decision_line

    embedded = decision_line(event(CycleOutcome.KEEP, **COMPARED, **EMBEDDED)).plain
    assert "abc123" not in embedded and "f-1" not in embedded and "modelcycle up" not in embedded
    assert len(embedded.splitlines()) == 3  # the decision and its two reasons
    served = decision_line(waiting(**COMPARED, **HTTP)).plain
    assert served.startswith("2015-03  ") and "waiting for a human" in served.splitlines()[0]
    assert "MLflow run: http://mlflow:5000/#/runs/abc123" in served
    assert "approval form (Prefect flow run clever-fox): http://prefect:4200/runs/flow-run/f-1" in served
    assert "modelcycle approve" not in served
