"""modelcycle push: push now the cycles whose push to the DVC remote failed."""

from __future__ import annotations

import typer
from rich.markup import escape

from modelcycle.cli import common
from modelcycle.console import console


def push(
    ctx: typer.Context,
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Push to the DVC remote the data and model of every cycle whose push failed
    (`versioning.push: best-effort`), after making DVC's remote the one modelcycle.yaml (or
    MODELCYCLE_DVC_REMOTE) names. A push that succeeds clears them from `modelcycle status`."""
    from modelcycle.lifecycle import unpushed
    from modelcycle.versioning.remote import remote_in_use

    ws = common.load_workspace(ctx)
    with common.locked(ws, no_wait=no_wait):
        done = unpushed.push_now(ws)
    used = remote_in_use(ws.root)
    where = used.describe() if used else "no remote"
    if not done.pushed:
        console.print(escape(f"nothing to push: every cycle is on the DVC remote {where}"), soft_wrap=True)
        return
    console.print(escape(f"pushed {len(done.pushed)} cycle(s) to the DVC remote {where}:"), soft_wrap=True)
    for e in done.pushed:
        console.print(escape(f"  {e.window}  {e.tag or e.commit[:10]}"), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("push", short_help="Push the cycles whose push to the DVC remote failed.")(push)
