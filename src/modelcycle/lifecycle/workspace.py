"""Create a workspace: a git repository with DVC, modelcycle.yaml, params.yaml, dvc.yaml and the
embedded backends under ``.modelcycle/``.

``init`` is careful with what it writes:

* **No password in git.** A source URL's password goes to ``.env`` (mode 0600, git-ignored) and
  modelcycle.yaml refers to it as ``${MODELCYCLE_SOURCE_PASSWORD}``; a file that would still hold
  a literal password is neither written nor committed (:func:`modelcycle.config.literal_secrets`).
* **Private backends.** ``.modelcycle/`` (MLflow's database and artifacts, Prefect's home, the DVC
  remote, the demo warehouse) is created 0700.
* **All or nothing.** The source is read before anything is written; a failure at any later point
  removes what init created (the folder it made, or only the files it added beside existing
  ones, the previous ``.gitignore`` and ``.env`` restored).
* **No calendar features by default.** Columns that repeat a part of the timestamp (``month``,
  ``day_of_week``, ``hour``... found by name and by content on a sample of the source) are left
  out of ``features.columns``, with a warning and a comment in modelcycle.yaml.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import textwrap
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd
import yaml

from modelcycle.config import CONFIG_FILE, ENV_FILE, PARAMS_FILE, STATE_DIR, Workspace, load_config
from modelcycle.config.secrets import (
    SOURCE_PASSWORD_VAR,
    find_literal_secrets,
    literal_secrets,
    literal_secrets_error,
    move_password,
    redact,
    references,
    resolve_references,
    url_password,
    write_env_values,
)
from modelcycle.errors import ConfigError, SourceError, WorkspaceError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
Warn = Callable[[str], None]

PARAMS_HEADER = ("# params.yaml: what the pipeline steps read (DVC params).\n"
                 "# `dvc exp run -S model.learning_rate=0.1` tries another value; "
                 "`window` is set by each cycle.\n")

#: What init may add to a folder (and removes again when it fails).
INIT_FILES = (CONFIG_FILE, PARAMS_FILE, "dvc.yaml", ".dvc", ".dvcignore", STATE_DIR, ENV_FILE, ".gitignore",
              ".git")
#: Rows of the source read at init: the schema's types and the calendar-column check.
SAMPLE_ROWS = 5000


def _template(name: str) -> str:
    return resources.files("modelcycle.lifecycle").joinpath("templates", name).read_text(encoding="utf-8")


def _check_target(root: Path, force: bool) -> None:
    if (root / CONFIG_FILE).exists():
        raise WorkspaceError(f"{root} is already a modelcycle workspace ({CONFIG_FILE} exists)",
                             "use it as it is (`modelcycle status`), or pick another folder")
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root} exists and is not a folder")
    if root.exists() and any(p.name not in (".git",) for p in root.iterdir()) and not force:
        raise WorkspaceError(f"{root} is not empty",
                             "pick an empty or new folder, or pass --force to add a workspace beside "
                             "what is there (nothing existing is overwritten)")
    taken = [name for name in (PARAMS_FILE, "dvc.yaml") if (root / name).exists()]
    if taken:
        raise WorkspaceError(f"{root} already has {' and '.join(taken)}, which init would overwrite",
                             "move them aside (or pick another folder) and run init again")
    remote = os.environ.get("MODELCYCLE_DVC_REMOTE")
    if remote and url_password(remote):
        raise ConfigError(
            f"MODELCYCLE_DVC_REMOTE ({redact(remote)}) holds a password; init would write it into "
            ".dvc/config, which git keeps",
            "remove the password from that URL; after init give it to DVC alone with "
            "`dvc remote modify --local modelcycle password ...` (kept in the git-ignored .dvc/config.local)")


# ---------------------------------------------------------------------------------------------
# all or nothing
# ---------------------------------------------------------------------------------------------

class _Creation:
    """What init may change in ``root``, noted before it writes anything, so that a failure can
    put the folder back as it was."""

    def __init__(self, root: Path) -> None:
        self.root = root
        top: Path | None = None
        p = root
        while not p.exists() and p != p.parent:
            top, p = p, p.parent
        self.created_top = top  # the highest folder init creates (root or a missing parent)
        self.before: dict[str, bytes | bool | None] = {}
        self.dvc_config: bytes | None = None
        if top is None:
            for name in INIT_FILES:
                path = root / name
                if path.is_dir() and not path.is_symlink():
                    self.before[name] = True
                elif path.exists() or path.is_symlink():
                    self.before[name] = path.read_bytes() if path.is_file() else True
                else:
                    self.before[name] = None
            if (root / ".dvc" / "config").is_file():
                self.dvc_config = (root / ".dvc" / "config").read_bytes()

    def undo(self) -> list[str]:
        """Remove what init created; returns the names removed (for the message)."""
        if self.created_top is not None:
            if not self.created_top.exists():
                return []
            shutil.rmtree(self.created_top, ignore_errors=True)
            return [str(self.created_top)]
        added = [name for name, was in self.before.items()
                 if was is None and ((self.root / name).exists() or (self.root / name).is_symlink())]
        if self.before.get(".git") is not None:
            self._unstage([n for n in added if n != ".git"], [n for n, was in self.before.items()
                                                              if was is not None and n != ".git"])
        for name in added:
            path = self.root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for name, was in self.before.items():
            if isinstance(was, bytes) and (self.root / name).read_bytes() != was:
                (self.root / name).write_bytes(was)
        if self.dvc_config is not None and (self.root / ".dvc" / "config").exists():
            (self.root / ".dvc" / "config").write_bytes(self.dvc_config)
        return added

    def _unstage(self, added: list[str], existing: list[str]) -> None:
        """In a repository that was there before: take init's files out of the index again."""
        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=self.root, capture_output=True, timeout=60, check=False)

        if added:
            git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *added)
        for name in existing:  # one at a time: a path git does not know fails alone
            git("reset", "-q", "--", name)


