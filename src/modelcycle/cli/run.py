"""modelcycle run: one cycle for one window."""

from __future__ import annotations


import typer

from modelcycle.cli import common
from modelcycle.console import console


def run(
    ctx: typer.Context,
    window: str | None = typer.Option(
        None, "--window", help="The window to evaluate: a month (2015-03) or a range "
        "(2015-03-01..2015-03-16, end excluded). Default: the month after the last cycle's (or after the "
        "windows rolled back since)."),
    no_wait: bool = typer.Option(False, "--no-wait", help=common.NO_WAIT_HELP),
) -> None:
    """Run one cycle: fetch the window, validate it, score the champion on its latest rows while a
    challenger trains on the rest (plus history), decide, and act: version the data and the
    model (DVC + git), register the challenger in MLflow and move the aliases, all in one
    transaction that rolls back on any failure. Then notify."""
    from modelcycle.config import Window
    from modelcycle.lifecycle import rolledback, runners, services

    ws = common.load_workspace(ctx)
    if window is not None:
        Window.parse(window)  # a typo fails before anything starts
    services.refuse_literal_secrets(ws)  # before anything connects with the password it holds
    common.check_backends(ws)
    runners.preflight(ws)  # candidates on a Dask scheduler: it answers, before anything starts
    with common.locked(ws, no_wait=no_wait):
        if window is None:  # read under the lock: a cycle that held it may have moved the window
            window = rolledback.next_window(ws.reload_params()).label
        services.refuse_literal_secrets(ws)
        common.prepare_prefect(ws, verbose=common.options(ctx).verbose)
        from modelcycle.cli.render import results_table
        from modelcycle.lifecycle import flows

        with common.cycle_progress(1, "starting (Prefect's local server takes a few seconds)"):
            result = flows.run(ws.root, window)
    console.print(results_table([result]))
    if result.git_tag:
        chosen = f" (candidate '{result.candidate}')" if result.candidate else ""
        console.print(f"[muted]versioned as git tag {result.git_tag} ({(result.git_commit or '')[:10]}); "
                      f"challenger registered as {ws.config.name} v{result.challenger_version}{chosen}; "
                      f"MLflow run {result.mlflow_run_id}[/muted]")
    elif result.outcome == "rolled_back":
        console.print(f"[muted]rolled back (act.keep_rejected: false): no git commit or tag, no DVC change, no "
                      f"model version or alias move; the challenger stays in MLflow run {result.mlflow_run_id}, "
                      f"tagged modelcycle.outcome=rolled_back[/muted]")
    if result.unpushed:  # versioning.push: best-effort, and the push failed
        from rich.markup import escape

        console.print(f"[escalate]not pushed:[/escalate] {escape(result.unpushed)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("run",
                short_help='Run one cycle for a window: validate, compare, decide, version, register, notify.')(run)
