"""modelcycle promote: a human's decision (for example after an escalation)."""

from __future__ import annotations

import getpass

import typer

from modelcycle.cli import common
from modelcycle.console import console


def promote(
    ctx: typer.Context,
    version: str = typer.Option(..., "--version", help="The model version to serve."),
    alias: str = typer.Option("champion", "--alias", help="champion (or Production) / challenger (or Staging)."),
    reason: str = typer.Option("approved by a human", "--reason",
                               help="Why; kept on the version and in the notification."),
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Point an alias (the champion by default) at a registered model version: the answer to an
    escalation. The previous holder stays registered; promote it back the same way."""
    from modelcycle.lifecycle import actions, services

    if not version.strip().isdigit():
        from modelcycle.errors import ConfigError

        raise ConfigError(f"--version {version!r} is not a version number",
                          "give the number of a registered version, e.g. --version 7 (`modelcycle status` "
                          "shows the champion's and the challenger's)")
    ws = common.load_workspace(ctx)
    common.check_backends(ws, "mlflow")
    with common.locked(ws, no_wait=no_wait):
        done = actions.promote(services.build(ws, echo=lambda _e: None), version, alias=alias, reason=reason,
                               by=getpass.getuser())
    from modelcycle.cli.rollback import notes

    notes(done)
    was = f" (was v{done.previous})" if done.previous else ""
    console.print(f"[promote]{done.name} v{done.version} is now the {done.alias}[/promote]{was}")


def register(app: typer.Typer) -> None:
    app.command("promote",
                short_help="Point the champion (or challenger) alias at a model version: a human's decision.")(promote)
