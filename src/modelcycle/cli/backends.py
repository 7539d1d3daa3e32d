"""modelcycle backends: check the workspace's backends; migrate its MLflow content to a team server."""

from __future__ import annotations

import typer
from rich.markup import escape

from modelcycle.cli import common
from modelcycle.console import console

group = typer.Typer(
    name="backends", no_args_is_help=True, add_completion=False,
    help="The workspace's backends (MLflow, Prefect, the DVC remote): check them, or move the MLflow "
         "content to a team's tracking server.")


def check(ctx: typer.Context) -> None:
    """Ask each configured backend (the MLflow store, the Prefect API, the DVC remote and, when
    params.yaml's candidates train on Dask, the scheduler at orchestration.dask_address) once, all at
    the same time, with a short time-out (MODELCYCLE_BACKENDS_TIMEOUT seconds, default 3), and say
    whether it answers and at which URL. Exits 1 when one does not."""
    from modelcycle.lifecycle import backends

    ws = common.load_workspace(ctx)
    reaches = backends.check(ws)
    for r in reaches:
        mark = "[green]ok[/green]" if r.ok else "[error]down[/error]"
        said = r.text if r.ok else r.problem()
        console.print(f"{r.title:<11} {mark}  {escape(said)}" + (f"  [muted]({escape(r.url)})[/muted]" if r.ok else ""),
                      soft_wrap=True, highlight=False)
        if not r.ok and r.hint:
            console.print(f"[hint]  {escape(r.hint)}[/hint]", soft_wrap=True)
    if not any(r.name == "prefect" for r in reaches):
        console.print("Prefect     [muted]the workspace's own server (`modelcycle up` or started by a command)[/muted]")
    if not all(r.ok for r in reaches):
        raise typer.Exit(1)


def migrate(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", metavar="URL",
                           help="The new tracking server, e.g. http://team-mlflow:5000 (what "
                                "backends.mlflow_tracking_uri will say)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be copied; copy nothing."),
    write_config: bool = typer.Option(False, "--write-config",
                                      help="Afterwards, change backends.mlflow_tracking_uri in modelcycle.yaml "
                                           "to --to (only that value; comments kept)."),
) -> None:
    """Copy this workspace's MLflow content to a team's tracking server, leaving the old store
    (.modelcycle/mlflow.db and .modelcycle/mlartifacts) untouched until you remove it.

    Copied: the model's experiments (NAME and NAME-..., e.g. NAME-experiments); every run with its
    name, status, times, params, tags, each metric's full history, its artifacts and its dataset
    inputs (mlflow.log_input); the MLflow 3 logged models with their files and metrics, and which
    runs they came from and fed; the registered model with its description and tags, every
    version with the same number, tags and description; the aliases (champion, challenger...).
    On a server, new experiments keep their artifacts where the server says (served artifacts),
    unless backends.mlflow_artifacts names an artifact store.

    Run ids change: each copied run is tagged modelcycle.migrated_from=OLD_ID (search it in the
    MLflow UI to find a run an old notification or report names); the version tags and the alias
    history point at the new runs, so status, history, promote, rollback, predict, serve and the
    next run work on the server.

    Safe to run again: what a former migration copied is not copied twice. A server that already
    has another model of this name is refused. After copying, the two stores are compared (runs,
    versions, aliases) and the champion is loaded from the server; then change
    backends.mlflow_tracking_uri (or pass --write-config). Remove .modelcycle/mlflow.db and
    .modelcycle/mlartifacts only once you are content."""
    from modelcycle.lifecycle import migrate as migration
    from modelcycle.registry import lineage

    ws = common.load_workspace(ctx)
    said = "would copy" if dry_run else "copying"
    console.print(escape(f"{said} model '{ws.config.name}' from {ws.local_tracking_uri} to {to}"), soft_wrap=True,
                  highlight=False)
    done = migration.migrate(ws, to, dry_run=dry_run, write_config=write_config,
                             say=lambda line: console.print(escape(line), soft_wrap=True, highlight=False))
    tally = done.tally
    kinds = ("experiments", "runs", "run updates", "logged models", *lineage.KINDS, "registered models", "versions",
             "aliases")
    copied = ", ".join(f"{tally.copied[k]} {k}" for k in kinds if tally.copied.get(k)) or "nothing"
    present = ", ".join(f"{tally.present[k]} {k}" for k in kinds if tally.present.get(k))
    verb = "would copy" if dry_run else "copied"
    console.print(escape(f"{verb}: {copied}"), soft_wrap=True, highlight=False)
    if present:
        console.print(escape(f"already there: {present}"), soft_wrap=True, highlight=False)
    if dry_run:
        console.print("[muted]dry run: nothing was copied[/muted]")
        return
    for line in done.checks:
        console.print(f"[green]verified[/green] {escape(line)}", soft_wrap=True, highlight=False)
    console.print(escape(f"the old store is unchanged: {done.source} (remove .modelcycle/mlflow.db and "
                         ".modelcycle/mlartifacts once you are content)"), soft_wrap=True, highlight=False)
    if done.config_written:
        console.print(escape(f"modelcycle.yaml now says:\n{done.config_line}\n(commit it: "
                             "`git commit -m 'the team MLflow server' modelcycle.yaml`)"), soft_wrap=True,
                      highlight=False)
    else:
        console.print(escape(f"now change this line of modelcycle.yaml (backends:), or run again with "
                             f"--write-config:\n{done.config_line}"), soft_wrap=True, highlight=False)
    import os

    if os.environ.get("MLFLOW_TRACKING_URI"):
        console.print("[hint]MLFLOW_TRACKING_URI is set in this shell: it wins over modelcycle.yaml; change or "
                      "unset it too[/hint]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    group.command("check", short_help="Say whether each backend answers (a few seconds at most).")(check)
    group.command("migrate", short_help="Copy the MLflow content to a team's tracking server.")(migrate)
    app.add_typer(group, name="backends", short_help="Check the backends; migrate MLflow to a team server.")
