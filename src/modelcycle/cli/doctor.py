"""modelcycle doctor: repair a cycle that stopped midway, and check the workspace."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from modelcycle.cli import common
from modelcycle.console import console


def doctor(
    ctx: typer.Context,
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Repair what a killed or interrupted cycle left half-done (git commit and tag, DVC outputs,
    model version, aliases; its MLflow run and Prefect flow run are closed), remove lock files a
    killed git left, point a moved or copied workspace's MLflow store at its own files, then
    check that every part answers: MLflow, Prefect, the DVC remote and, when the candidates train
    on Dask, the scheduler (all at once, a few seconds at most), git (on a branch), the DVC cache
    and remote (the committed data is there), the champion, the source. Exits 1 if a problem
    remains."""
    from modelcycle.config import redact
    from modelcycle.errors import ConfigError, ModelcycleError, RegistryError, VersioningError, WorkspaceError
    from modelcycle.lifecycle import backends, services
    from modelcycle.lifecycle import doctor as checks

    ws = common.load_workspace(ctx)
    with common.locked(ws, no_wait=no_wait):
        server = common.begin_prefect(ws.prefect_home, ws.prefect_api_url,
                                     verbose=common.options(ctx).verbose)
        reaches = backends.check(ws)  # every configured backend at once, a few seconds at most

        def reach(name: str, error: type[ModelcycleError]) -> str:
            found = [r for r in reaches if r.name == name]
            down = [r for r in found if not r.ok]
            if down:
                raise error("; ".join(r.problem() for r in down), down[0].hint)
            return "; ".join(f"{r.text} ({r.url})" for r in found)

        mlflow_ok = all(r.ok for r in reaches if r.name == "mlflow")
        svc = services.build(ws, echo=lambda _e: None) if mlflow_ok else _without_registry(ws)
        moved = getattr(svc.registry, "relocated", None)

        def prefect_check() -> str:
            if server is not None:
                try:
                    server.wait()
                except RuntimeError as exc:
                    raise WorkspaceError(str(exc).splitlines()[0], "run again with --verbose") from exc
                return "the workspace's own server answers"
            return reach("prefect", WorkspaceError)

        has_remote = any(r.name == "dvc" for r in reaches)
        uses_dask = any(r.name == "dask" for r in reaches)
        def registry_check() -> str:
            said = reach("mlflow", RegistryError)
            svc.registry.check(timeout=5)  # one query: the store opens and reads
            return said

        findings = checks.examine(svc, registry_check=registry_check, prefect_check=prefect_check, moved=moved,
                                  remote_check=(lambda: reach("dvc", VersioningError)) if has_remote else None,
                                  dask_check=(lambda: reach("dask", ConfigError)) if uses_dask else None)
        warnings = _client_only(ws, svc.registry) if mlflow_ok else {}
    console.print(f"config      ok ({ws.root / 'modelcycle.yaml'}; MLflow {redact(ws.tracking_uri)})")
    for f in findings:
        mark = "[promote]ok[/promote]" if f.ok else "[error]problem[/error]"
        console.print(f"{f.area:<11} {mark}  {escape(f.text)}", soft_wrap=True, markup=True)
        if f.hint and not f.ok:
            console.print(f"            [hint]{escape(f.hint)}[/hint]", soft_wrap=True)
    for name, location in warnings.items():
        console.print(f"{'MLflow':<11} [escalate]warning[/escalate]  {escape(_client_only_text(name, location))}",
                      soft_wrap=True)
        console.print(f"            [hint]rename it (MLflow's UI, or `mlflow experiments rename`): the next cycle "
                      f"makes a new '{escape(name)}' whose artifacts the server keeps (or the store "
                      "backends.mlflow_artifacts names); versions registered from the old one load on this "
                      "machine only[/hint]", soft_wrap=True)
    if any(not f.ok for f in findings):
        raise typer.Exit(1)


def _client_only_text(name: str, location: str) -> str:
    return (f"the experiment '{name}' keeps its artifacts at {location}, a folder of this machine: other "
            "machines that use the tracking server cannot load its models")


def _client_only(ws: Any, registry: Any) -> dict[str, str]:
    from modelcycle.errors import ModelcycleError
    from modelcycle.registry.workspace import client_only_experiments

    try:
        return client_only_experiments(ws, registry)
    except ModelcycleError:
        return {}  # the checks above say what does not answer


def _without_registry(ws: Any) -> Any:
    """The services doctor checks when the MLflow store does not answer: no registry is opened
    (a database that does not answer would keep the command waiting); the checks skip it."""
    from modelcycle.lifecycle import services
    from modelcycle.versioning.dvcgit import DvcGitVersioning

    return services.Services(ws=ws, source=services.build_source(ws.config, ws.root), registry=None,  # type: ignore[arg-type]
                             versioning=DvcGitVersioning(str(ws.root)), notifier=services.notifier_of(ws))


def register(app: typer.Typer) -> None:
    app.command("doctor", short_help='Repair a cycle that was killed midway, then check every backend.')(doctor)
