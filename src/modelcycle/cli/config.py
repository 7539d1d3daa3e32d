"""modelcycle config: every key of modelcycle.yaml and params.yaml, described."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel

from modelcycle.console import console


def _walk(model: type[BaseModel], prefix: str, out: list[tuple[str, str, str]]) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation: Any = field.annotation
        args = getattr(annotation, "__args__", ()) or ()
        nested = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is not None:
            out.append((key, "section", (nested.__doc__ or "").strip().splitlines()[0] if nested.__doc__ else ""))
            _walk(nested, key + ".", out)
            continue
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        out.append((key, default, field.description or ""))


def config(
    params: bool = typer.Option(False, "--params", help="Describe params.yaml instead of modelcycle.yaml."),
) -> None:
    """Describe every key of modelcycle.yaml (or params.yaml): default and meaning."""
    from rich.markup import escape
    from rich.table import Table

    from modelcycle.config.models import Params, ProjectConfig
    from modelcycle.config.secrets import REFERENCE_FIELDS

    rows: list[tuple[str, str, str]] = []
    _walk(Params if params else ProjectConfig, "", rows)
    caption = None if params else (
        "URL fields (" + ", ".join(REFERENCE_FIELDS) + ") may refer to environment variables, "
        "user:${DB_PASSWORD}@host, resolved from the environment or from .env beside modelcycle.yaml "
        "(git-ignored): keep passwords out of the file git keeps.")
    table = Table(header_style="bold", show_lines=False, title="params.yaml" if params else "modelcycle.yaml",
                  caption=escape(caption) if caption else None, caption_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("default")
    table.add_column("meaning")
    for key, default, text in rows:
        table.add_row(escape(key), "" if default == "section" else escape(default), escape(text),
                      style="bold" if default == "section" else None)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("config", short_help='Describe every key of modelcycle.yaml or params.yaml.')(config)
