"""Data sources, configured not coded: SQL (DuckDB or SQLAlchemy), files, image folders, or a kind of your own.

``source.kind`` in modelcycle.yaml names a factory: one of :data:`SOURCES` (the built-in kinds),
or an entry point of an installed package in the group ``modelcycle.sources`` (see
:mod:`modelcycle.config.plugins`). A factory is called with the whole loaded config (a source
reads ``source``'s fields and ``data.timestamp``, some also ``data.columns``) and the workspace
root (relative paths are relative to it), and returns a :class:`~modelcycle.sources.base.Source`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from modelcycle.config.models import ProjectConfig
from modelcycle.config.plugins import SOURCE_GROUP, load_entry_point
from modelcycle.errors import ConfigError
from modelcycle.sources.base import Source, tracked_paths

SourceFactory = Callable[[ProjectConfig, Path], Source]


def _duckdb(config: ProjectConfig, root: Path) -> Source:
    from modelcycle.sources.sql import DuckDBSource

    s = config.source
    path = Path(s.url.removeprefix("duckdb:///")).expanduser()
    return DuckDBSource(path if path.is_absolute() else root / path, timestamp=config.data.timestamp,
                        table=s.table, query=s.query)


def _sql(config: ProjectConfig, root: Path) -> Source:
    from modelcycle.sources.sql import SqlAlchemySource

    s = config.source
    url = s.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(root / url[len("sqlite:///"):])
    return SqlAlchemySource(url, timestamp=config.data.timestamp, table=s.table, query=s.query)


def _files(config: ProjectConfig, root: Path) -> Source:
    from modelcycle.sources.files import FileSource

    s = config.source
    return FileSource(s.url, timestamp=config.data.timestamp, fmt=s.format, root=root,
                      columns=config.data.columns)


def _images(config: ProjectConfig, root: Path) -> Source:
    from modelcycle.sources.images import ImageFolderSource, image_column

    s, d = config.source, config.data
    folder, index = Path(s.url).expanduser(), Path(s.index).expanduser() if s.index else None
    return ImageFolderSource(root / folder, timestamp=d.timestamp, target=d.target, image=image_column(d.columns),
                             index=root / index if index is not None else None)


#: The built-in kinds of ``source.kind`` (their names are listed in
#: :data:`modelcycle.config.plugins.BUILTIN_SOURCES` too, so a config is checked when it loads).
SOURCES: dict[str, SourceFactory] = {"duckdb": _duckdb, "sql": _sql, "files": _files, "images": _images}


#: The query engine a built-in kind imports on its first read (:func:`warm_up`).
_ENGINES: dict[str, tuple[str, ...]] = {"duckdb": ("duckdb",), "files": ("duckdb",)}


def warm_up(kind: str) -> None:
    """Import the query engine of a built-in ``kind`` now (DuckDB's first import takes 0.1-0.2 s
    of one core), so that the cycle's first read does not. Nothing for other kinds."""
    for module in _ENGINES.get(kind, ()):
        importlib.import_module(module)


def source_factory(kind: str) -> SourceFactory:
    """The factory of ``kind``: a built-in one, else an installed package's entry point."""
    if kind in SOURCES:
        return SOURCES[kind]
    factory = load_entry_point(SOURCE_GROUP, kind, "source.kind")
    if not callable(factory):
        raise ConfigError(f"the entry point of `source.kind: {kind}` is not a function or class "
                          f"(it is a {type(factory).__name__})",
                          "it must name a callable (config, workspace root) -> Source")
    built: SourceFactory = factory
    return built


def build_source(config: ProjectConfig, root: Path) -> Source:
    """The source described by modelcycle.yaml's ``source`` section."""
    return source_factory(config.source.kind)(config, root)


__all__ = ["SOURCES", "Source", "SourceFactory", "build_source", "source_factory", "tracked_paths"]
