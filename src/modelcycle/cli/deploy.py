"""modelcycle deploy / worker: the cycle as a Prefect deployment, and the process that runs it."""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.markup import escape

from modelcycle.cli import common
from modelcycle.config import Workspace
from modelcycle.console import console, err_console
from modelcycle.errors import WorkspaceError

#: the folder of the workers' logs, in the workspace's state folder (.modelcycle)
WORKER_LOGS = "workers"
NEEDS_SERVER = ("start the workspace's servers with `modelcycle up`, or point backends.prefect_api_url "
                "(or PREFECT_API_URL) at a running Prefect server")


def connect_prefect(ws: Workspace, *, verbose: bool, what: str) -> str:
    """Point Prefect at the workspace's long-lived server (deployments live there); its URL."""
    from modelcycle.lifecycle import runtime

    url = ws.prefect_api_url
    if not url:
        raise WorkspaceError(f"{what} needs a Prefect server that keeps running, and this workspace has "
                             "none (commands start a temporary one)", NEEDS_SERVER)
    runtime.configure(prefect_home=ws.prefect_home, api_url=url, verbose=verbose)
    runtime.check_api()
    return url


def deploy(
    ctx: typer.Context,
    cron: str | None = typer.Option(None, "--cron", help='Run on a cron schedule, e.g. "0 3 1 * *" '
                                    "(03:00 on the first of each month)."),
    interval: str | None = typer.Option(None, "--interval", help="Run every span of time: 30s, 5m, 1h, 1d."),
    timezone: str | None = typer.Option(None, "--timezone", help="The schedule's time zone (IANA name; "
                                        "default UTC)."),
    name: str | None = typer.Option(None, "--name", help="The deployment's name (default: the model's)."),
    list_: bool = typer.Option(False, "--list", help="List the cycle's deployments on the server."),
    delete: bool = typer.Option(False, "--delete", help="Delete this workspace's deployment."),
) -> None:
    """Deploy the cycle to the workspace's Prefect server: each run processes the next window that
    is complete in the source and not processed yet (a window processed already is a no-op), on
    the schedule you give and whenever `modelcycle worker` sees a new window complete in the
    source. An escalation waits for a human in the Prefect UI (or `modelcycle approve`). Needs
    `modelcycle up` (or a team's server in backends.prefect_api_url); `modelcycle worker` runs
    the deployed cycles.

    The deployment names the workspace by its absolute path: a worker on another machine runs
    the cycle on the workspace at that same path (a shared filesystem). Cycles of different
    models run in parallel; two cycles of one model never do, on any machine: each holds the
    server's concurrency limit modelcycle-<model> (one slot) for the whole cycle, and a cycle
    that waits for another says so in its log."""
    from modelcycle.lifecycle import deployments

    ws = common.load_workspace(ctx)
    if list_ and delete:
        raise typer.BadParameter("give --list or --delete, not both")
    if (list_ or delete) and (cron or interval or timezone):
        raise typer.BadParameter("--list and --delete take no schedule")
    deployments.check_schedule(cron, interval, timezone)
    common.check_backends(ws, "prefect")
    url = connect_prefect(ws, verbose=common.options(ctx).verbose, what="a deployment")
    if list_:
        found = deployments.listed()
        if not found:
            console.print("no deployment of the cycle on this server; create one with `modelcycle deploy --cron ...`")
            return
        for d in found:
            when = ", ".join(d.schedules) or "no schedule (fresh data only)"
            mark = " (paused)" if d.paused else ""
            console.print(f"[bold]{escape(d.name)}[/bold]{mark}  {escape(when)}  pool {d.work_pool}  "
                          f"[muted]{escape(d.workspace)}  id {d.id}[/muted]", soft_wrap=True)
        return
    if delete:
        gone = deployments.delete(ws, name)
        console.print(f"deleted the deployment {deployments.FLOW_NAME}/{gone.name}" if gone
                      else "this workspace has no deployment (nothing deleted)")
        return
    d = deployments.deploy(ws, cron=cron, interval=interval, timezone=timezone, name=name)
    when = ", ".join(d.schedules) or "no schedule: fresh data only"
    console.print(f"deployed [bold]{deployments.FLOW_NAME}/{escape(d.name)}[/bold] ({escape(when)}; "
                  f"fresh data starts a run too)\n"
                  f"[muted]Prefect {escape(url)}  work pool {d.work_pool}  id {d.id}[/muted]\n"
                  "runs start when a worker serves the pool: [bold]modelcycle worker[/bold]", soft_wrap=True)


