"""modelcycle up / down: the workspace's Prefect and MLflow servers with their dashboards."""

from __future__ import annotations

import time

import typer
from rich.markup import escape

from modelcycle.cli import common
from modelcycle.config import redact
from modelcycle.console import console, err_console


def up(
    ctx: typer.Context,
    prefect_port: int | None = typer.Option(None, "--prefect-port", min=1, max=65535,
                                            help="Port of the Prefect server (default: a free one)."),
    mlflow_port: int | None = typer.Option(None, "--mlflow-port", min=1, max=65535,
                                           help="Port of the MLflow server (default: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address both servers listen on. The default, 127.0.0.1, lets only this "
                             "machine in; neither server asks for a password."),
) -> None:
    """Start the workspace's Prefect server and MLflow tracking server, with their dashboards, in
    the background, and print their addresses. Prefect keeps its history in .modelcycle/prefect
    (earlier runs show); MLflow serves the workspace's own store (.modelcycle/mlflow.db) and
    artifacts. Both keep running after this command ends, log to .modelcycle/servers/, and every
    command of the workspace (run, backtest, serve, status, ...) uses them until `modelcycle down`
    stops them. A server configured in modelcycle.yaml (backends) or the environment is used as
    it is: `up` starts nothing for it.

    Run again, it prints the addresses of the servers already running.
    """
    from modelcycle.lifecycle import servers

    ws = common.load_workspace(ctx)
    t0 = time.monotonic()
    ready: list[str] = []
    status = err_console.status("starting the servers")

    def on_start(names: tuple[str, ...]) -> None:
        status.update(f"starting {' and '.join(servers.TITLES[n] for n in names)} (they answer in 5-25 s)")
        status.start()

    def on_ready(name: str) -> None:
        ready.append(name)
        err_console.print(f"{servers.TITLES[name]} answers ({time.monotonic() - t0:.1f} s)", style="muted")

    try:
        result = servers.up(ws, host=host, prefect_port=prefect_port, mlflow_port=mlflow_port,
                            on_ready=on_ready, on_start=on_start)
    finally:
        status.stop()
    for name, url in result.external.items():
        console.print(escape(f"{servers.TITLES[name]:<8} uses the configured server {redact(url)}"
                             " (not started here)"), soft_wrap=True)
    if not result.started and result.servers:
        console.print("already running:", style="bold")
    elif result.started:
        others = [servers.TITLES[n] for n in result.servers if n not in result.started]
        console.print(f"started {' and '.join(servers.TITLES[n] for n in result.started)} in "
                      f"{time.monotonic() - t0:.1f} s" + (f" ({', '.join(others)} already running)" if others else "")
                      + ":", style="bold")
    for name in ("prefect", "mlflow"):
        if name in result.servers:
            console.print(escape(servers.summary(name, result.servers[name])), soft_wrap=True, highlight=False)
    if result.servers:
        console.print(f"logs in {ws.state_dir / servers.LOG_DIR}; commands of this workspace use these servers; "
                      "`modelcycle down` stops them", style="muted", soft_wrap=True)


def down(ctx: typer.Context) -> None:
    """Stop the servers `modelcycle up` started for this workspace (and nothing else: a process
    whose pid was since reused is left alone). Commands go back to the embedded backends."""
    from modelcycle.lifecycle import servers

    ws = common.load_workspace(ctx)
    with err_console.status("stopping the servers"):
        stopped = servers.down(ws)
    if not stopped:
        console.print("no servers running for this workspace")
        return
    for item in stopped:
        title = servers.TITLES.get(item.name, item.name)
        if item.how == "not running":
            console.print(f"{title}: was no longer running (pid {item.pid}); forgotten")
        elif item.how == "killed":
            console.print(f"{title}: did not stop within {servers.STOP_TIMEOUT_S:.0f} s; killed (pid {item.pid})")
        else:
            console.print(f"{title}: stopped (pid {item.pid})")


def register(app: typer.Typer) -> None:
    app.command("up", short_help="Start the workspace's Prefect and MLflow servers with their dashboards.")(up)
    app.command("down", short_help="Stop the servers `modelcycle up` started.")(down)
