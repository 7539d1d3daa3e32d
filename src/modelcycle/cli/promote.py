"""modelcycle promote: a human's decision (for example after an escalation)."""

from __future__ import annotations

import getpass

import typer

from modelcycle.cli import common
from modelcycle.console import console


def promote(
    version: str = typer.Option(..., "--version", help="The model version to serve."),
    alias: str = typer.Option("champion", "--alias", help="champion (or Production) / challenger (or Staging)."),
    reason: str = typer.Option("approved by a human", "--reason", help="Why; kept on the version and in the notification."),
) -> None:
    """Point an alias (the champion by default) at a registered model version: the answer to an
    escalation. The previous holder stays registered; promote it back the same way."""
    from modelcycle.notify import Notifier
    from modelcycle.registry.base import canonical_alias
    from modelcycle.registry.mlflow import MlflowRegistry

    ws = common.workspace()
    name = ws.config.name
    reg = MlflowRegistry(ws.tracking_uri, registry_uri=ws.registry_uri, artifact_location=ws.artifact_location)
    target = canonical_alias(alias)
    mv = reg.get_version(name, version)
    before = reg.get_alias(name, target)
    reg.set_alias(name, target, mv.version)
    reg.set_version_tags(name, mv.version, {f"{target}_by": getpass.getuser(), f"{target}_reason": reason})
    was = f" (was v{before.version})" if before else ""
    console.print(f"[promote]{name} v{mv.version} is now the {target}[/promote]{was}")
    n = ws.config.notify
    Notifier(file=ws.path(n.file) if n.file else None, urls=n.urls).send({
        "model": name, "window": mv.tags.get("window", "?"), "outcome": "promote" if target == "champion" else "keep",
        "reasons": [f"{reason}: v{mv.version} set as {target}{was}"], "version": mv.version})


def register(app: typer.Typer) -> None:
    app.command("promote", short_help="Point the champion (or challenger) alias at a model version: a human's decision.")(promote)
