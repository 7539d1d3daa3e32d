"""modelcycle backtest: replay the cycle month by month."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from modelcycle.cli import common
from modelcycle.console import console


def backtest(
    first: str = typer.Option(..., "--from", help="First month (YYYY-MM)."),
    last: str = typer.Option(..., "--to", help="Last month (YYYY-MM), included."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Where to write the timeline PNG (default: reports/backtest-FROM-TO.png)."),
    approve_escalations: bool = typer.Option(
        False, "--approve-escalations", help="Approve each escalated challenger before the next month, as a "
        "human who reviewed it would (without it, an escalation keeps the champion, as a timeout does)."),
) -> None:
    """Replay the cycle over history, one month at a time, exactly as scheduled runs would have:
    each month is a real cycle (versioned, registered, notified). Prints each month's decision
    and writes a timeline picture: champion and challenger per month, the threshold, the noise
    floor when the data is simulated, decisions marked."""
    from modelcycle.config import month_range

    ws = common.workspace()
    windows = month_range(first, last)
    common.prepare_prefect(ws)
    from modelcycle.cli.render import results_table, truth_line
    from modelcycle.lifecycle import flows, scenario, timeline

    with common.cycle_progress(len(windows), "starting (Prefect's local server takes a few seconds)"):
        results = flows.backtest(ws.root, first, last, approve_escalations=approve_escalations)
    truth = scenario.expected_decisions(ws, [r.window for r in results],
                                        first_has_champion=results[0].champion_version is not None)
    console.print(results_table(results, truth=truth))
    if truth:
        console.print(truth_line(results, truth), soft_wrap=True)
    out = plot or ws.path(f"reports/backtest-{first}-{last}.png")
    timeline.draw(results, out, name=ws.config.name, metric=ws.config.metric,
                  threshold=ws.config.gate.threshold,
                  events={w: t.what for w, t in (truth or {}).items() if t.what != "no change"})
    table = out.with_suffix(".json")
    table.write_text(json.dumps([r.to_dict() for r in results], indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"timeline: [path]{out}[/path]  (table: {table.name})")
    failed = [r.window for r in results if r.outcome == "failed"]
    if failed:
        console.print(f"[error]{len(failed)} month(s) failed:[/error] {', '.join(failed)}; "
                      "their reasons are in the table and the notifications log")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("backtest", short_help='Replay the cycle month by month; print the decisions, draw the timeline.')(backtest)
