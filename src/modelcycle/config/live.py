"""The workspace's long-lived servers that `modelcycle up` started, as recorded in
``.modelcycle/servers.json``: read it and tell live entries from stale ones.

This runs every time a workspace is loaded, so it stays cheap: one small JSON file and, per
server, whether its process is alive and is still the one that was started (its start time
tells a reused pid apart). No HTTP. Starting and stopping the servers is
:mod:`modelcycle.lifecycle.servers`'s job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SERVERS_FILE = "servers.json"
SERVERS = ("prefect", "mlflow")
# how far a recorded start time may be from the process's own (psutil rounds to clock ticks)
START_TOLERANCE_S = 1.0


def servers_path(state_dir: Path) -> Path:
    return Path(state_dir) / SERVERS_FILE


def read_servers(state_dir: Path) -> dict[str, dict[str, Any]]:
    """What ``servers.json`` records, per server name (live or not); {} when there is none."""
    try:
        data = json.loads(servers_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: entry for name, entry in data.items()
            if name in SERVERS and isinstance(entry, dict) and isinstance(entry.get("pid"), int)}


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when there is no such
    process (or it is a zombie, which has ended)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # AccessDenied: it exists but is someone else's
        return None


def is_alive(entry: dict[str, Any]) -> bool:
    """The process ``entry`` records runs, and is the same process (not a reused pid)."""
    pid, started = entry.get("pid"), entry.get("started")
    if not isinstance(pid, int) or pid <= 0 or not isinstance(started, (int, float)):
        return False
    now = process_started(pid)
    return now is not None and abs(now - float(started)) <= START_TOLERANCE_S


def live_servers(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The entries of ``servers.json`` whose process is alive."""
    if not os.path.exists(servers_path(state_dir)):  # the usual case: one stat, nothing more
        return {}
    return {name: entry for name, entry in read_servers(state_dir).items() if is_alive(entry)}
