"""SQL sources: a DuckDB file, or any database SQLAlchemy reaches.

DuckDB's errors are translated here into one line a user can act on (:class:`DuckDBFailure`),
and raised *after* the connection is closed and dropped: an error that still referenced a
DuckDB connection (through its traceback or its ``__cause__``) would keep it alive as long as
the error lives -- in a failed task's state, for instance -- and DuckDB's bindings then print
dozens of "nanobind: leaked ... instances!" lines when the interpreter exits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from modelcycle.errors import ModelcycleError, SchemaError, SourceError
from modelcycle.sources.base import ORDERED

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy as sa

_SHOWN = 120  # characters of a value or a line quoted in a message


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


_CAST = re.compile(r"Could not convert string (['\"])(?P<value>.*?)\1 to '?(?P<type>[\w ]+?)'?"
                   r" when casting from source column (?P<column>\S+)")
_FORMAT = re.compile(r'invalid (?P<type>\w+) field format: "(?P<value>.*?)".*?'
                     r" when casting from source column (?P<column>\S+)")
_CSV_LINE = re.compile(r"CSV Error on Line: (?P<line>\d+)")
_CSV_ORIGINAL = re.compile(r"^Original Line: (?P<text>.*)$", re.M)
_CSV_COLUMN = re.compile(r'Error when converting column "(?P<column>[^"]+)"\. Could not convert string '
                         r'"(?P<value>.*?)" to \'(?P<type>[^\']+)\'')
_CSV_FILE = re.compile(r"^\s*file = (?P<file>.+)$", re.M)


@dataclass(frozen=True)
class DuckDBFailure:
    """What a DuckDB error says, in words: ``text`` (one line), and when a value did not
    convert, its ``column`` and ``value``; ``line`` is the CSV line it came from."""

    text: str
    column: str | None = None
    value: str | None = None
    line: int | None = None

    @classmethod
    def of(cls, exc: BaseException) -> DuckDBFailure:
        full = str(exc)
        first = full.splitlines()[0] if full else type(exc).__name__
        csv = _CSV_LINE.search(full)
        if csv:
            line = int(csv["line"])
            where = f"line {line}"
            if (file := _CSV_FILE.search(full)):
                where += f" of {file['file'].strip()}"
            conv = _CSV_COLUMN.search(full)
            if conv:
                return cls(f"{where}: column '{conv['column']}' holds '{_clip(conv['value'])}', which "
                           f"DuckDB cannot read as {conv['type']}", conv["column"], conv["value"], line)
            lines = full.splitlines()
            original = _CSV_ORIGINAL.search(full)
            reason = ""
            if original:
                after = lines.index(original.group(0)) + 1
                reason = lines[after].strip() if after < len(lines) else ""
            text = f"{where} is malformed" + (f": {reason}" if reason else "")
            if original:
                text += f" (the line: '{_clip(original['text'])}')"
            return cls(text, line=line)
        for pattern in (_CAST, _FORMAT):
            m = pattern.search(full)
            if m:
                column = m["column"].strip("\"'")
                return cls(f"column '{column}' holds '{_clip(m['value'])}', which DuckDB cannot convert to "
                           f"{m['type'].upper()}", column, m["value"])
        return cls(first)


def _plain(kind: Any, nulls: int) -> bool:
    """Whether Arrow turns a column of this type into the pandas column DuckDB's ``.df()`` makes
    (floats, naive times and text; integers and booleans without nulls, which ``.df()`` makes
    nullable)."""
    import pyarrow as pa

    if pa.types.is_floating(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_timestamp(kind):
        return kind.tz is None
    return (pa.types.is_integer(kind) or pa.types.is_boolean(kind)) and nulls == 0


def as_frame(con: Any, table: Any) -> pd.DataFrame:
    """An Arrow table of DuckDB's as the frame DuckDB's ``.df()`` makes of it. When every column
    is :func:`_plain`, Arrow converts it column by column, most without a copy (``.df()`` copies
    every number into one block: 1.7 s of 3 s for 10M rows); otherwise DuckDB converts it."""
    if all(_plain(field.type, table.column(i).null_count) for i, field in enumerate(table.schema)):
        return table.to_pandas(split_blocks=True, self_destruct=True)
    return con.from_arrow(table).df()


def run_duckdb(connect: Callable[[], Any], sql: str, params: Any = None, *,
               setup: Sequence[str] = (), fail: Callable[[DuckDBFailure], ModelcycleError]) -> pd.DataFrame:
    """``sql``'s rows as a frame (as DuckDB's ``.df()`` makes it, see :func:`as_frame`), on a
    connection from ``connect()`` that is closed and dropped whatever happens; a DuckDB error
    becomes ``fail(DuckDBFailure)``, raised with no reference to DuckDB's exception or
    connection."""
    import duckdb

    con = connect()
    failure: DuckDBFailure | None = None
    try:
        for statement in setup:
            con.execute(statement)
        return as_frame(con, con.sql(sql, params=params).to_arrow_table())
    except duckdb.Error as exc:
        failure = DuckDBFailure.of(exc)
    finally:
        con.close()
        del con
    raise fail(failure)


def as_datetime(value: Any) -> datetime | None:
    """A database's timestamp (a datetime, a pandas Timestamp, ISO text, NULL) as naive UTC wall
    time, None when empty or not a time."""
    if value is None:
        return None
    stamp = pd.to_datetime(value, errors="coerce", utc=True)
    if pd.isna(stamp):
        return None
    return stamp.tz_convert(None).to_pydatetime()


class DuckDBSource:
    """A table (or query) in a DuckDB database file, opened read-only."""

    def __init__(self, path: Path, *, timestamp: str, table: str | None = None,
                 query: str | None = None) -> None:
        self.path = Path(path)
        self.timestamp = timestamp
        self.table = table
        self.query = query

    def describe(self) -> str:
        what = f"table '{self.table}'" if self.table else "the configured query"
        return f"{what} in DuckDB file {self.path}"

    def _relation(self) -> str:
        return _ident(self.table) if self.table else f"({self.query})"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        if not self.path.is_file():
            raise SourceError(f"the DuckDB file {self.path} does not exist",
                              "check source.url in modelcycle.yaml (relative paths start at the workspace)")
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            failure = DuckDBFailure.of(exc)
        raise SourceError(f"cannot open DuckDB file {self.path}: {failure.text}",
                          "is it a DuckDB database, and not locked by another writer?")

    def check(self) -> None:
        described = run_duckdb(
            self._connect, f"DESCRIBE SELECT * FROM {self._relation()}",
            fail=lambda f: SourceError(f"cannot read {self.describe()}: {f.text}",
                                       "check source.table / source.query in modelcycle.yaml"))
        cols = [str(c) for c in described["column_name"]]
        if self.timestamp not in cols:
            raise SchemaError(f"the timestamp column '{self.timestamp}' is not in {self.describe()} "
                              f"(it has: {', '.join(cols)})",
                              "fix data.timestamp in modelcycle.yaml", column=self.timestamp, rule="required")

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        self.check()
        ts = _ident(self.timestamp)
        # TRY_CAST: a timestamp that is not one places its row in no window, instead of
        # stopping every window
        key = f"TRY_CAST({ts} AS TIMESTAMP)"
        # rows with equal timestamps in an order of their own (a hash of the row), not the order
        # DuckDB's threads happen to finish in: the same rows come back in the same order
        sql = f"SELECT * FROM {self._relation()} WHERE {key} >= ? AND {key} < ? ORDER BY {key}, hash(*COLUMNS(*))"

        def fail(f: DuckDBFailure) -> SourceError:
            where = f"querying {self.describe()} for {start:%Y-%m-%d}..{end:%Y-%m-%d} failed: {f.text}"
            if f.column is not None:
                return SourceError(where, "fix the value in the table, or convert it with TRY_CAST in "
                                          "source.query (a value that does not convert becomes empty)")
            return SourceError(where, f"check source.table / source.query in modelcycle.yaml, and that "
                                      f"'{self.timestamp}' is a timestamp column")

        rows = run_duckdb(self._connect, sql, [start, end], fail=fail)
        rows.attrs[ORDERED] = True
        return rows

    def latest(self) -> datetime | None:
        """The newest timestamp: one ``max()`` over the table's zone maps."""
        sql = f"SELECT max(TRY_CAST({_ident(self.timestamp)} AS TIMESTAMP)) AS latest FROM {self._relation()}"
        frame = run_duckdb(self._connect, sql, fail=lambda f: SourceError(
            f"cannot read the newest row of {self.describe()}: {f.text}",
            "check source.table / source.query in modelcycle.yaml"))
        return as_datetime(frame["latest"].iloc[0]) if len(frame) else None


