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
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import pandas as pd

from modelcycle.errors import SchemaError, SourceError
from modelcycle.sources.base import ORDERED
from modelcycle.sources.sql import DuckDBFailure, run_duckdb
from modelcycle.steps.validate import UNPLACED


_UNPLACED = "__modelcycle_unplaced"


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

    def _fail(self, hint: str) -> Callable[[DuckDBFailure], SourceError]:
        return lambda f: SourceError(f"cannot read {self.describe()}: {f.text}", hint)

    def _file_columns(self, files: list[str]) -> list[str]:
        import duckdb

        described = run_duckdb(
            duckdb.connect, f"DESCRIBE SELECT * FROM {self._reader(files, text=True)}",
            fail=self._fail(f"are these {self.format.upper()} files? set source.format if the suffix misleads"))
        return [str(c) for c in described["column_name"]]

    def _check_each(self, files: list[str]) -> None:
        """DuckDB sniffs each CSV file's dialect on its own: a file with one malformed line may
        come out as a single column named after its whole header, and its rows then belong to no
        window. Read such a file again with the other files' delimiter, so DuckDB names the line."""
        import duckdb

        for file in files:
            cols = self._file_columns([file])
            if len(cols) != 1 or not any(d in cols[0] for d in ",;\t|"):
                continue
            delim = max(",;\t|", key=cols[0].count)
            one = "'" + file.replace("'", "''") + "'"
            names = ", ".join("'" + n.strip().strip('"').replace("'", "''") + "': 'VARCHAR'"
                              for n in cols[0].split(delim))
            run_duckdb(
                duckdb.connect,
                f"SELECT count(*) FROM read_csv({one}, auto_detect=false, header=true, delim='{delim}', "
                f"quote='\"', columns={{{names}}})",
                fail=_unreadable(file))
            raise SourceError(f"{file} cannot be read as a table: its lines do not split into the columns "
                              f"of its header {cols[0][:80]!r}",
                              "check the file's delimiter and quoting (every line needs as many fields as "
                              "the header)")

    def check(self) -> None:
        files = self.files()
        if self.format == "csv":
            self._check_each(files)
        cols = self._file_columns(files)
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
        # rows whose timestamp is text that is no time belong to no window: they come back too,
        # flagged, to be counted (and then set aside) rather than lost without a word
        unplaced = f"({key} IS NULL AND NULLIF(TRIM(CAST({ts} AS VARCHAR)), '') IS NOT NULL)"
        sql = (f"SELECT {columns}, CASE WHEN {unplaced} THEN CAST({ts} AS VARCHAR) END AS {_UNPLACED} "
               f"FROM {self._reader(self.files(), text=text)} "
               f"WHERE ({key} >= $start AND {key} < $end) OR {unplaced} ORDER BY {key}, hash(*COLUMNS(*))")

        def fail(f: DuckDBFailure) -> SourceError:
            hint = ("fix or remove that line (a field holding the delimiter needs quotes)" if f.line is not None
                    else f"are these readable {self.format.upper()} files, and is '{self.timestamp}' a "
                         "timestamp column?")
            return SourceError(f"reading {self.describe()} failed: {f.text}", hint)

        frame = run_duckdb(duckdb.connect, sql, {"start": start, "end": end}, setup=["SET TimeZone='UTC'"],
                           fail=fail)
        bad = frame[_UNPLACED].notna()
        if bad.any():
            shown = [str(v) for v in frame.loc[bad, _UNPLACED].unique()[:3]]
            frame = frame[~bad].reset_index(drop=True)
            frame.attrs[UNPLACED] = {self.timestamp: (int(bad.sum()), shown)}
        rows = frame.drop(columns=[_UNPLACED])  # attrs kept
        rows.attrs[ORDERED] = True  # equal timestamps by DuckDB's hash of the row
        return rows


    def latest(self) -> datetime | None:
        """The newest timestamp over every matching file (Parquet answers from its footers)."""
        import duckdb

        from modelcycle.sources.sql import as_datetime

        ts = _ident(self.timestamp)
        key = f"TRY_CAST(TRY_CAST({ts} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
        text = self.format != "parquet"
        sql = f"SELECT max({key}) AS latest FROM {self._reader(self.files(), text=text)}"
        frame = run_duckdb(duckdb.connect, sql, setup=["SET TimeZone='UTC'"], fail=lambda f: SourceError(
            f"cannot read the newest row of {self.describe()}: {f.text}",
            f"is '{self.timestamp}' a timestamp column in every file?"))
        return as_datetime(frame["latest"].iloc[0]) if len(frame) else None


def _unreadable(file: str) -> Callable[[DuckDBFailure], SourceError]:
    return lambda f: SourceError(f"{file} cannot be read as a table: {f.text}",
                                 "fix or remove that line (a field holding the delimiter needs quotes)")
