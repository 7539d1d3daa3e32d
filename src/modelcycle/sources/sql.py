"""SQL sources: a DuckDB file, or any database SQLAlchemy reaches."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from modelcycle.errors import SchemaError, SourceError


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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

    def _connect(self):  # noqa: ANN202
        import duckdb

        if not self.path.is_file():
            raise SourceError(f"the DuckDB file {self.path} does not exist",
                              "check source.url in modelcycle.yaml (relative paths start at the workspace)")
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            raise SourceError(f"cannot open DuckDB file {self.path}: {exc}",
                              "is it a DuckDB database, and not locked by another writer?") from exc

    def check(self) -> None:
        import duckdb

        con = self._connect()
        try:
            cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {self._relation()}").fetchall()]
        except duckdb.Error as exc:
            raise SourceError(f"cannot read {self.describe()}: {exc}".splitlines()[0],
                              "check source.table / source.query in modelcycle.yaml") from exc
        finally:
            con.close()
        if self.timestamp not in cols:
            raise SchemaError(f"the timestamp column '{self.timestamp}' is not in {self.describe()} "
                              f"(it has: {', '.join(cols)})",
                              "fix data.timestamp in modelcycle.yaml", column=self.timestamp, rule="required")

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        import duckdb

        self.check()
        con = self._connect()
        ts = _ident(self.timestamp)
        sql = (f"SELECT * FROM {self._relation()} WHERE CAST({ts} AS TIMESTAMP) >= ? "
               f"AND CAST({ts} AS TIMESTAMP) < ? ORDER BY {ts}")
        try:
            return con.execute(sql, [start, end]).df()
        except duckdb.Error as exc:
            raise SourceError(f"querying {self.describe()} for {start:%Y-%m-%d}..{end:%Y-%m-%d} failed: "
                              f"{str(exc).splitlines()[0]}",
                              f"is '{self.timestamp}' a timestamp column?") from exc
        finally:
            con.close()


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
        except Exception:
            shown = self.url.split("@")[-1]
        what = f"table '{self.table}'" if self.table else "the configured query"
        return f"{what} at {shown}"

    def _engine(self):  # noqa: ANN202
        import sqlalchemy as sa

        try:
            return sa.create_engine(self.url)
        except Exception as exc:  # bad URL, missing driver
            raise SourceError(f"cannot use the SQL source URL: {exc}",
                              "check source.url in modelcycle.yaml; a driver may need installing "
                              "(e.g. modelcycle[postgres])") from exc

    def _select(self):  # noqa: ANN202
        import sqlalchemy as sa

        if self.table:
            return sa.table(self.table, sa.column(self.timestamp)), sa.column(self.timestamp)
        sub = sa.text(self.query).columns(sa.column(self.timestamp)).subquery("src")
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
