"""The ``modelcycle`` command: one verb per module, one place that maps errors to exit codes.

A verb parses its options, calls one function of the layers below and renders the result.
Errors a user can cause are :class:`~modelcycle.errors.ModelcycleError`: they print as one
paragraph (what happened, what to do) with a non-zero exit code; tracebacks only with
``--verbose``.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TextIO

import typer
from rich.markup import escape

from modelcycle import __version__
from modelcycle.cli.common import CliOptions
from modelcycle.console import err_console

app = typer.Typer(
    name="modelcycle",
    help="Keep a machine-learning model good over time: fetch fresh data, validate it, train a "
    "challenger while scoring the champion on the same held-out rows, decide, version and "
    "register in one transaction, notify; serve the champion, following it when it moves.\n\n"
    "Start with [bold]modelcycle demo[/bold], or [bold]modelcycle init DIR --example taxifare[/bold].",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (it may be replaced after start-up)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class _NotPrefect(logging.Filter):
    """Prefect's records (a failed task's traceback among them) go to its API and UI; without
    --verbose the terminal shows modelcycle's one-paragraph errors instead."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or not record.name.startswith("prefect")


def _log_to_stderr(verbose: bool) -> None:
    """Library logs on stderr: warnings and up, everything with --verbose."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)  # main() may run more than once in one process (tests)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_NotPrefect(verbose))
    # a handler-level filter: Prefect's loggers carry their own levels and propagate to the root
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        for noisy in ("alembic", "mlflow", "dvc", "urllib3", "git", "scmrepo", "lightgbm"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def _version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # main()'s look at the options (below) prints nothing
        print(f"modelcycle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show library logs and full tracebacks."),
    workspace: Path | None = typer.Option(
        None, "--workspace", "-w", help="The workspace folder (default: the nearest folder at or above "
        "the current one holding modelcycle.yaml).", file_okay=False),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    # every verb's context inherits this object: common.options(ctx), common.load_workspace(ctx)
    ctx.obj = CliOptions(verbose=verbose, workspace=workspace)
    _log_to_stderr(verbose)


def _register() -> None:
    """Add the verbs to the app (once)."""
    if app.registered_commands:
        return
    from modelcycle.cli import (
        approve,
        backends,
        backtest,
        config,
        demo,
        deploy,
        doctor,
        history,
        init,
        predict,
        promote,
        push,
        report,
        rollback,
        rows,
        run,
        serve,
        shadow_report,
        status,
        step,
        up,
    )

    for module in (demo, init, run, backtest, status, history, predict, serve, shadow_report, promote, rollback,
                   up, deploy, approve, step, doctor, config, report, push, rows, backends):
        module.register(app)


def _asked_verbose(argv: list[str] | None) -> bool:
    """Whether the command line gives the root command --verbose.

    main() needs this to decide between a traceback and one paragraph when a verb fails, but such
    an error reaches main() only after Click has closed the command's context, and the options in
    ``ctx.obj`` with it. So main() reads the root options before the app runs, with Click's own
    parser in resilient mode (no errors, no help, no --version, no verb invoked): ``-vw DIR``,
    ``-w DIR -v`` and an option after the verb are read exactly as the app reads them. A command
    line that does not parse is the app's to report; it is not verbose.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        command = typer.main.get_command(app)
        with command.make_context("modelcycle", args, resilient_parsing=True) as ctx:
            return bool(ctx.params.get("verbose"))
    except Exception:  # noqa: BLE001 - the app reports a command line it cannot read
        return False


def _interrupted(signum: int) -> None:
    from modelcycle.lifecycle import interrupts

    what = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
    note = interrupts.last_rollback()
    err_console.print(f"[error]{what}[/error]: "
                      + (escape(note) if note else "nothing was changed, or the next run or "
                         "`modelcycle doctor` repairs what a cycle left half-done"),
                      highlight=False, soft_wrap=True)
    sys.exit(interrupts.EXIT_CODES.get(signal.Signals(signum), 130))


_OS_HINTS = {
    errno.ENOSPC: "free some space on that disk (or move the workspace), then run again",
    errno.EDQUOT: "free some space within your disk quota, then run again",
    errno.EACCES: "give yourself write permission there (`chmod u+w`), or run as the folder's owner",
    errno.EPERM: "give yourself write permission there (`chmod u+w`), or run as the folder's owner",
    errno.EROFS: "the file system is read-only: move the workspace to a writable disk",
}


_OS_WORDS = {"no space left": errno.ENOSPC, "quota": errno.EDQUOT, "permission denied": errno.EACCES,
             "read-only file system": errno.EROFS}


def _os_error(exc: OSError) -> None:
    """A file the command could not read or write: name it, say why and what to do."""
    why = exc.strerror or str(exc)
    said = f"cannot use {exc.filename}: {why}" if exc.filename else f"a file or connection failed: {why}"
    err_console.print(f"[error]error:[/error] {escape(said)}", highlight=False, soft_wrap=True)
    code = exc.errno or next((n for w, n in _OS_WORDS.items() if w in str(exc).lower()), 0)
    hint = _OS_HINTS.get(code, "check the path and its permissions, then run again")
    err_console.print(f"[hint]{hint}; a cycle that stopped on this was rolled back[/hint]",
                      highlight=False, soft_wrap=True)
    sys.exit(74)


def main(argv: list[str] | None = None) -> None:
    from modelcycle.errors import ModelcycleError
    from modelcycle.lifecycle import interrupts

    handlers = interrupts.install()  # first: a signal from here on stops the command cleanly
    verbose = False
    try:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("DVC_NO_ANALYTICS", "1")
        os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
        # MLflow's HTTP client retries 7 times with a doubling wait (over 4 minutes) against a
        # server that went away; commands check the server first (lifecycle.backends), and give
        # up on one that stops answering after ~15 s of retries (the user's own values win)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        # NumPy asks the kernel for 2 MB pages for every large array. A cycle touches each of its
        # rows' arrays once, and where the first touch of such pages is slow (virtual machines:
        # 0.1-2.5 s per 560 MB, against a steady 0.4 s with 4 KB pages) that cost 1.2 s of a
        # 10M-row cycle's work on its rows; set before NumPy is imported (the user's value wins)
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
        _register()
        verbose = _asked_verbose(argv)
        app(args=argv, standalone_mode=True)
    except ModelcycleError as exc:
        if verbose:
            err_console.print_exception(show_locals=False)
        err_console.print(f"[error]error:[/error] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err_console.print(f"[hint]{escape(exc.hint)}[/hint]", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except BaseException as exc:
        signum = interrupts.signal_of(exc)
        if signum is not None:
            _interrupted(signum)
        if isinstance(exc, OSError):
            if verbose:
                err_console.print_exception(show_locals=False)
            _os_error(exc)
        if not isinstance(exc, Exception):
            raise  # SystemExit (typer's normal exit), GeneratorExit
        # a bug in modelcycle or a library: say so plainly
        if verbose:
            err_console.print_exception(show_locals=False)
        else:
            err_console.print(f"[error]unexpected error:[/error] {escape(f'{type(exc).__name__}: {exc}')}",
                              highlight=False, soft_wrap=True)
            err_console.print("[hint]run again with --verbose for the traceback, and please report it[/hint]")
        sys.exit(70)
    finally:
        interrupts.restore(handlers)  # main() may be called again in one process (tests)


if __name__ == "__main__":
    main()