class SqlAlchemySource:
    """A table (or query) in any database SQLAlchemy can reach (PostgreSQL, SQLite, ...)."""

    def __init__(self, url: str, *, timestamp: str, table: str | None = None,
                 query: str | None = None) -> None:
        self.url = url
        self.timestamp = timestamp
        self.table = table
        self.query = query

    def describe(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            shown = make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: show its tail
            shown = self.url.split("@")[-1]
        what = f"table '{self.table}'" if self.table else "the configured query"
        return f"{what} at {shown}"

    def _engine(self) -> sa.Engine:
        import sqlalchemy as sa

        try:
            return sa.create_engine(self.url)
        except Exception as exc:  # bad URL, missing driver
            raise SourceError(f"cannot use the SQL source URL: {exc}",
                              "check source.url in modelcycle.yaml; a driver may need installing "
                              "(e.g. modelcycle[postgres])") from exc

    def _select(self) -> tuple[sa.FromClause, sa.ColumnElement[Any]]:
        import sqlalchemy as sa

        if self.table:
            return sa.table(self.table, sa.column(self.timestamp)), sa.column(self.timestamp)
        sub = sa.text(self.query or "").columns(sa.column(self.timestamp)).subquery("src")
        return sub, sub.c[self.timestamp]

    def check(self) -> None:
        import sqlalchemy as sa

        engine = self._engine()
        try:
            with engine.connect() as con:
                rel, _ = self._select()
                cols = list(con.execute(sa.select(sa.text("*")).select_from(rel).limit(0)).keys())
        except Exception as exc:
            raise SourceError(f"cannot read {self.describe()}: {str(exc).splitlines()[0]}",
                              "check source.url and source.table / source.query in modelcycle.yaml") from exc
        finally:
            engine.dispose()
        if self.timestamp not in cols:
            raise SchemaError(f"the timestamp column '{self.timestamp}' is not in {self.describe()}",
                              "fix data.timestamp in modelcycle.yaml", column=self.timestamp, rule="required")

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        import sqlalchemy as sa

        self.check()
        engine = self._engine()
        rel, ts = self._select()
        stmt = (sa.select(sa.text("*")).select_from(rel)
                .where(ts >= sa.bindparam("start"), ts < sa.bindparam("end")).order_by(ts))
        try:
            with engine.connect() as con:
                return pd.read_sql(stmt, con, params={"start": start, "end": end})
        except Exception as exc:
            raise SourceError(f"querying {self.describe()} failed: {str(exc).splitlines()[0]}") from exc
        finally:
            engine.dispose()

    def latest(self) -> datetime | None:
        """The newest timestamp: one ``SELECT max(timestamp)``."""
        import sqlalchemy as sa

        engine = self._engine()
        rel, ts = self._select()
        try:
            with engine.connect() as con:
                value = con.execute(sa.select(sa.func.max(ts)).select_from(rel)).scalar()
        except Exception as exc:
            raise SourceError(f"cannot read the newest row of {self.describe()}: {str(exc).splitlines()[0]}",
                              "check source.url and source.table / source.query in modelcycle.yaml") from exc
        finally:
            engine.dispose()
        return as_datetime(value)
