"""File sources: Parquet or CSV files matched by a glob, filtered by time window (with DuckDB)."""

from __future__ import annotations

import glob as globlib
from datetime import datetime
from pathlib import Path

import pandas as pd

from modelcycle.errors import SchemaError, SourceError


class FileSource:
    def __init__(self, pattern: str, *, timestamp: str, fmt: str | None = None,
                 root: Path | None = None) -> None:
        p = Path(pattern).expanduser()
        self.pattern = str(p if p.is_absolute() or root is None else root / p)
        self.timestamp = timestamp
        self.format = fmt or ("parquet" if self.pattern.endswith((".parquet", ".pq")) else "csv")

    def describe(self) -> str:
        return f"{self.format.upper()} files {self.pattern}"

    def files(self) -> list[str]:
        found = sorted(globlib.glob(self.pattern, recursive=True))
        if not found:
            raise SourceError(f"no file matches {self.pattern}",
                              "check source.url in modelcycle.yaml (a glob such as data/rides-*.csv)")
        return found

    def _reader(self, files: list[str]) -> str:
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        if self.format == "parquet":
            return f"read_parquet({listed}, union_by_name=true)"
        return f"read_csv({listed}, union_by_name=true, auto_detect=true)"

    def check(self) -> None:
        import duckdb

        files = self.files()
        try:
            cols = [r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM {self._reader(files)}").fetchall()]
        except duckdb.Error as exc:
            raise SourceError(f"cannot read {self.describe()}: {str(exc).splitlines()[0]}",
                              f"are these {self.format.upper()} files? set source.format if the suffix misleads") from exc
        if self.timestamp not in cols:
            raise SchemaError(f"the timestamp column '{self.timestamp}' is not in {self.describe()} "
                              f"(they have: {', '.join(cols)})",
                              "fix data.timestamp in modelcycle.yaml", column=self.timestamp, rule="required")

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        import duckdb

        self.check()
        ts = '"' + self.timestamp.replace('"', '""') + '"'
        # Timestamps written with a zone ("2015-01-01 10:00:00 UTC") become UTC wall time.
        key = f"TRY_CAST(TRY_CAST({ts} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
        sql = (f"SELECT * FROM {self._reader(self.files())} "
               f"WHERE {key} >= $start AND {key} < $end ORDER BY {key}")
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone='UTC'")
            return con.execute(sql, {"start": start, "end": end}).df()
        except duckdb.Error as exc:
            raise SourceError(f"reading {self.describe()} failed: {str(exc).splitlines()[0]}") from exc
        finally:
            con.close()
