"""Where an MLflow store lives, and opening a client on it.

The URIs a registry is given (``sqlite:///``, ``http(s)://``, ``postgresql://``; artifact
folders or URIs) are normalised here, and :func:`open_client` opens the one explicit
``MlflowClient`` the adapter (:mod:`modelcycle.registry.mlflow`) works through: it checks that a
SQLite store's folder exists, starts a new SQLite store from the cached empty schema
(:mod:`modelcycle.dbcache`; MLflow's migrations take seconds) and says what to check when the
store does not open. :func:`check_answers` asks an open store (or server) to answer once.
:func:`log_batches` and :func:`artifact_files` write a run's values and read its files through a
client, for the adapter and for migration alike.
Importing this module does not import MLflow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from modelcycle import dbcache
from modelcycle.config import redact
from modelcycle.errors import RegistryError
from modelcycle.registry.translate import exc_text, translate

if TYPE_CHECKING:
    from mlflow import MlflowClient


def embedded_uris(workspace: str | os.PathLike[str]) -> tuple[str, str]:
    """The embedded default backend of a workspace: ``(tracking_uri, artifact_location)``.

    ``sqlite:////abs/ws/.modelcycle/mlflow.db`` and ``file:///abs/ws/.modelcycle/mlartifacts``.
    """
    root = Path(workspace).expanduser().resolve() / ".modelcycle"
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}", (root / "mlartifacts").as_uri()


def redact_uri(uri: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return redact(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory as SQLite
    reads it), or None for other stores and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///"):].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw)


def has_scheme(location: str) -> bool:
    scheme = urlparse(location).scheme
    return len(scheme) > 1  # "C:\\..." is a Windows drive, not a scheme


def artifact_root(artifact_location: str | None, tracking_uri: str) -> str | None:
    """Normalise ``artifact_location`` to a URI. A local folder becomes ``file:///abs``; with
    None, a SQLite store keeps artifacts in ``mlartifacts`` beside the database file (MLflow's
    own default would be ``./mlartifacts`` under whatever the working directory is)."""
    if artifact_location is None:
        db = sqlite_path(tracking_uri)
        if db is None:
            return None  # a server decides (mlflow-artifacts proxy) or MLflow's default
        return (db.expanduser().resolve().parent / "mlartifacts").as_uri()
    if has_scheme(artifact_location):
        return artifact_location.rstrip("/")
    return Path(artifact_location).expanduser().resolve().as_uri()


def experiment_folder(name: str) -> str:
    """The folder of experiment ``name`` under the artifact root."""
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "experiment"


def open_hint(tracking_uri: str) -> str:
    """What to check when the store at ``tracking_uri`` does not open or answer."""
    scheme = urlparse(tracking_uri).scheme
    if scheme.startswith("postgres"):
        # SQLAlchemy 2.1 made psycopg (v3) the driver of plain postgresql:// URIs.
        return ("check the host, database and credentials, and that the driver is installed: "
                "`pip install 'modelcycle[postgres]'` (psycopg 3) for postgresql://")
    return "check backends.mlflow_tracking_uri in modelcycle.yaml or MLFLOW_TRACKING_URI"


def _preflight(uri: str) -> None:
    db = sqlite_path(uri)
    if db is not None and not db.expanduser().parent.is_dir():
        raise RegistryError(
            f"cannot open the MLflow store {uri}: the folder {db.expanduser().parent} does not exist",
            "create it (`modelcycle init` makes .modelcycle/ in a workspace), or fix backends.mlflow_tracking_uri "
            "in modelcycle.yaml / MLFLOW_TRACKING_URI",
        )


def open_client(tracking_uri: str, registry_uri: str) -> MlflowClient:
    """An ``MlflowClient`` on these two stores (a RegistryError naming the store, with a hint,
    when one cannot be opened). A new SQLite store is created from the cached empty schema, or
    migrated now and cached for the next one."""
    uris = {tracking_uri, registry_uri}
    for uri in uris:
        _preflight(uri)
    fresh = [db for uri in uris
             if (db := sqlite_path(uri)) is not None and not db.expanduser().exists()
             and not dbcache.seed("mlflow", db.expanduser())]
    from mlflow import MlflowClient

    with translate(f"cannot open the MLflow store {redact_uri(tracking_uri)}", open_hint(tracking_uri)):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        if fresh:
            client.search_experiments(max_results=1)      # runs the migrations now
            client.search_registered_models(max_results=1)
    for db in fresh:
        dbcache.remember("mlflow", db.expanduser())
    return client


def check_answers(client: MlflowClient, tracking_uri: str, timeout: float = 5.0) -> None:
    """Reach the store once (a cheap query; for a server, ``/health`` with ``timeout``).

    Raises RegistryError naming the URI when it does not answer. MLflow's own HTTP client
    retries for minutes before giving up, so call this before a long flow."""
    if urlparse(tracking_uri).scheme in ("http", "https"):
        import requests

        url = tracking_uri.rstrip("/") + "/health"
        try:
            requests.get(url, timeout=timeout)
        except requests.RequestException as exc:
            raise RegistryError(
                f"the MLflow server {redact_uri(tracking_uri)} does not answer: {exc_text(exc)}",
                "start it (`mlflow server ...`) or fix backends.mlflow_tracking_uri in modelcycle.yaml / "
                "MLFLOW_TRACKING_URI",
            ) from exc
        return
    with translate(f"the MLflow store {redact_uri(tracking_uri)} does not answer", open_hint(tracking_uri)):
        client.search_experiments(max_results=1)


def experiment_locations(client: MlflowClient, tracking_uri: str, names: list[str]) -> dict[str, str]:
    """The artifact location of each experiment of ``names`` that exists in the store."""
    found: dict[str, str] = {}
    with translate(f"cannot read the experiments of {redact_uri(tracking_uri)}", open_hint(tracking_uri)):
        for name in names:
            exp = client.get_experiment_by_name(name)
            if exp is not None and exp.artifact_location:
                found[name] = str(exp.artifact_location)
    return found


def log_batches(client: MlflowClient, run_id: str, *, params: Sequence[Any] = (), tags: Sequence[Any] = (),
                metrics: Sequence[Any] = ()) -> None:
    """Params, tags and metric points (MLflow's entities) to run ``run_id`` with ``log_batch``, in
    batches of MLflow's limits: the params first, then the tags, then the metrics."""
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    for kind, items, size in (("params", params, MAX_PARAMS_TAGS_PER_BATCH), ("tags", tags, MAX_PARAMS_TAGS_PER_BATCH),
                              ("metrics", metrics, MAX_METRICS_PER_BATCH)):
        entries = list(items)
        for start in range(0, len(entries), size):
            client.log_batch(run_id, **{kind: entries[start:start + size]}, synchronous=True)


def artifact_files(client: MlflowClient, run_id: str) -> dict[str, int | None]:
    """Every file among run ``run_id``'s artifacts (its path in the run) with its size; folders
    are walked, not listed."""
    files: dict[str, int | None] = {}
    pending: list[str | None] = [None]
    while pending:
        for info in client.list_artifacts(run_id, pending.pop()):
            if info.is_dir:
                pending.append(info.path)
            else:
                files[info.path] = info.file_size
    return files
