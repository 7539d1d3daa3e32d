"""What reaches the user from MLflow: its errors, translated once, and its console chatter.

Shared by every module of the registry that talks to MLflow: the adapter
(:mod:`modelcycle.registry.mlflow`), the store opener (:mod:`modelcycle.registry.stores`), the
model writer (:mod:`modelcycle.registry.packaging`), the model logger
(:mod:`modelcycle.registry.logged_models`) and the loaded model (:mod:`modelcycle.registry.loaded`).

Errors: every MLflow (and SQLAlchemy, requests, OS) error is translated once, by
:func:`translate`, into :class:`modelcycle.errors.RegistryError` with a message naming the store
or model and a hint; a full or read-only disk is raised as the disk error the CLI explains.

Console: the first registry (or model written) raises a few chatty MLflow loggers to WARNING and
defaults ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false`` and
``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true`` (explicit settings win; see
:func:`quiet_mlflow_loggers`). Nothing here imports MLflow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

from modelcycle.errors import ModelcycleError, RegistryError, disk_cause

_QUIET_ONCE = threading.Lock()
_quieted = False


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def _short(text: str, limit: int = 600) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def exc_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return _short(message)


def is_missing(exc: BaseException) -> bool:
    if error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return True
    text = str(exc).lower()
    return "not found" in text or "does not exist" in text


@contextlib.contextmanager
def translate(what: str, hint: str | None = None) -> Iterator[None]:
    """Turn any third-party error inside the block into ``RegistryError(what: cause, hint)``.

    modelcycle's own errors pass through unchanged."""
    try:
        yield
    except ModelcycleError:
        raise
    except Exception as exc:
        disk = disk_cause(exc)
        if disk is not None:  # a full or read-only disk: said as such, with the file, by the CLI
            raise disk from exc
        raise RegistryError(f"{what}: {exc_text(exc)}", hint or _default_hint(exc)) from exc


def _default_hint(exc: BaseException) -> str | None:
    text = str(exc).lower()
    code = error_code(exc)
    if "max retries exceeded" in text or "connection refused" in text or "failed to establish" in text:
        return ("is the MLflow server running and reachable? Check backends.mlflow_tracking_uri in modelcycle.yaml "
                "or MLFLOW_TRACKING_URI")
    if "out-of-date database schema" in text or "mlflow db upgrade" in text:
        return "upgrade the database with `mlflow db upgrade <tracking uri>` (back it up first)"
    if "database is locked" in text:
        return "another process holds the SQLite database; retry, or use an MLflow server for concurrent writers"
    if code == "RESOURCE_DOES_NOT_EXIST":
        return "check the name, version or id; `mlflow ui` shows what the store holds"
    return None


# --------------------------------------------------------------------------------------------
# Console noise
# --------------------------------------------------------------------------------------------


def quiet_mlflow_loggers() -> None:
    """Keep MLflow's INFO chatter (database creation and migrations, system-metrics thread
    start/stop) off the user's console. Loggers the user configured, and an explicit
    ``MLFLOW_LOGGING_LEVEL=DEBUG``, are left alone."""
    global _quieted
    with _QUIET_ONCE:
        if _quieted:
            return
        _quieted = True
        # MLflow draws a tqdm bar for every local file it copies into a model; the CLI draws
        # its own progress. Only a default: an explicit setting wins.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # With a server, MLflow writes "View run ... at: <url>" to *stdout* when a run ends,
        # which would mix into the CLI's output; MlflowRegistry.run_url gives the link instead.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if os.environ.get("MLFLOW_LOGGING_LEVEL", "").upper() == "DEBUG":
            return
        for name in (
            "mlflow.pyfunc",  # "Validating input example against model signature"
            "mlflow.store.db.utils",
            "mlflow.store.tracking.sqlalchemy_store",
            "mlflow.store.model_registry.sqlalchemy_store",
            "mlflow.store.model_registry.abstract_store",  # "Waiting up to 300 seconds for ..."
            "mlflow.system_metrics",
            "alembic",
        ):
            logger = logging.getLogger(name)
            if logger.level in (logging.NOTSET, logging.DEBUG, logging.INFO):
                logger.setLevel(logging.WARNING)

