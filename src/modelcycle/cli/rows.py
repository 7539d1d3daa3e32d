"""modelcycle rows: a checked-out cycle's rows (raw, clean, train, holdout) as a table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from modelcycle.cli import common
from modelcycle.console import console


def rows(
    ctx: typer.Context,
    which: str = typer.Argument("train", help="raw, clean, train or holdout."),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="Write the rows to this file (.parquet or .csv) instead of printing some."),
    head: int = typer.Option(10, "--head", min=0, help="How many rows to print (without --out)."),
) -> None:
    """The rows the checked-out cycle read, validated, trained on or held out, rebuilt from the
    month partitions its manifest (data/<set>.json) names and checked against the digest the cycle
    recorded. `git checkout <tag> && dvc checkout` first gives an earlier cycle's exact rows.
    In Python: `modelcycle.lifecycle.datasets.rows(Workspace.load("."), "train")`."""
    from modelcycle.errors import ConfigError
    from modelcycle.lifecycle import datasets

    ws = common.load_workspace(ctx)
    frame = datasets.rows(ws, which)
    where = datasets.layout(ws).path(which)
    if out is None:
        console.print(escape(f"{which}: {len(frame)} rows, {len(frame.columns)} columns (from {where})"),
                      soft_wrap=True)
        if head:
            console.print(escape(frame.head(head).to_string()), soft_wrap=True)
        return
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: cannot write a {suffix or 'suffix-less'} file",
                          "name a .parquet or a .csv file")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    console.print(escape(f"wrote the {len(frame)} {which} rows (from {where}) to {out}"), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("rows", short_help="A cycle's rows (raw, clean, train, holdout) as a table.")(rows)
