"""modelcycle predict: predictions from the champion (or any version) for records in a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelcycle.cli import common
from modelcycle.console import err_console
from modelcycle.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd


def _read(path: str) -> pd.DataFrame:
    import pandas as pd

    if path == "-":
        text = sys.stdin.read()
        import io

        return pd.read_json(io.StringIO(text), orient="records", lines=text.lstrip().startswith("{"))
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist", "give a CSV, JSON (records) or Parquet file, or - for JSON on stdin")
    try:
        if p.suffix.lower() == ".parquet":
            return pd.read_parquet(p)
        if p.suffix.lower() in (".json", ".jsonl", ".ndjson"):
            lines = p.suffix.lower() != ".json" or p.read_text(encoding="utf-8").lstrip().startswith("{")
            return pd.read_json(p, orient="records", lines=lines)
        return pd.read_csv(p)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {p}: {exc}", "give a CSV, JSON (a list of records) or Parquet file") from exc


def predict(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="CSV, JSON (records or lines) or Parquet file; - reads JSON from stdin."),
    alias: str = typer.Option("champion", "--alias", help="champion (or Production) / challenger (or Staging)."),
    version: str | None = typer.Option(None, "--version", help="A model version number instead of an alias."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write CSV/JSON/Parquet here "
                                          "(by suffix) instead of CSV on stdout."),
    proba: bool = typer.Option(False, "--proba", help="Also write the class probabilities: a proba_<class> "
                               "column per class after `prediction` (classification workspaces)."),
) -> None:
    """Predict with the champion: raw records in (the source's columns; extra columns are kept),
    the records with a `prediction` column out (and with --proba a `proba_<class>` column per
    class). Any MLflow client can do the same with mlflow.pyfunc.load_model("models:/NAME@champion")
    and .predict(records) or .predict(records, params={"output": "proba"})."""
    from modelcycle.registry.base import canonical_alias
    from modelcycle.registry.workspace import open_registry
    from modelcycle.steps.validate import check_schema

    ws = common.load_workspace(ctx)
    task = ws.config.data.task
    if proba and task != "classification":
        raise ConfigError(f"--proba: class probabilities exist only for classifiers, and this workspace's "
                          f"model is a {task} model (data.task in modelcycle.yaml)",
                          "drop --proba to get the predicted values")
    common.check_backends(ws, "mlflow")
    reg = open_registry(ws)
    frame = _read(source)
    if frame.empty:
        raise DataError(f"{source} holds no records")
    data = ws.config.data
    typed = check_schema(frame, {k: v for k, v in data.columns.items() if k != data.target},
                         where=f"in {source}")
    if version:
        model = reg.load_model(reg.get_version(ws.config.name, version).source)
        which = f"v{version}"
    else:
        name = canonical_alias(alias)
        model = reg.load_alias(ws.config.name, name)
        which = name
    out = frame.copy()
    out["prediction"] = model.predict(typed)
    if proba:
        probabilities = model.probabilities(typed)
        for column in probabilities.columns:
            out[column] = probabilities[column].to_numpy()
    err_console.print(f"[muted]{len(out)} predictions from {ws.config.name} {which}[/muted]")
    if output is None:
        out.to_csv(sys.stdout, index=False)
    elif output.suffix.lower() == ".parquet":
        out.to_parquet(output, index=False)
    elif output.suffix.lower() == ".json":
        out.to_json(output, orient="records", date_format="iso", indent=1)
    else:
        out.to_csv(output, index=False)


def register(app: typer.Typer) -> None:
    app.command("predict", short_help='Predict with the champion (or any version) for records in a file.')(predict)
