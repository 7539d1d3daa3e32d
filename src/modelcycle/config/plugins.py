"""Kinds named in modelcycle.yaml, and the installed packages that add more.

Two fields of modelcycle.yaml name a kind of thing the core builds from a table:
``source.kind`` (the table is :data:`modelcycle.sources.SOURCES`) and ``model.trainer`` (the
table is :data:`modelcycle.steps.trainers.TRAINERS`). The built-in kinds are listed here too, so
that modelcycle.yaml is checked when it is loaded, before anything is built: this layer names the
kinds, the layers above build them (a test keeps the lists and the tables in step).

A user's installed package adds a kind with an entry point, in its ``pyproject.toml``::

    [project.entry-points."modelcycle.sources"]
    images = "my_package.images:build_source"     # (config, workspace root) -> Source

    [project.entry-points."modelcycle.trainers"]
    torch = "my_package.torch:TorchTrainer"       # () -> Trainer

Only the entry points' names are read when a config loads; the object an entry point names is
imported when a cycle builds that kind (:func:`load_entry_point`). A built-in kind wins over an
entry point of the same name.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from typing import Any

from modelcycle.errors import ConfigError

SOURCE_GROUP = "modelcycle.sources"
TRAINER_GROUP = "modelcycle.trainers"

#: The kinds modelcycle itself builds (the keys of ``sources.SOURCES`` / ``steps.trainers.TRAINERS``).
BUILTIN_SOURCES: tuple[str, ...] = ("duckdb", "sql", "files", "images")
BUILTIN_TRAINERS: tuple[str, ...] = ("sklearn", "torch")

_BUILTINS = {SOURCE_GROUP: BUILTIN_SOURCES, TRAINER_GROUP: BUILTIN_TRAINERS}


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=group))


def entry_point_names(group: str) -> list[str]:
    """The kinds installed packages add to ``group``, sorted."""
    return sorted({ep.name for ep in _entry_points(group)})


def known_kinds(group: str) -> list[str]:
    """The built-in kinds of ``group``, then the installed packages' kinds."""
    builtins = _BUILTINS[group]
    return [*builtins, *(n for n in entry_point_names(group) if n not in builtins)]


def unknown_kind(group: str, field: str, value: str, known: list[str]) -> str:
    """The message for a kind no table and no entry point knows: the value, the kinds known, the
    closest one."""
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    mean = f"; did you mean '{close[0]}'?" if close else ""
    return (f"unknown {field} '{value}' (known: {', '.join(known)}){mean} "
            f"(a package can add a kind with an entry point in the group '{group}')")


def check_kind(group: str, field: str, value: str) -> str:
    """``value`` when ``group`` knows it; else a ValueError (pydantic turns it into the config
    error naming the file and the field). Installed packages are read only for a kind that is
    not built in: a config is loaded several times a cycle."""
    if value in _BUILTINS[group]:
        return value
    known = known_kinds(group)
    if value not in known:
        raise ValueError(unknown_kind(group, field, value, known))
    return value


def load_entry_point(group: str, name: str, field: str) -> Any:
    """The object the installed entry point ``name`` of ``group`` names; a ConfigError naming the
    field and the package when there is none or it does not import."""
    found = [ep for ep in _entry_points(group) if ep.name == name]
    if not found:
        raise ConfigError(unknown_kind(group, field, name, known_kinds(group)),
                          f"fix `{field}` in modelcycle.yaml, or install the package that provides it")
    ep = found[0]
    try:
        return ep.load()
    except Exception as exc:  # a user's package: report its own error
        raise ConfigError(
            f"`{field}: {name}` comes from the entry point {ep.value} (group '{group}'), which does not "
            f"load: {type(exc).__name__}: {exc}",
            "reinstall or fix the package that provides it") from exc
