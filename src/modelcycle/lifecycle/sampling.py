"""What ``init`` reads from a user's source before it writes anything: a sample of rows with
their types (:func:`read_sample`), a failure to reach the source in words
(:func:`sql_failure`), and the columns that only repeat a part of the timestamp
(:func:`calendar_columns`), which are left out of the features by default."""

from __future__ import annotations

import logging
import os
import re
import socket
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelcycle.config.secrets import redact
from modelcycle.errors import SourceError

log = logging.getLogger(__name__)

SAMPLE_ROWS = 5000


_DUCK_TYPES = {"DOUBLE": "float", "FLOAT": "float", "REAL": "float", "DECIMAL": "float",
               "BIGINT": "int", "INTEGER": "int", "SMALLINT": "int", "TINYINT": "int", "HUGEINT": "int",
               "UBIGINT": "int", "UINTEGER": "int", "USMALLINT": "int", "UTINYINT": "int",
               "BOOLEAN": "bool", "DATE": "datetime", "TIMESTAMP": "datetime",
               "TIMESTAMP WITH TIME ZONE": "datetime", "TIMESTAMP_NS": "datetime", "TIMESTAMP_MS": "datetime",
               "TIMESTAMP_S": "datetime", "VARCHAR": "str"}

#: Python modules of SQLAlchemy drivers -> the package that installs them.
DRIVER_PACKAGES = {"psycopg": "'psycopg[binary]' (or 'modelcycle[postgres]')", "psycopg2": "psycopg2-binary",
                   "pg8000": "pg8000", "asyncpg": "asyncpg", "pymysql": "pymysql", "MySQLdb": "mysqlclient",
                   "mysql": "mysql-connector-python", "mariadb": "mariadb", "pyodbc": "pyodbc",
                   "pymssql": "pymssql", "oracledb": "oracledb", "cx_Oracle": "cx_Oracle",
                   "snowflake": "snowflake-sqlalchemy", "ibm_db": "ibm_db", "duckdb_engine": "duckdb-engine"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


@dataclass(frozen=True)
class SourceSample:
    """What init learns from the source: each column's modelcycle type, and its first rows."""

    columns: dict[str, str]
    rows: pd.DataFrame


def _map_type(name: str) -> str:
    base = str(name).split("(")[0].strip().upper()
    return _DUCK_TYPES.get(base, "float" if any(k in base for k in ("INT", "NUM", "DOUB", "FLOA"))
                           else "datetime" if "TIME" in base or "DATE" in base else "str")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


def _server_unreachable(host: str, port: int) -> str | None:
    """Why nothing answers at host:port (None when a TCP connection opens)."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except socket.gaierror:
        return f"the host name '{host}' does not resolve"
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "no answer within 3 s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def sql_failure(url: str, exc: BaseException, table: str | None = None) -> SourceError:
    """A SourceError saying why the SQL source ``url`` did not open or read: a driver to install,
    a server that does not answer (host and port), a table that is not there, or the database's
    own refusal. The URL is shown with its password redacted."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    shown = redact(url)
    first = _first_line(exc)
    if isinstance(exc, ImportError):
        module = (exc.name or "").split(".")[0] or first
        package = DRIVER_PACKAGES.get(module, module)
        return SourceError(f"cannot open {shown}: its database driver is not installed (no Python module "
                           f"'{module}')",
                           f"install it where modelcycle runs: pip install {package}; or name another "
                           "driver in the URL (dialect+driver://...)")
    if isinstance(exc, sa.exc.NoSuchModuleError):
        return SourceError(f"cannot open {shown}: SQLAlchemy knows no database type '{shown.split('://')[0]}'",
                           "check the URL's scheme (postgresql+psycopg://, mysql+pymysql://, sqlite:///...); a "
                           "third-party dialect needs its package installed")
    if isinstance(exc, sa.exc.ArgumentError):
        return SourceError(f"'{shown}' is not a database URL: {first}",
                           "write it as dialect+driver://user:password@host:port/database")
    if isinstance(exc, sa.exc.NoSuchTableError):
        return SourceError(f"the database at {shown} has no table '{table}'",
                           "check --table (and the schema, e.g. analytics.sales)")
    try:
        parsed = make_url(url)
        host, port = parsed.host, parsed.port or _DEFAULT_PORTS.get(parsed.get_backend_name())
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: no host to name
        host, port = None, None
    if host and port:
        why = _server_unreachable(host, int(port))
        if why is not None:
            return SourceError(f"cannot reach the database server of {shown} at {host}:{port}: {why}",
                               "check that the server is running and accepts connections at that host and "
                               "port (a firewall, a VPN?), then run init again")
    if isinstance(exc, sa.exc.MissingGreenlet) or "greenlet" in first:
        return SourceError(f"cannot open {shown}: its driver works with asyncio only, and modelcycle reads "
                           "synchronously",
                           "name a synchronous driver in the URL, e.g. postgresql+psycopg:// "
                           "(pip install 'modelcycle[postgres]') or mysql+pymysql://")
    if host and port:
        return SourceError(f"the database server at {host}:{port} refused {shown}: {first}",
                           "check the user, the password, the database name and that this user may read "
                           "the table")
    return SourceError(f"cannot read {shown}: {first}", "check the URL and --table")


def _sql_sample(url: str, table: str | None, timestamp: str, rows: int) -> SourceSample:
    import sqlalchemy as sa

    from modelcycle.sources.sql import SqlAlchemySource

    src = SqlAlchemySource(url, timestamp=timestamp, table=table)
    try:
        engine = src._engine()
    except SourceError as exc:
        raise sql_failure(url, exc.__cause__ or exc, table) from exc
    try:
        try:
            con = engine.connect()
        except Exception as exc:  # the driver's and SQLAlchemy's errors, translated once
            raise sql_failure(url, exc, table) from exc
        with con:
            try:
                described = sa.inspect(con).get_columns(table) if table else []
                rel, _ = src._select()
                frame = pd.read_sql(sa.select(sa.text("*")).select_from(rel).limit(rows), con)
            except sa.exc.NoSuchTableError as exc:
                raise sql_failure(url, exc, table) from exc
            except Exception as exc:
                raise SourceError(f"cannot read {src.describe()}: {_first_line(exc)}",
                                  "check --table, and that this user may read it") from exc
    finally:
        engine.dispose()
    columns = {str(c["name"]): _map_type(_type_text(c["type"])) for c in described}
    return SourceSample(columns or {str(c): "str" for c in frame.columns}, frame)


def _type_text(kind: Any) -> str:
    try:
        return str(kind).upper()
    except Exception:  # noqa: BLE001 - a type SQLAlchemy cannot render
        return type(kind).__name__.upper()


def read_sample(kind: str, url: str, table: str | None, root: Path, timestamp: str,
                rows: int = SAMPLE_ROWS) -> SourceSample:
    """Read the source's columns (mapped onto modelcycle's types) and its first ``rows`` rows,
    through the source classes of :mod:`modelcycle.sources`. Raises SourceError saying what is
    wrong (no file matches, no table, a driver to install, a server that does not answer)."""
    import duckdb

    from modelcycle.sources.files import FileSource
    from modelcycle.sources.sql import DuckDBSource

    if kind == "sql":
        sample = _sql_sample(url, table, timestamp, rows)
    else:
        try:
            # normalised: the workspace folder may not exist yet, so "../data" cannot pass through it
            path = Path(url.removeprefix("duckdb:///") if kind == "duckdb" else url).expanduser()
            where = Path(os.path.normpath(path if path.is_absolute() else root / path))
            if kind == "files":
                src = FileSource(str(where), timestamp=timestamp)
                relation = src._reader(src.files())
                con = duckdb.connect()
            else:
                dsrc = DuckDBSource(where, timestamp=timestamp, table=table)
                relation = dsrc._relation()
                con = dsrc._connect()
            try:
                described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
                frame = con.execute(f"SELECT * FROM {relation} LIMIT {int(rows)}").df()
            finally:
                con.close()
        except duckdb.Error as exc:
            raise SourceError(f"cannot read the source to learn its columns: {str(exc).splitlines()[0]}",
                              "check --source and --table") from exc
        sample = SourceSample({str(name): _map_type(kind_name) for name, kind_name, *_ in described}, frame)
    if sample.columns.get(timestamp) == "str":
        sample.columns[timestamp] = "datetime"  # CSV timestamps with a zone suffix arrive as text
    _check_timestamps(sample, timestamp, url)
    return sample


def _check_timestamps(sample: SourceSample, timestamp: str, url: str) -> None:
    """Refuse a timestamp column none of whose sampled values is a time: every window would be
    empty, every cycle would fail."""
    from modelcycle.errors import SchemaError

    frame = sample.rows
    if frame is None or timestamp not in frame.columns:
        return
    values = frame[timestamp].dropna()
    if values.empty or pd.api.types.is_datetime64_any_dtype(values):
        return
    text = values.astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    if parsed.notna().any():
        return
    shown = ", ".join(repr(v) for v in text.unique()[:3])
    raise SchemaError(
        f"the timestamp column '{timestamp}' of {redact(url)} holds no date or time in its first "
        f"{len(frame)} rows (values such as {shown})",
        "give the column that places a row in time as --timestamp, with values such as "
        "2024-03-01 or 2024-03-01 08:30:00", column=timestamp, rule="type datetime")


# ---------------------------------------------------------------------------------------------
# calendar columns
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CalendarColumn:
    """A column that repeats a part of the timestamp's calendar date."""

    column: str
    part: str           # key of CALENDAR_PARTS, e.g. "month"
    what: str           # in words, e.g. "the month"
    by: str             # "name", "content" or "name and content"
    share: float | None  # the share of sampled rows on which the values equal the part


def _dow_variants(t: pd.Series) -> list[pd.Series]:
    monday0 = t.dt.day_of_week
    return [monday0, monday0 + 1, (monday0 + 1) % 7, (monday0 + 1) % 7 + 1]  # Mon=0, Mon=1, Sun=0, Sun=1


#: Parts of a timestamp a column may repeat: part -> (words, values (one or more conventions), names).
CALENDAR_PARTS: dict[str, tuple[str, Callable[[pd.Series], list[pd.Series]], frozenset[str]]] = {
    "year": ("the year", lambda t: [t.dt.year], frozenset({"year", "yr", "yyyy"})),
    "quarter": ("the quarter", lambda t: [t.dt.quarter], frozenset({"quarter", "qtr"})),
    "month": ("the month", lambda t: [t.dt.month], frozenset({"month", "mnth", "month_of_year"})),
    "week": ("the week of the year", lambda t: [t.dt.isocalendar().week.astype("float64")],
             frozenset({"week", "week_of_year", "weekofyear", "woy", "iso_week"})),
    "day": ("the day of the month", lambda t: [t.dt.day],
            frozenset({"day", "day_of_month", "dayofmonth", "dom", "mday"})),
    "day_of_year": ("the day of the year", lambda t: [t.dt.day_of_year],
                    frozenset({"day_of_year", "dayofyear", "doy", "yday"})),
    "day_of_week": ("the day of the week", _dow_variants,
                    frozenset({"day_of_week", "dayofweek", "dow", "weekday", "wday"})),
    "hour": ("the hour", lambda t: [t.dt.hour], frozenset({"hour", "hour_of_day", "hr", "hod"})),
    "minute": ("the minute", lambda t: [t.dt.minute], frozenset({"minute"})),
    "year_month": ("the year and month (YYYYMM)", lambda t: [t.dt.year * 100 + t.dt.month],
                   frozenset({"year_month", "yearmonth", "yyyymm"})),
    "date": ("the date (YYYYMMDD)", lambda t: [t.dt.year * 10000 + t.dt.month * 100 + t.dt.day],
             frozenset({"yyyymmdd", "date_key", "date_id"})),
}
#: Values must equal the part on at least this share of the sampled rows.
MATCH_SHARE = 0.98


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def _name_part(column: str, timestamp: str) -> str | None:
    """The part a column's name says it holds: an exact name (``MONTH``, ``day_of_week``) or the
    timestamp's own prefix with one (``pickup_hour`` beside ``pickup_datetime``)."""
    name = _normal(column)
    stem = _normal(timestamp).rsplit("_", 1)[0] if "_" in _normal(timestamp) else None
    for part, (_, _, names) in CALENDAR_PARTS.items():
        if name in names or (stem and any(name == f"{stem}_{n}" for n in names)):
            return part
    return None


def _integral(values: pd.Series) -> pd.Series | None:
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        return None
    num = pd.to_numeric(values, errors="coerce").astype("float64")
    present = num.dropna()
    if present.empty or not (present == present.round()).all():
        return None
    return num


def _share(values: pd.Series, variants: list[pd.Series]) -> float | None:
    """The largest share of rows on which ``values`` equal one convention of a part, over the
    conventions that take two values or more in the sample (None: the sample cannot tell)."""
    best: float | None = None
    for variant in variants:
        both = values.notna() & variant.notna()
        if both.sum() < 10 or variant[both].nunique() < 2:
            continue
        share = float((values[both] == variant[both].astype("float64")).mean())
        best = share if best is None else max(best, share)
    return best


def calendar_columns(sample: pd.DataFrame, timestamp: str, columns: Iterable[str]) -> list[CalendarColumn]:
    """The ``columns`` of ``sample`` that repeat a part of the ``timestamp`` column's date:

    * by content: an integer column equal to the year, month, day, weekday, hour... of the
      timestamp on at least 98% of the sampled rows (where that part takes two values or more);
    * by name (``MONTH``, ``DAY_OF_WEEK``, ``hour``, ``pickup_hour`` beside ``pickup_datetime``...),
      unless the sample shows the values are something else (they differ from that part on most
      rows while the part varies).
    """
    from modelcycle.steps.features import to_naive_timestamps

    parts: dict[str, list[pd.Series]] = {}
    if timestamp in sample.columns and len(sample):
        ts = to_naive_timestamps(sample[timestamp]).reset_index(drop=True)
        if ts.notna().any():
            parts = {part: spec[1](ts) for part, spec in CALENDAR_PARTS.items()}
    found: list[CalendarColumn] = []
    for column in columns:
        by_name = _name_part(column, timestamp)
        values = _integral(sample[column].reset_index(drop=True)) if column in sample.columns else None
        shares = {part: _share(values, variants) for part, variants in parts.items()} if values is not None else {}
        matches = [(share, part == by_name, part) for part, share in shares.items()
                   if share is not None and share >= MATCH_SHARE]
        if matches:  # the best match; on a tie the part the name says, then the first part listed
            share, _, part = max(matches, key=lambda m: (m[0], m[1]))
            by = "name and content" if part == by_name else "content"
            found.append(CalendarColumn(column, part, CALENDAR_PARTS[part][0], by, share))
        elif by_name is not None:
            named = shares.get(by_name)
            if named is None or named >= 0.5:
                found.append(CalendarColumn(column, by_name, CALENDAR_PARTS[by_name][0], "name", None))
    return found


def calendar_warning(found: CalendarColumn, timestamp: str, rows: int) -> str:
    equal = f"equal to it on {found.share or 0:.0%} of {rows:,} sampled rows"
    how = {"name": "by its name", "content": equal, "name and content": f"by its name; {equal}"}[found.by]
    return (f"left '{found.column}' out of the features: it repeats {found.what} of '{timestamp}' ({how}), "
            "and a model given it extrapolates by calendar date across windows. The features section of "
            "modelcycle.yaml says how to put it back or encode it cyclically")
