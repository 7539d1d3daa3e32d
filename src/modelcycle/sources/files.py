"""File sources: Parquet or CSV files matched by a glob, filtered by time window (with DuckDB).

CSV files are read as text: the declared ``data.columns`` types are applied by validation, so a
cell that is not of its column's type invalidates its row only, and only in the window that
holds it. (Letting DuckDB guess the types from a sample of the first rows made one bad cell deep
in a file stop every window, even those without that row.) The timestamp is parsed here, as the
window filter needs it: timestamps written with a zone become UTC wall time, and a row whose
timestamp is not one belongs to no window. Parquet files keep their own types.
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pandas as pd

from modelcycle.errors import SchemaError, SourceError
from modelcycle.sources.sql import DuckDBFailure, run_duckdb


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class FileSource:
    """Files matched by ``pattern``; ``columns`` (name -> declared type) are the columns the
    cycle needs, checked by :meth:`check` when given."""

    def __init__(self, pattern: str, *, timestamp: str, fmt: str | None = None,
                 root: Path | None = None, columns: Mapping[str, str] | None = None) -> None:
        p = Path(pattern).expanduser()
        self.pattern = str(p if p.is_absolute() or root is None else root / p)
        self.timestamp = timestamp
        self.format = fmt or ("parquet" if self.pattern.endswith((".parquet", ".pq")) else "csv")
        self.columns = dict(columns) if columns is not None else None

    def describe(self) -> str:
        return f"{self.format.upper()} files {self.pattern}"

    def files(self) -> list[str]:
        found = sorted(globlib.glob(self.pattern, recursive=True))
        if not found:
            raise SourceError(f"no file matches {self.pattern}",
                              "check source.url in modelcycle.yaml (a glob such as data/rides-*.csv)")
        return found

    def _reader(self, files: list[str], *, text: bool = False) -> str:
        """The DuckDB table function reading ``files``: CSV types sniffed from a sample (to
        propose a schema), or with ``text`` every CSV column as text (to read rows)."""
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        if self.format == "parquet":
            return f"read_parquet({listed}, union_by_name=true)"
        return f"read_csv({listed}, union_by_name=true, auto_detect=true{', all_varchar=true' if text else ''})"

    def _fail(self, hint: str):  # noqa: ANN202
        return lambda f: SourceError(f"cannot read {self.describe()}: {f.text}", hint)

    def _file_columns(self, files: list[str]) -> list[str]:
        import duckdb

        described = run_duckdb(
            duckdb.connect, f"DESCRIBE SELECT * FROM {self._reader(files, text=True)}",
            fail=self._fail(f"are these {self.format.upper()} files? set source.format if the suffix misleads"))
        return [str(c) for c in described["column_name"]]

    def check(self) -> None:
        cols = self._file_columns(self.files())
        if self.timestamp not in cols:
            raise SchemaError(f"the timestamp column '{self.timestamp}' is not in {self.describe()} "
                              f"(they have: {', '.join(cols)})",
                              "fix data.timestamp in modelcycle.yaml", column=self.timestamp, rule="required")
        missing = [c for c in (self.columns or {}) if c not in cols]
        if missing:
            from modelcycle.steps.validate import missing_columns

            raise missing_columns(missing, list(cols), source=f"from {self.describe()}", gives="they have",
                                  hint="rename the column in the files, or fix data.columns in modelcycle.yaml")

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        import duckdb

        self.check()
        ts = _ident(self.timestamp)
        # Timestamps written with a zone ("2015-01-01 10:00:00 UTC") become UTC wall time.
        key = f"TRY_CAST(TRY_CAST({ts} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
        text = self.format != "parquet"
        columns = f"* REPLACE ({key} AS {ts})" if text else "*"
        sql = (f"SELECT {columns} FROM {self._reader(self.files(), text=text)} "
               f"WHERE {key} >= $start AND {key} < $end ORDER BY {key}")

        def fail(f: DuckDBFailure) -> SourceError:
            hint = ("fix or remove that line (a field holding the delimiter needs quotes)" if f.line is not None
                    else f"are these readable {self.format.upper()} files, and is '{self.timestamp}' a "
                         "timestamp column?")
            return SourceError(f"reading {self.describe()} failed: {f.text}", hint)

        return run_duckdb(duckdb.connect, sql, {"start": start, "end": end}, setup=["SET TimeZone='UTC'"],
                          fail=fail)
