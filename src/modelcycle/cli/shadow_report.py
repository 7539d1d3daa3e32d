"""modelcycle shadow-report: the champion and the challenger on the same live requests."""

from __future__ import annotations

import json
from datetime import date

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.cli import common
from modelcycle.console import console


def _since(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        from modelcycle.errors import ConfigError

        raise ConfigError(f"--since {text!r} is not a date",
                          "write it as YYYY-MM-DD, e.g. --since 2025-03-01") from None


def shadow_report(
    ctx: typer.Context,
    since: str | None = typer.Option(
        None, "--since", metavar="YYYY-MM-DD",
        help="Read the prediction log from this day on (UTC); default: all of it."),
    labels_window: str | None = typer.Option(
        None, "--labels-window", metavar="WINDOW",
        help="Read labels from the source rows of this window (YYYY-MM, or YYYY-MM-DD..YYYY-MM-DD, end "
        "excluded) instead of the time the log covers: for requests about rows stamped at other times, "
        "such as a replay of history."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (for scripts)."),
) -> None:
    """Score the champion and the challenger on the same live requests, once their labels arrive:
    with `serve.shadow: true` in modelcycle.yaml, `modelcycle serve` also scores the challenger on
    every request and logs both predictions with the request's `serve.key_columns` under
    .modelcycle/predictions/; this joins that log on the key columns with the labels in the source
    (column `serve.label_column`, default `data.target`) and, for each pair of champion and
    challenger versions that served, prints both models' metric on the labelled rows and the paired
    interval of the challenger's improvement that the gate computes. Rows whose label has not
    arrived are counted and left out."""
    from modelcycle.config import Window
    from modelcycle.serving import report as shadow

    first = _since(since)
    window = Window.parse(labels_window) if labels_window else None
    ws = common.load_workspace(ctx)
    done = shadow.shadow_report(ws, since=first, labels_window=window)
    if as_json:
        print(json.dumps(done.to_dict(), indent=2))
        return
    render(done)


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _percent(value: float) -> str:
    return f"{value:+.1%}"


def _versions(champion: str, challenger: str | None) -> str:
    return f"v{champion} → " + (f"v{challenger}" if challenger else "no challenger")


def render(done: object) -> None:
    from modelcycle.serving.report import ShadowReport
    from modelcycle.steps.evaluate import METRICS

    assert isinstance(done, ShadowReport)
    label = METRICS[done.metric].label or done.metric
    since = f" since {done.since.isoformat()}" if done.since else ""
    console.print(f"[bold]{escape(done.model)}[/bold]  shadow scoring{since}: {done.rows} logged rows in "
                  f"{done.files} file(s); labels '{escape(done.label)}' from {escape(done.source)} "
                  f"({done.labels_from:%Y-%m-%d %H:%M} to {done.labels_to:%Y-%m-%d %H:%M}), joined on "
                  f"{escape(', '.join(done.keys))}", soft_wrap=True)
    confidence = next((p.interval.confidence for p in done.pairs if p.interval is not None), None)
    table = Table(header_style="bold", show_edge=False)
    for col in ("versions", "requests", "logged", "labelled", "compared", f"champion {label}",
                f"challenger {label}", "improvement", f"{confidence or 0.95:.0%} interval"):
        table.add_column(col, no_wrap=True, justify="left" if col == "versions" else "right")
    for p in done.pairs:
        iv = p.interval
        table.add_row(_versions(p.champion_version, p.challenger_version), str(p.requests), str(p.rows),
                      str(p.labelled), str(p.compared), _number(p.champion), _number(p.challenger),
                      "—" if iv is None else _percent(iv.estimate),
                      "—" if iv is None else f"{_percent(iv.low)} to {_percent(iv.high)}")
    console.print(table)
    console.print("[muted]improvement: the challenger's relative improvement over the champion on the same "
                  "rows (positive: better), with the gate's paired interval[/muted]", soft_wrap=True)
    for p in done.pairs:
        pair = _versions(p.champion_version, p.challenger_version)
        style = ("promote" if "better" in p.reading else "error" if "worse" in p.reading else "muted")
        console.print(f"{pair}: [{style}]{escape(p.reading)}[/{style}]", soft_wrap=True)
    if done.unlabelled:
        console.print(f"[hint]{done.unlabelled} of {done.rows} logged rows have no label in the source yet: left "
                      "out (run again when the labels arrive; --labels-window reads other rows)[/hint]",
                      soft_wrap=True)
    for note in done.notes:
        console.print(f"[hint]{escape(note)}[/hint]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("shadow-report", short_help="Compare the champion and the challenger on the live requests they "
                "both scored, once the labels arrive.")(shadow_report)