def _all_or_nothing(root: Path, build: Callable[[], Workspace], progress: Progress) -> Workspace:
    record = _Creation(root)
    try:
        return build()
    except BaseException:
        removed = record.undo()
        if removed:
            progress(f"init did not finish; removed what it had created in {root}")
        raise


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def _params_text(model_params: dict[str, Any], *, history_months: int = 6,
                 holdout_fraction: float = 0.3, seed: int = 42) -> str:
    body = {"window": None, "seed": seed, "data": {"history_months": history_months},
            "split": {"holdout_fraction": holdout_fraction}, "model": model_params}
    return PARAMS_HEADER + yaml.safe_dump(body, sort_keys=False)


def _write_gitignore(root: Path) -> None:
    """Add the template's lines the workspace's .gitignore lacks (the embedded backends, .env)."""
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    have = {line.strip() for line in existing.splitlines()}
    template = _template("gitignore").splitlines()
    missing = [line for line in template if line.strip() and not line.startswith("#") and line.strip() not in have]
    if not missing:
        return
    if existing:
        added: list[str] = []
        comment = None
        for line in template:  # each missing line with the comment that explains it
            if line.startswith("#"):
                comment = line
            elif line in missing:
                if comment is not None:
                    added.append(comment)
                    comment = None
                added.append(line)
        text = existing + ("\n" if not existing.endswith("\n") else "") + "\n".join(added) + "\n"
    else:
        text = "\n".join(template) + "\n"
    gitignore.write_text(text, encoding="utf-8")


def _make_state_dir(root: Path) -> Path:
    state = root / STATE_DIR
    state.mkdir(mode=0o700, exist_ok=True)
    os.chmod(state, 0o700)
    return state


