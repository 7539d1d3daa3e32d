"""modelcycle doctor: repair a cycle that stopped midway, and check the workspace."""

from __future__ import annotations

import typer

from modelcycle.cli import common
from modelcycle.console import console


def doctor() -> None:
    """Repair what a killed cycle left half-done (git, DVC outputs, model version, aliases), then
    check that the configuration loads and each backend answers."""
    from modelcycle.lifecycle import journal
    from modelcycle.registry.mlflow import MlflowRegistry
    from modelcycle.sources import build_source
    from modelcycle.versioning.dvcgit import DvcGitVersioning

    ws = common.workspace()
    reg = MlflowRegistry(ws.tracking_uri, registry_uri=ws.registry_uri, artifact_location=ws.artifact_location)
    ver = DvcGitVersioning(str(ws.root))
    repaired = journal.recover(ws, reg, ver)
    console.print(f"[promote]repaired:[/promote] {repaired}" if repaired else "no half-done cycle")
    console.print(f"config      ok ({ws.root / 'modelcycle.yaml'})")
    reg.get_alias(ws.config.name, "champion")
    console.print(f"MLflow      ok ({ws.tracking_uri})")
    console.print(f"git + DVC   ok (HEAD {(ver.head() or 'none')[:10]})")
    build_source(ws.config, ws.root).check()
    console.print("source      ok")


def register(app: typer.Typer) -> None:
    app.command("doctor", short_help='Repair a cycle that was killed midway, then check the backends.')(doctor)
