"""Helpers the verbs share: the root options, find the workspace, set Prefect up, show progress."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.markup import escape

from modelcycle.config import Workspace
from modelcycle.console import err_console
from modelcycle.notify import CycleOutcome, Event, EventKind


@dataclass(frozen=True)
class CliOptions:
    """The root command's options (``modelcycle -v -w DIR VERB``), kept in Click's context
    (``ctx.obj``) by the root callback; every verb's context inherits it."""

    verbose: bool = False
    workspace: Path | None = None


def options(ctx: typer.Context) -> CliOptions:
    """The root options a verb runs under (the defaults when the verb was invoked without the root
    command, as a test may do)."""
    found = ctx.find_object(CliOptions)
    return found if found is not None else CliOptions()


def load_workspace(ctx: typer.Context) -> Workspace:
    """The workspace --workspace names, or the nearest one at or above the current folder."""
    return Workspace.load(options(ctx).workspace)


def check_backends(ws: Workspace, *which: str) -> None:
    """End the command with a clear error if one of the backends it uses (``mlflow``,
    ``prefect``, ``dvc``; all when none is named) does not answer within a few seconds, instead
    of waiting minutes for a library's retries. Call it once the command's arguments are read."""
    from modelcycle.lifecycle import backends

    backends.require(ws, which or backends.ALL)


def begin_prefect(prefect_home: Path, api_url: str | None, *, verbose: bool) -> Any:
    """Point Prefect at the workspace's home (or the configured server) before importing it, and
    start the local server; returns what :func:`await_prefect` waits for."""
    from modelcycle.lifecycle import runtime

    runtime.configure(prefect_home=prefect_home, api_url=api_url, verbose=verbose)
    return runtime.start_local_server()


def await_prefect(server: Any, ws: Workspace) -> None:
    """Import what the cycles use (Prefect, MLflow, DVC, the estimator's library: seconds of one
    core) while the server starts on the other, then wait until it answers."""
    from modelcycle.errors import WorkspaceError
    from modelcycle.lifecycle import flows, stages  # noqa: F401
    from modelcycle.versioning import setup as versioning_setup

    versioning_setup.prewarm().join()
    stages.warm_up(ws)
    if server is not None:
        with err_console.status("starting Prefect's local server"):
            try:
                server.wait()
            except RuntimeError as exc:
                raise WorkspaceError(str(exc), "run again with --verbose; or point backends.prefect_api_url "
                                     "(or PREFECT_API_URL) at a running Prefect server") from exc


def prepare_prefect(ws: Workspace, *, verbose: bool) -> None:
    await_prefect(begin_prefect(ws.prefect_home, ws.prefect_api_url, verbose=verbose), ws)


@contextlib.contextmanager
def cycle_progress(total: int, title: str) -> Iterator[Progress]:
    """A progress bar over windows, whose text follows the stage each cycle is in."""
    from modelcycle.lifecycle import services

    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[window]}[/bold]"),
                        TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=False)
    task_id = progress.add_task(title, total=total, window="")

    def on_progress(window: str, text: str) -> None:
        progress.update(task_id, window=window, description=text)
        if text.startswith("waiting for "):  # a wait stays on the screen (another machine's cycle of the model)
            progress.console.print(f"{escape(window)}: {escape(text)}", soft_wrap=True)

    def on_event(event: Event) -> None:
        from modelcycle.cli.render import decision_line

        if event.kind != EventKind.APPROVAL:  # a human's answer to an escalation is not a cycle
            progress.advance(task_id)
        if event.outcome == CycleOutcome.FAILED and total == 1:
            return  # the error itself is printed next, as one paragraph
        progress.console.print(decision_line(event), soft_wrap=True)

    with progress, services.using(echo=on_event, progress=on_progress):
        yield progress


NO_WAIT_HELP = ("If another modelcycle command is changing the workspace, stop at once with an error "
                "naming it, instead of waiting for it to finish.")


def command_line() -> str:
    """How this command was typed (for the lock's holder note), shortened."""
    import sys

    text = " ".join(["modelcycle", *sys.argv[1:]])
    return text if len(text) <= 120 else text[:117] + "..."


@contextlib.contextmanager
def locked(ws: Workspace, *, no_wait: bool) -> Iterator[None]:
    """Hold the workspace's lock for a command that changes it; say whom it waits for."""
    from modelcycle.lifecycle import lock

    def on_wait(holder: lock.Holder) -> None:
        err_console.print(f"[escalate]waiting:[/escalate] the workspace is busy: {holder.describe()}; "
                          "this command starts when it ends (--no-wait stops instead)", soft_wrap=True)

    with lock.hold(ws.root, command_line(), wait=not no_wait, on_wait=on_wait):
        yield


def resolve_input_path(text: str) -> Path:
    return Path(text).expanduser()