def worker(
    ctx: typer.Context,
    check_seconds: float | None = typer.Option(None, "--check-every", min=1.0, help="Seconds between two "
                                               "looks at the source (default: automation.check_seconds)."),
    watch_source: bool = typer.Option(True, "--watch/--no-watch", help="Watch the source for fresh data and "
                                      "drift (--no-watch: only run what the schedule and others start; one "
                                      "watcher per workspace is enough when several workers serve it)."),
    name: str | None = typer.Option(None, "--name", help="The worker's name on the Prefect server "
                                    "(default: <host>-<pid>, the host from MODELCYCLE_HOST or the hostname); "
                                    "every worker serving the pool needs its own."),
) -> None:
    """Run the deployed cycles until stopped (Ctrl-C): Prefect's process worker for the work pool,
    and the data watcher, which looks at the source every few seconds (one max(timestamp)
    query) and announces a newly complete window with a Prefect event; the deployment's trigger
    then starts its cycle.

    Several machines: start `modelcycle worker` on each, with the same PREFECT_API_URL (or
    backends.prefect_api_url), the same MLflow tracking server and DVC remote, and the workspace
    at the same absolute path (a shared filesystem: the deployment names it by its path). Each
    worker takes runs from the same work pool; a run's log and its MLflow run (tags
    modelcycle.host and modelcycle.worker, shown by `modelcycle status` and `history`) say which
    machine and worker ran it. Cycles of different models run at
    once; two cycles of one model wait for each other (the server's concurrency limit
    modelcycle-<model>, besides the workspace's file lock). Watch the source from one worker
    only (--no-watch on the others). Each worker keeps its own log, named after it:
    .modelcycle/workers/<name>.log (the worker says where when it starts)."""
    import os

    from modelcycle.lifecycle import interrupts, modellock, watch
    from modelcycle.lifecycle.services import open_services

    ws = common.load_workspace(ctx)
    common.check_backends(ws)
    url = connect_prefect(ws, verbose=common.options(ctx).verbose, what="a worker")
    every = check_seconds or ws.config.automation.check_seconds
    pool = ws.config.automation.work_pool
    name = name or f"{modellock.machine()}-{os.getpid()}"
    log_path = worker_log(ws, name)
    process = watch.start_worker(pool, log_path=log_path, name=name)
    stop = threading.Event()
    stopped_by = ""
    try:
        try:
            watch.wait_started(process, log_path)
        except RuntimeError as exc:
            raise WorkspaceError(str(exc), NEEDS_SERVER) from exc
        svc = open_services(ws.root, committable=False)
        watching = (f"watching {escape(svc.source.describe())} every {every:g}s" if watch_source
                    else "not watching the source (--no-watch)")
        console.print(f"worker [bold]{escape(name)}[/bold] on {escape(modellock.machine())} serving work pool "
                      f"[bold]{pool}[/bold] at {escape(url)} (its log: {escape(str(log_path))})\n"
                      f"{watching}; Ctrl-C stops", soft_wrap=True)

        def report(text: str) -> None:
            err_console.print(f"[muted]· {escape(text)}[/muted]", soft_wrap=True)

        if watch_source:
            threading.Thread(target=watch.watch, args=(svc, stop), kwargs={"every": every, "report": report},
                             name="modelcycle-watch", daemon=True).start()
        while not stop.wait(1.0):
            if process.poll() is not None:
                raise WorkspaceError(f"Prefect's worker stopped (exit code {process.returncode}); its log is "
                                     f"{log_path}", "fix what its log says, then start `modelcycle worker` again")
    except interrupts.Interrupted as exc:  # Ctrl-C or SIGTERM: how a worker is stopped
        stopped_by = "Ctrl-C" if exc.signum == 2 else "SIGTERM"
    finally:
        stop.set()
        with err_console.status("stopping the worker"):
            watch.stop_worker(process)
    console.print("worker stopped" + (f" ({stopped_by})" if stopped_by else ""))


def worker_log(ws: Workspace, name: str) -> Path:
    """The log of the worker ``name``: ``.modelcycle/workers/<name>.log``, one per worker, so that
    workers sharing a workspace (several machines on a shared filesystem) never write into one
    file. A name that is not safe as a file name has its other characters replaced by ``_`` and
    a short digest of the name added (two such names keep two files)."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:80]
    if safe != name:
        safe = f"{safe or 'worker'}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return ws.state_dir / WORKER_LOGS / f"{safe}.log"


def _flowed(doc: str | None) -> str:
    """A docstring as help text: each paragraph one line, which the terminal wraps (the help
    keeps the line breaks of every paragraph after the first)."""
    import inspect

    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc or "").split("\n\n"))


def register(app: typer.Typer) -> None:
    app.command("deploy", help=_flowed(deploy.__doc__),
                short_help="Deploy the cycle to Prefect: on a schedule and on fresh data.")(deploy)
    app.command("worker", help=_flowed(worker.__doc__),
                short_help="Run the deployed cycles and watch the source for fresh data.")(worker)
