"""modelcycle backtest: replay the cycle month by month."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from modelcycle.cli import common
from modelcycle.console import console


def backtest(
    ctx: typer.Context,
    first: str = typer.Option(..., "--from", help="First month (YYYY-MM)."),
    last: str = typer.Option(..., "--to", help="Last month (YYYY-MM), included."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Where to write the timeline PNG (default: reports/backtest-FROM-TO.png)."),
    approve_escalations: bool = typer.Option(
        False, "--approve-escalations", help="Approve each escalated challenger before the next month, as a "
        "human who reviewed it would (without it, an escalation keeps the champion, as a timeout does)."),
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Replay the cycle over history, one month at a time, exactly as scheduled runs would have:
    each month is a real cycle (versioned, registered, notified). Prints each month's decision
    and writes a timeline picture: champion and challenger per month, the threshold, the noise
    floor when the workspace has a `reference`, decisions marked (and checked against the
    reference's ground truth)."""
    from modelcycle.config import month_range
    from modelcycle.lifecycle import services

    ws = common.load_workspace(ctx)
    windows = month_range(first, last)
    services.refuse_literal_secrets(ws)  # before anything connects with the password it holds
    common.check_backends(ws)
    with common.locked(ws, no_wait=no_wait):
        services.refuse_literal_secrets(ws)
        common.prepare_prefect(ws, verbose=common.options(ctx).verbose)
        from modelcycle.lifecycle import flows

        with common.cycle_progress(len(windows), "starting (Prefect's local server takes a few seconds)"):
            results = flows.backtest(ws.root, first, last, approve_escalations=approve_escalations)
    out = report(ws, results, plot or ws.path(f"reports/backtest-{first}-{last}.png"),
                 first_has_champion=results[0].champion_version is not None)
    console.print(f"timeline: [path]{out}[/path]  (table: {out.with_suffix('.json').name})")
    failed = [r.window for r in results if r.outcome == "failed"]
    if failed:
        console.print(f"[error]{len(failed)} month(s) failed:[/error] {', '.join(failed)}; "
                      "their reasons are in the table and the notifications log")
        raise typer.Exit(1)


def report(ws: Any, results: list[Any], png: Path, *, first_has_champion: bool, drawn: int = 0) -> Path:
    """Print the decision table (beside the ground truth of the workspace's `reference`, when it
    has one), draw the timeline of ``results[drawn:]`` to ``png`` and write the table beside it as JSON."""
    from modelcycle.cli.render import results_table, truth_line
    from modelcycle.lifecycle import reference, timeline

    ref = reference.load(ws)
    truth = None if ref is None else reference.expected_decisions(
        ws, ref, [r.window for r in results], first_has_champion=first_has_champion)
    console.print(results_table(results, truth=truth or None))
    if ref is not None and truth:
        console.print(truth_line(results, truth, label=ref.label), soft_wrap=True)
    timeline.draw(results[drawn:], png, name=ws.config.name, metric=ws.config.metric,
                  threshold=ws.config.gate.threshold,
                  events={w: t.what for w, t in (truth or {}).items() if t.event})
    rows = []
    for r in results:
        row = r.to_dict()
        if truth and r.window in truth:
            t = truth[r.window]
            row["truth"] = {"expected": t.expected, "what_happened": t.what, "right": t.matches(r.outcome)}
        rows.append(row)
    png.with_suffix(".json").write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    return png


def register(app: typer.Typer) -> None:
    app.command("backtest",
                short_help='Replay the cycle month by month; print the decisions, draw the timeline.')(backtest)
