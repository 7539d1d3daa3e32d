"""modelcycle init: create a workspace."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from modelcycle.cli import examples
from modelcycle.config.secrets import SOURCE_PASSWORD_VAR
from modelcycle.console import console, err_console
from modelcycle.errors import ConfigError


def init(
    directory: Path = typer.Argument(..., help="Folder to create the workspace in (new or empty).",
                                     file_okay=False),
    example: str | None = typer.Option(
        None, "--example", "-e", help=f"Start from an example: {examples.about()}."),
    source: str | None = typer.Option(
        None, "--source", help="Your own data: a glob of CSV/Parquet files, a DuckDB file (with "
        "--table) or a SQLAlchemy URL (with --table). A password in the URL is moved to .env "
        "(git-ignored, mode 0600) and modelcycle.yaml refers to it; a URL may also refer to "
        "environment variables itself, 'postgresql+psycopg://me:${PGPASSWORD}@host/db'."),
    password_var: str = typer.Option(
        SOURCE_PASSWORD_VAR, "--password-var", help="The variable in .env that receives the source "
        "URL's password."),
    table: str | None = typer.Option(None, "--table", help="The table, for a DuckDB or SQL source."),
    timestamp: str | None = typer.Option(None, "--timestamp", help="The column placing a row in time."),
    target: str | None = typer.Option(None, "--target", help="The column to predict."),
    task: str = typer.Option("regression", "--task", help="regression or classification."),
    metric: str | None = typer.Option(
        None, "--metric", help="mae, rmse, mape, r2 (regression); accuracy, f1, log_loss, roc_auc "
        "(classification). Default: mae or accuracy."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="The bar a serving model must meet on the metric (e.g. 2.5 for MAE)."),
    name: str | None = typer.Option(None, "--name", help="The model's name (default: the folder's name)."),
    rows_per_month: int | None = typer.Option(
        None, "--rows-per-month", min=1000, help="taxifare: rides simulated per month."),
    force: bool = typer.Option(False, "--force", help="Allow a non-empty folder (nothing is overwritten)."),
) -> None:
    """Create a workspace: a git repository with DVC, modelcycle.yaml, params.yaml, dvc.yaml and
    embedded MLflow, Prefect and DVC-remote backends under .modelcycle/.

    Either --example taxifare, or your own data with --source, --timestamp, --target, --threshold:

      modelcycle init rides --example taxifare

      modelcycle init prices --source "data/*.csv" --timestamp sold_at --target price --threshold 25000
    """
    import re

    from rich.markup import escape

    from modelcycle.lifecycle import workspace as wsmod

    root = directory.expanduser().resolve()

    def progress(text: str) -> None:
        err_console.print(f"[muted]· {escape(text)}[/muted]", soft_wrap=True)

    def warn(text: str) -> None:
        err_console.print(f"[escalate]warning:[/escalate] {escape(text)}", soft_wrap=True)

    if example and source:
        raise ConfigError("give --example or --source, not both")
    first_window = "YYYY-MM"
    if example:
        first_window = getattr(examples.package(example), "FIRST_WINDOW", first_window)
        options = {"rows_per_month": rows_per_month} if rows_per_month is not None else {}
        ws = examples.create(example, root, force=force, progress=progress, **options)
    elif source:
        missing = [flag for flag, v in (("--timestamp", timestamp), ("--target", target),
                                        ("--threshold", threshold)) if v is None]
        if missing:
            raise ConfigError(f"a workspace for your own data needs {', '.join(missing)}",
                              "for example: modelcycle init prices --source 'data/*.csv' --timestamp sold_at "
                              "--target price --threshold 25000")
        assert timestamp is not None and target is not None and threshold is not None
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_var):
            raise ConfigError(f"--password-var '{password_var}' is not a variable name",
                              "use letters, digits and _, e.g. SALES_DB_PASSWORD")
        kind, url = _source_kind(source, table, root)
        ws = wsmod.create_from_source(
            root, name=name or _name(root), kind=kind, url=url, table=table, timestamp=timestamp,
            target=target, task=task, metric=metric or ("mae" if task == "regression" else "accuracy"),
            threshold=threshold, force=force, password_variable=password_var, progress=progress, warn=warn)
    else:
        raise ConfigError("say what the workspace is for",
                          "use --example taxifare, or --source with --timestamp, --target and --threshold")
    console.print(f"[promote]created[/promote] workspace [path]{ws.root}[/path] for model "
                  f"[bold]{ws.config.name}[/bold]")
    console.print(f"next: [bold]cd {os.path.relpath(ws.root)} && modelcycle run --window "
                  f"{first_window}[/bold]")


def _name(root: Path) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", root.name).strip("-.") or "model"
    return cleaned if cleaned[0].isalpha() else f"m-{cleaned}"


def _source_kind(source: str, table: str | None, root: Path) -> tuple[str, str]:
    """Guess the kind of source, and write file paths relative to the workspace when inside it."""
    if "://" in source and not source.startswith("duckdb://"):
        if not table:
            raise ConfigError("a SQL source needs --table")
        return "sql", source
    path = Path(source.removeprefix("duckdb:///")).expanduser()
    absolute = path if path.is_absolute() else Path.cwd() / path
    # relative to the workspace (its config resolves paths from there), so both can move together
    shown = os.path.relpath(os.path.abspath(absolute), root)
    if source.endswith((".duckdb", ".db")) or source.startswith("duckdb://"):
        if not table:
            raise ConfigError("a DuckDB source needs --table")
        return "duckdb", shown
    return "files", shown


def register(app: typer.Typer) -> None:
    app.command("init", short_help='Create a workspace (git + DVC, config, embedded MLflow/Prefect/DVC remote).')(init)
