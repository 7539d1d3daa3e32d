"""modelcycle rollback: the champion back to the previous champion, or to a named version."""

from __future__ import annotations

import getpass

import typer

from modelcycle.cli import common
from modelcycle.console import console, err_console


def rollback(
    ctx: typer.Context,
    to: str | None = typer.Option(None, "--to", metavar="VERSION",
                                  help="The registered version to serve instead of the previous champion."),
    reason: str = typer.Option("rolled back by a human", "--reason",
                               help="Why; kept in the alias history, on the version and in the notification."),
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Move the champion alias back to the previous champion: the version the champion's last
    recorded move came from (`modelcycle history` shows it). Run twice, it goes back where it
    started; --to N picks any registered version instead. The move is journaled like a cycle's
    commit, recorded in the alias history with who and why, and announced; a running
    model server follows it. No version is deleted."""
    from modelcycle.lifecycle import actions, services

    if to is not None and not to.strip().isdigit():
        from modelcycle.errors import ConfigError

        raise ConfigError(f"--to {to!r} is not a version number",
                          "give the number of a registered version, e.g. --to 3 (`modelcycle history` lists "
                          "the champions)")
    ws = common.load_workspace(ctx)
    common.check_backends(ws, "mlflow")
    with common.locked(ws, no_wait=no_wait):
        svc = services.build(ws, echo=lambda _e: None)
        svc.registry.check()
        done = actions.rollback(svc, to=to.strip() if to else None, reason=reason, by=getpass.getuser())
    notes(done)
    was = f" (was v{done.previous})" if done.previous else ""
    console.print(f"[promote]{done.name} v{done.version} is now the champion[/promote]{was}")


def notes(done: object) -> None:
    """What happened before the move: a repaired cycle, moves made outside modelcycle."""
    repaired = getattr(done, "repaired", None)
    if repaired:
        err_console.print(f"[muted]repaired first: {repaired}[/muted]", soft_wrap=True)
    for move in getattr(done, "outside", ()):
        err_console.print(f"[muted]recorded a move made outside modelcycle: {move}[/muted]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("rollback",
                short_help="Move the champion back to the previous champion (or --to VERSION).")(rollback)
