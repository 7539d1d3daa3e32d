"""Create a workspace: a git repository with DVC, modelcycle.yaml, params.yaml, dvc.yaml and the
embedded backends under ``.modelcycle/``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import yaml

from modelcycle.config import CONFIG_FILE, PARAMS_FILE, STATE_DIR, Workspace, load_config
from modelcycle.errors import ConfigError, WorkspaceError

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

PARAMS_HEADER = ("# params.yaml: what the pipeline steps read (DVC params).\n"
                 "# `dvc exp run -S model.learning_rate=0.1` tries another value; "
                 "`window` is set by each cycle.\n")


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


def _params_text(model_params: dict[str, Any], *, history_months: int = 6,
                 holdout_fraction: float = 0.3, seed: int = 42) -> str:
    body = {"window": None, "seed": seed, "data": {"history_months": history_months},
            "split": {"holdout_fraction": holdout_fraction}, "model": model_params}
    return PARAMS_HEADER + yaml.safe_dump(body, sort_keys=False)


def _finish(root: Path, config_text: str, params_text: str, progress: Progress) -> Workspace:
    from modelcycle.registry.mlflow import MlflowRegistry
    from modelcycle.versioning import dvcgit

    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE).write_text(config_text, encoding="utf-8")
    try:
        load_config(root / CONFIG_FILE)
    except ConfigError:
        (root / CONFIG_FILE).unlink()
        raise
    (root / PARAMS_FILE).write_text(params_text, encoding="utf-8")
    (root / "dvc.yaml").write_text(_template("dvc.yaml"), encoding="utf-8")
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if f"/{STATE_DIR}/" not in existing:
        gitignore.write_text(existing + ("\n" if existing and not existing.endswith("\n") else "")
                             + _template("gitignore"), encoding="utf-8")
    ws = Workspace.load(root)
    for sub in ("mlartifacts", "prefect"):
        (ws.state_dir / sub).mkdir(parents=True, exist_ok=True)
    progress("initialising git and DVC")
    dvcgit.init_workspace_repo(str(root), ws.dvc_remote)
    progress("creating the MLflow tracking database")
    MlflowRegistry(ws.tracking_uri, registry_uri=ws.registry_uri,
                   artifact_location=ws.artifact_location).experiment_id(ws.config.name)
    dvcgit.commit_paths(str(root), [CONFIG_FILE, PARAMS_FILE, "dvc.yaml", ".gitignore", ".dvc", ".dvcignore"],
                        f"modelcycle init: {ws.config.name}")
    return ws


def create_taxifare(root: Path, *, rows_per_month: int | None = None, seed: int = 7,
                    min_effect: float = 0.01, force: bool = False,
                    progress: Progress = lambda _: None) -> Workspace:
    """The demo workspace: simulated New York cab rides 2009-01..2015-06 in a DuckDB warehouse."""
    from modelcycle.sources import simulator

    _check_target(root, force)
    rows = rows_per_month or simulator.DEFAULT_ROWS_PER_MONTH
    config = Template(_template("taxifare.modelcycle.yaml")).substitute(
        seed=seed, rows_per_month=rows, min_effect=min_effect)
    # a year of history: the challenger has seen every season (6 months leave the summer unseen,
    # and a model trained through a fare change then confuses the season with the new fares)
    ws = _finish(root, config, _params_text(dict(simulator.DEFAULT_MODEL_PARAMS), history_months=12), progress)
    progress(f"simulating 78 months of cab rides ({rows} a month) into the DuckDB warehouse")
    simulator.write_warehouse(ws.state_dir / "warehouse.duckdb", "2009-01", "2015-06",
                              seed=seed, rows_per_month=rows)
    return ws


_DUCK_TYPES = {"DOUBLE": "float", "FLOAT": "float", "REAL": "float", "DECIMAL": "float",
               "BIGINT": "int", "INTEGER": "int", "SMALLINT": "int", "TINYINT": "int", "HUGEINT": "int",
               "UBIGINT": "int", "UINTEGER": "int", "USMALLINT": "int", "UTINYINT": "int",
               "BOOLEAN": "bool", "DATE": "datetime", "TIMESTAMP": "datetime",
               "TIMESTAMP WITH TIME ZONE": "datetime", "TIMESTAMP_NS": "datetime", "TIMESTAMP_MS": "datetime",
               "TIMESTAMP_S": "datetime", "VARCHAR": "str"}


def infer_columns(kind: str, url: str, table: str | None, root: Path, timestamp: str) -> dict[str, str]:
    """Read the source's columns and map their types onto modelcycle's."""
    import duckdb

    from modelcycle.errors import SourceError
    from modelcycle.sources.files import FileSource
    from modelcycle.sources.sql import DuckDBSource

    try:
        if kind == "files":
            src = FileSource(url, timestamp=timestamp, root=root)
            rel = src._reader(src.files())
            rows = duckdb.sql(f"DESCRIBE SELECT * FROM {rel}").fetchall()
        elif kind == "duckdb":
            path = Path(url)
            con = DuckDBSource(path if path.is_absolute() else root / path, timestamp=timestamp,
                               table=table)._connect()
            rows = con.execute(f'DESCRIBE SELECT * FROM "{table}"').fetchall()
            con.close()
        else:
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            insp = sa.inspect(engine)
            cols = insp.get_columns(table)
            engine.dispose()
            rows = [(c["name"], str(c["type"]).upper()) for c in cols]
    except duckdb.Error as exc:
        raise SourceError(f"cannot read the source to learn its columns: {str(exc).splitlines()[0]}") from exc
    out: dict[str, str] = {}
    for name, kind_name, *_ in rows:
        base = str(kind_name).split("(")[0].strip().upper()
        out[str(name)] = _DUCK_TYPES.get(base, "float" if any(k in base for k in ("INT", "NUM", "DOUB", "FLOA"))
                                         else "datetime" if "TIME" in base or "DATE" in base else "str")
    if timestamp in out and out[timestamp] == "str":
        out[timestamp] = "datetime"  # CSV timestamps with a zone suffix arrive as text
    return out


def create_from_source(root: Path, *, name: str, kind: str, url: str, table: str | None,
                       timestamp: str, target: str, task: str, metric: str, threshold: float,
                       estimator: str | None = None, force: bool = False,
                       progress: Progress = lambda _: None) -> Workspace:
    """A workspace for the user's own table; the schema is read from the source."""
    _check_target(root, force)
    root.mkdir(parents=True, exist_ok=True)
    columns = infer_columns(kind, url, table, root, timestamp)
    for col, what in ((timestamp, "--timestamp"), (target, "--target")):
        if col not in columns:
            raise ConfigError(f"the source has no column '{col}' (given as {what})",
                              f"its columns are: {', '.join(columns)}")
    if estimator is None:
        estimator = "lightgbm:LGBMRegressor" if task == "regression" else "lightgbm:LGBMClassifier"
    config = Template(_template("generic.modelcycle.yaml")).substitute(
        name=name, kind=kind, url=url, table_line=f"  table: {table}\n" if table else "",
        timestamp=timestamp, target=target, task=task,
        columns="\n".join(f"    {c}: {t}" for c, t in columns.items()),
        estimator=estimator, metric=metric, threshold=threshold)
    params = {"n_estimators": 200, "learning_rate": 0.05} if estimator.startswith("lightgbm") else {}
    return _finish(root, config, _params_text(params), progress)
