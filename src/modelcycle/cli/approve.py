"""modelcycle approve / reject / pending: answer a deployed cycle that waits for a human."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.cli import common
from modelcycle.cli.deploy import connect_prefect
from modelcycle.console import console

RUN_HELP = "The waiting run: its window (e.g. 2015-03, as `modelcycle pending` lists it) or its flow run id."


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "the command line"


def _answer(ctx: typer.Context, run: str, *, approve: bool, comment: str, by: str | None) -> None:
    from modelcycle.lifecycle import approval

    ws = common.load_workspace(ctx)
    common.check_backends(ws, "prefect", "mlflow")
    connect_prefect(ws, verbose=common.options(ctx).verbose, what="answering a deployed run")
    found = approval.answer(run, approve=approve, by=_who(by), comment=comment)
    said = "approved: the challenger becomes the champion" if approve else "rejected: the champion is kept"
    console.print(f"{escape(found.name)} {said} (the run goes on to act; `modelcycle status` shows the "
                  "decision)", soft_wrap=True)


COMMENT = typer.Option("", "--comment", "-m", help="Why (kept in the decision log and the MLflow run).")
BY = typer.Option(None, "--by", help="Who answers (default: your user name).")


def approve(ctx: typer.Context, run: str = typer.Argument(..., help=RUN_HELP), comment: str = COMMENT,
            by: str | None = BY) -> None:
    """Approve the challenger of a deployed cycle that escalated: it is promoted through the same
    transaction as an automatic promotion. The same answer as the form in the Prefect UI."""
    _answer(ctx, run, approve=True, comment=comment, by=by)


def reject(ctx: typer.Context, run: str = typer.Argument(..., help=RUN_HELP), comment: str = COMMENT,
           by: str | None = BY) -> None:
    """Keep the champion of a deployed cycle that escalated. The same answer as the form in the
    Prefect UI."""
    _answer(ctx, run, approve=False, comment=comment, by=by)


def pending(ctx: typer.Context) -> None:
    """List the deployed cycles waiting for a human, with when their wait ends (the champion is
    then kept)."""
    from modelcycle.lifecycle import approval

    ws = common.load_workspace(ctx)
    common.check_backends(ws, "prefect")
    url = connect_prefect(ws, verbose=common.options(ctx).verbose, what="listing waiting runs")
    runs = approval.paused_runs()
    if not runs:
        console.print("no cycle waits for a human")
        return
    table = Table(header_style="bold", show_edge=False)
    for col in ("run", "waiting since", "answer by", "flow run id"):
        table.add_column(col, no_wrap=True)
    now = datetime.now(UTC)
    for r in runs:
        since = r.state.timestamp if r.state else None
        until = r.state.state_details.pause_timeout if r.state else None
        left = f"{until:%Y-%m-%d %H:%M} UTC ({(until - now).total_seconds() / 60:.0f} min left)" if until else "—"
        table.add_row(r.name, f"{since:%Y-%m-%d %H:%M} UTC" if since else "—", left, str(r.id))
    console.print(table)
    ui = url.rstrip("/").removesuffix("/api")
    console.print(f"[muted]answer: modelcycle approve RUN / modelcycle reject RUN, or the form at "
                  f"{escape(ui)}/runs/flow-run/<id>[/muted]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("approve", short_help="Approve the challenger of a deployed cycle waiting for a human.")(approve)
    app.command("reject", short_help="Keep the champion of a deployed cycle waiting for a human.")(reject)
    app.command("pending", short_help="List the deployed cycles waiting for a human.")(pending)
