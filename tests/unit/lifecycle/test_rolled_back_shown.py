"""The outcome ``rolled_back`` (``act.keep_rejected: false``) where a user reads decisions: the
decision table, the timeline's markers, a reference's truth, the decision log."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console

from modelcycle.cli.render import decision_line, results_table
from modelcycle.lifecycle import timeline
from modelcycle.lifecycle.reference import Truth
from modelcycle.notify import CycleOutcome, Event


def result(window: str, outcome: str) -> SimpleNamespace:
    return SimpleNamespace(window=window, outcome=outcome, metric="accuracy", rows={"window_in": 300,
                           "window_valid": 300}, champion_version="1", champion_score=0.97, challenger_version=None,
                           challenger_score=0.91, noise_floor=None, serving_version="1", approved=False)


def text_of(renderable) -> str:
    console = Console(width=160, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_decision_table_says_rolled_back_and_checks_it_against_the_truth() -> None:
    truth = {"2015-02": Truth("2015-02", "keep", "no change"), "2015-03": Truth("2015-03", "rolled_back", "rotated")}
    table = text_of(results_table([result("2015-02", "rolled_back"), result("2015-03", "rolled_back")], truth=truth))
    assert table.count("↺ rolled_back") == 2 and table.count("✓") == 2 and "✗" not in table
    assert not Truth("2015-04", "promote", "fare change").matches("rolled_back")
    assert not Truth("2015-04", "rolled_back", "fare change").matches("keep")


def test_the_timeline_marks_a_rolled_back_window_with_its_own_marker() -> None:
    assert timeline.MARKERS["rolled_back"][2] == "rolled back"
    assert len({m[:2] for m in timeline.MARKERS.values()}) == len(timeline.MARKERS)


def test_the_decision_log_reads_back_a_rolled_back_decision() -> None:
    event = Event(model="digits", window="2015-03", outcome=CycleOutcome.ROLLED_BACK, reasons=("kept",), champion="1")
    again = Event.from_dict(event.to_dict())
    assert again.outcome == CycleOutcome.ROLLED_BACK
    assert "2015-03  ↺ rolled_back" in text_of(decision_line(again))
