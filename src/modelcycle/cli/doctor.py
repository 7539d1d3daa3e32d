"""modelcycle doctor: repair a cycle that stopped midway, and check the workspace."""

from __future__ import annotations

import typer

from modelcycle.cli import common
from modelcycle.console import console


def doctor(
    ctx: typer.Context,
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Repair what a killed or interrupted cycle left half-done (git commit and tag, DVC outputs,
    model version, aliases; its MLflow run and Prefect flow run are closed), remove lock files a
    killed git left, point a moved or copied workspace's MLflow store at its own files, then
    check that every part answers: MLflow, Prefect, git (on a branch), the DVC cache and remote
    (the committed data is there), the champion, the source. Exits 1 if a problem remains."""
    from modelcycle.config import redact
    from modelcycle.lifecycle import doctor as checks
    from modelcycle.lifecycle import runtime, services

    ws = common.load_workspace(ctx)
    with common.locked(ws, no_wait=no_wait):
        server = common.begin_prefect(ws.prefect_home, ws.prefect_api_url,
                                     verbose=common.options(ctx).verbose)
        svc = services.build(ws, echo=lambda _e: None)
        moved = getattr(svc.registry, "relocated", None)

        def registry_check() -> None:
            svc.registry.check(timeout=5)

        def prefect_check() -> str:
            if server is not None:
                from modelcycle.errors import WorkspaceError

                try:
                    server.wait()
                except RuntimeError as exc:
                    raise WorkspaceError(str(exc).splitlines()[0], "run again with --verbose") from exc
                return "the workspace's own server answers"
            runtime.check_api(timeout=5)
            return f"answers ({redact(ws.prefect_api_url or '')})"

        findings = checks.examine(svc, registry_check=registry_check, prefect_check=prefect_check, moved=moved)
    console.print(f"config      ok ({ws.root / 'modelcycle.yaml'}; MLflow {redact(ws.tracking_uri)})")
    for f in findings:
        mark = "[promote]ok[/promote]" if f.ok else "[error]problem[/error]"
        console.print(f"{f.area:<11} {mark}  {f.text}", soft_wrap=True, markup=True)
        if f.hint and not f.ok:
            console.print(f"            [hint]{f.hint}[/hint]", soft_wrap=True)
    if any(not f.ok for f in findings):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor", short_help='Repair a cycle that was killed midway, then check every backend.')(doctor)
