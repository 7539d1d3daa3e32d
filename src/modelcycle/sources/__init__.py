"""Data sources, configured not coded: SQL (DuckDB or SQLAlchemy) and files."""

from __future__ import annotations

from pathlib import Path

from modelcycle.config.models import ProjectConfig
from modelcycle.sources.base import Source


def build_source(config: ProjectConfig, root: Path) -> Source:
    """The source described by modelcycle.yaml's ``source`` section."""
    s, ts = config.source, config.data.timestamp
    if s.kind == "duckdb":
        from modelcycle.sources.sql import DuckDBSource

        path = Path(s.url.removeprefix("duckdb:///")).expanduser()
        return DuckDBSource(path if path.is_absolute() else root / path, timestamp=ts,
                            table=s.table, query=s.query)
    if s.kind == "sql":
        from modelcycle.sources.sql import SqlAlchemySource

        url = s.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = "sqlite:///" + str(root / url[len("sqlite:///"):])
        return SqlAlchemySource(url, timestamp=ts, table=s.table, query=s.query)
    from modelcycle.sources.files import FileSource

    return FileSource(s.url, timestamp=ts, fmt=s.format, root=root, columns=config.data.columns)


__all__ = ["Source", "build_source"]
