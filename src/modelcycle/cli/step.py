"""modelcycle step: one stage of dvc.yaml (what `dvc repro` runs)."""

from __future__ import annotations

import typer

from modelcycle.cli import common
from modelcycle.console import console


def step(
    ctx: typer.Context,
    stage: str = typer.Argument(..., help="fetch, validate, prepare, train or evaluate."),
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Run one pipeline stage from files, for `dvc repro` and `dvc exp run`: the window comes from
    params.yaml, inputs from the stage before, outputs where dvc.yaml declares them."""
    from modelcycle.lifecycle import stages

    ws = common.load_workspace(ctx)
    with common.locked(ws, no_wait=no_wait):
        console.print(stages.run_stage(ws, stage))


def register(app: typer.Typer) -> None:
    app.command("step", short_help='Run one dvc.yaml stage (what `dvc repro` and `dvc exp run` call).')(step)
