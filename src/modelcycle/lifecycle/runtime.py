"""Prefect's settings for a workspace, set before Prefect is imported.

With no ``backends.prefect_api_url`` (and no ``PREFECT_API_URL``), Prefect runs locally with its
home, database and UI data in ``.modelcycle/prefect``: the process starts Prefect's temporary
server on first use and stops it on exit. Two settings make that server fit short cycles:

* the task-run recorder batches its writes (Prefect's default writes once per event, and on
  SQLite those writes collide with the next flow's creation, costing a 2 s client retry);
* flow-run heartbeats are off (they detect crashed runs of a long-lived server; a temporary
  server ends with the process, and the heartbeat thread costs up to a second per flow run).

A team server (``PREFECT_API_URL``) keeps all of Prefect's defaults.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

EMBEDDED_SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "3",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "3",
    # a fresh database runs its migrations first: give the temporary server time to start
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def configure(*, prefect_home: Path | None, api_url: str | None, verbose: bool = False) -> None:
    """Set Prefect's environment for this process. Call before the first ``import prefect``."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        # Prefect's own log lines (tracebacks of failed tasks included) still reach its API and
        # UI; the terminal shows modelcycle's view, where an error is one paragraph.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "CRITICAL")
    global _team_server
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
        _team_server = True
        return
    if prefect_home is not None and "PREFECT_HOME" not in os.environ:
        prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(prefect_home)
    for key, value in EMBEDDED_SERVER_SETTINGS.items():
        os.environ.setdefault(key, value)


_team_server = False


def start_local_server() -> threading.Thread | None:
    """Start Prefect's temporary server in the background (it takes 8-20 s), so that it comes up
    while the caller does other work. Join the thread before the first flow runs; a server that
    failed to start here is started (and its error reported) by that first flow."""
    if team_server() or os.environ.get("PREFECT_API_URL"):
        return None

    def _start() -> None:
        try:
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()
        except Exception:  # the first flow starts it again and reports the reason
            logging.getLogger(__name__).debug("early start of Prefect's server failed", exc_info=True)

    thread = threading.Thread(target=_start, name="prefect-server-start", daemon=True)
    thread.start()
    return thread


def team_server() -> bool:
    """True when the user pointed modelcycle at a Prefect server (config or PREFECT_API_URL)."""
    return _team_server or bool(os.environ.get("PREFECT_API_URL"))