def _finish(root: Path, config_text: str, params_text: str, progress: Progress, *,
            env_values: dict[str, str] | None = None,
            before_commit: Callable[[Workspace], None] | None = None) -> Workspace:
    from modelcycle.registry.workspace import open_registry
    from modelcycle.versioning import dvcgit

    config_path = root / CONFIG_FILE
    found = find_literal_secrets(yaml.safe_load(config_text) or {})
    if found:  # before the file exists at all
        raise literal_secrets_error(config_path, found)
    root.mkdir(parents=True, exist_ok=True)
    _write_gitignore(root)  # .env and .modelcycle/ are ignored before either exists
    if env_values:
        write_env_values(root / ENV_FILE, env_values)
    config_path.write_text(config_text, encoding="utf-8")
    load_config(config_path)
    (root / PARAMS_FILE).write_text(params_text, encoding="utf-8")
    (root / "dvc.yaml").write_text(_template("dvc.yaml"), encoding="utf-8")
    state = _make_state_dir(root)
    ws = Workspace.load(root)
    for sub in ("mlartifacts", "prefect"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    progress("initialising git and DVC")
    dvcgit.init_workspace_repo(str(root), ws.dvc_remote)
    progress("creating the MLflow tracking database")
    open_registry(ws).experiment_id(ws.config.name)
    if before_commit is not None:
        before_commit(ws)
    for name in (CONFIG_FILE, PARAMS_FILE):
        found = literal_secrets(root / name)
        if found:
            raise literal_secrets_error(root / name, found)
    dvcgit.commit_paths(str(root), [CONFIG_FILE, PARAMS_FILE, "dvc.yaml", ".gitignore", ".dvc", ".dvcignore"],
                        f"modelcycle init: {ws.config.name}")
    return ws


def create_from_config(root: Path, config_text: str, *, model_params: dict[str, Any] | None = None,
                       history_months: int = 6, prepare: Callable[[Workspace], None] | None = None,
                       force: bool = False, progress: Progress = lambda _: None) -> Workspace:
    """A workspace from a complete modelcycle.yaml text: an example's (``modelcycle init --example``)
    or a team's own template. The text is checked as init checks its own (a literal password is
    refused, the config must load); params.yaml gets ``model_params`` and ``history_months``.
    ``prepare(ws)`` runs before the first commit, with the workspace's git, DVC and MLflow set up:
    an example writes its data into ``.modelcycle/`` there. All or nothing, as init."""
    _check_target(root, force)
    params = _params_text(dict(model_params or {}), history_months=history_months)
    return _all_or_nothing(root, lambda: _finish(root, config_text, params, progress, before_commit=prepare),
                           progress)


# ---------------------------------------------------------------------------------------------
# reading the source
# ---------------------------------------------------------------------------------------------

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


def _features_block(columns: list[str], left_out: list[CalendarColumn], timestamp: str) -> str:
    header = ("features:\n"
              "  builder: null      # or an import path such as features:build (a features.py beside this file)\n")
    if not left_out:
        return header + "  columns: null      # null: every column except the target and the timestamp\n"
    named = ", ".join(f"{c.column} ({c.what})" for c in left_out)
    example = next((c for c in left_out if c.part in ("hour", "month", "day_of_week")), left_out[0])
    period = {"hour": "24", "month": "12", "day_of_week": "7"}.get(example.part, "P")
    text = (f"Left out: columns that repeat the calendar date of {timestamp}: {named}. A model given "
            "them extrapolates by calendar date across windows: each new window brings dates it never "
            "trained on. To use one anyway, add it to `columns` below; better, encode it cyclically in a "
            f"features.py builder, e.g. sin and cos of 2*pi*{example.column}/{period} (see `builder`).")
    wrapped = textwrap.wrap(text, width=94, break_long_words=False, break_on_hyphens=False)
    listed = yaml.safe_dump(columns, default_flow_style=True, width=10**6).strip()
    return header + "".join(f"  # {line}\n" for line in wrapped) + f"  columns: {listed}\n"


def _yaml_key(name: str) -> str:
    return yaml.safe_dump({name: 0}, width=10**6).split(":")[0] if name else "''"


# ---------------------------------------------------------------------------------------------
# init from the user's own source
# ---------------------------------------------------------------------------------------------

def create_from_source(root: Path, *, name: str, kind: str, url: str, table: str | None,
                       timestamp: str, target: str, task: str, metric: str, threshold: float,
                       estimator: str | None = None, force: bool = False,
                       password_variable: str = SOURCE_PASSWORD_VAR,
                       progress: Progress = lambda _: None, warn: Warn = lambda _: None) -> Workspace:
    """A workspace for the user's own table; the schema is read from the source.

    A password in ``url`` is written to ``.env`` as ``password_variable`` and modelcycle.yaml
    refers to it; columns that repeat a part of the timestamp are left out of the features
    (``warn`` is told about each). Nothing is left behind when it fails."""
    _check_target(root, force)
    config_url, password = move_password(url, password_variable)
    env_values = {password_variable: password} if password is not None else None
    open_url = url if password is not None else _resolve_given(url, root)
    progress(f"reading the first {SAMPLE_ROWS:,} rows of {redact(open_url)}" + (f" ({table})" if table else ""))
    sample = read_sample(kind, open_url, table, root, timestamp)
    columns = sample.columns
    for col, what in ((timestamp, "--timestamp"), (target, "--target")):
        if col not in columns:
            raise ConfigError(f"the source has no column '{col}' (given as {what})",
                              f"its columns are: {', '.join(columns)}")
    candidates = [c for c in columns if c not in (timestamp, target)]
    left_out = calendar_columns(sample.rows, timestamp, candidates)
    kept = [c for c in candidates if c not in {f.column for f in left_out}]
    if left_out and not kept:
        warn(f"every feature column repeats a part of '{timestamp}' ("
             + ", ".join(f"{f.column}: {f.what}" for f in left_out)
             + "); they stay in, but a model given them extrapolates by calendar date across windows")
        left_out = []
    for found in left_out:
        warn(calendar_warning(found, timestamp, len(sample.rows)))
    if estimator is None:
        estimator = "lightgbm:LGBMRegressor" if task == "regression" else "lightgbm:LGBMClassifier"
    config = Template(_template("generic.modelcycle.yaml")).substitute(
        name=name, kind=kind, url=_yaml_scalar(config_url),
        table_line=f"  table: {_yaml_scalar(table)}\n" if table else "",
        timestamp=_yaml_scalar(timestamp), target=_yaml_scalar(target), task=task,
        columns="\n".join(f"    {_yaml_key(c)}: {t}" for c, t in columns.items()),
        features=_features_block(kept, left_out, timestamp).rstrip("\n"),
        estimator=estimator, metric=metric, threshold=threshold)
    params = {"n_estimators": 200, "learning_rate": 0.05} if estimator.startswith("lightgbm") else {}
    return _all_or_nothing(root, lambda: _finish(root, config, _params_text(params), progress,
                                                 env_values=env_values), progress)


def _resolve_given(url: str, root: Path) -> str:
    """The URL given to init with its own ``${VAR}`` references resolved (environment, or a
    ``.env`` already in the folder)."""
    try:
        return str(resolve_references({"source": {"url": url}}, config_file=root / CONFIG_FILE)["source"]["url"])
    except ConfigError:
        missing = [n for n in references({"source": {"url": url}}).get("source.url", [])
                   if n not in os.environ]
        name = missing[0] if missing else "NAME"
        raise ConfigError(f"--source refers to ${{{name}}}, which is not set",
                          f"set it in the environment first (export {name}=...), or give the URL with its "
                          "password: init moves the password to .env") from None


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar (quoted when YAML would read it otherwise)."""
    return yaml.safe_dump(value, width=10**6).removesuffix("\n...\n").strip()
