"""modelcycle report: the workspace's params and metrics against the champion's, for a pull request."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from modelcycle.cli import common
from modelcycle.console import console

DEFAULT_OUT = "reports/pr"


def report(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", "-o", file_okay=False,
        help=f"The folder to write the report into (default: {DEFAULT_OUT}/ in the workspace)."),
) -> None:
    """Write a report comparing this workspace's params (params.yaml) and metrics (the latest
    stage outputs: reports/metrics.json, validation.json, predictions.csv) with the champion's
    (its MLflow run): a params table with the changed ones marked, a metrics table with each
    difference and whether it is better or worse, the timeline of the latest cycles, and the
    confusion matrix (classification) or residual plot (regression) as PNG files beside it. It
    writes report.md and report.html, the images linked relative to them, so that `cml comment
    create reports/pr/report.md` posts it on a pull request with its pictures (the workflow that
    `modelcycle init` writes in .github/workflows/ does that). Run the pipeline first: `modelcycle
    run` or `dvc repro`."""
    from modelcycle.lifecycle import prreport
    from modelcycle.registry.workspace import open_registry

    ws = common.load_workspace(ctx)
    common.check_backends(ws, "mlflow")
    folder = out.expanduser().resolve() if out is not None else ws.path(DEFAULT_OUT)
    data, files = prreport.write(ws, open_registry(ws), folder)
    shown = os.path.relpath(files["md"]) if files["md"].is_relative_to(Path.cwd()) else str(files["md"])
    console.print(f"[promote]wrote[/promote] [path]{shown}[/path] and {files['html'].name}, "
                  + ", ".join(p.name for k, p in files.items() if k not in ("md", "html")))
    if data.champion is None:
        console.print("[hint]no champion yet: the report shows this workspace's numbers only[/hint]")
    else:
        gate = next(r for r in data.metrics if r.gate)
        changed = len(data.changed_params)
        console.print(f"against champion v{data.champion.version}: {gate.label} "
                      f"{gate.verdict or 'not compared'}, {changed} param(s) changed")


def register(app: typer.Typer) -> None:
    app.command("report",
                short_help="Write a Markdown/HTML report of params and metrics against the champion's, "
                "for a pull request.")(report)
