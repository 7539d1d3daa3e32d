"""A workspace's long-lived Prefect and MLflow servers, with their UIs: `modelcycle up` / `down`.

Every command otherwise runs Prefect on a server that lives as long as the command (no UI, see
:mod:`modelcycle.lifecycle.runtime`) and MLflow on the workspace's SQLite file. `up` starts, in
the background, Prefect's server with its UI (home ``.modelcycle/prefect``, so earlier runs show)
and an MLflow tracking server with its UI on the workspace's own store and artifact folder.
Each runs in its own session (its own process group), writes to a log under
``.modelcycle/servers/`` and outlives the command. ``.modelcycle/servers.json`` records them
(pid, the process's start time to tell a reused pid apart, port, URLs, log); while they run,
every command of the workspace uses them (:class:`modelcycle.config.Workspace` reads that file).
`down` stops exactly those processes.

A server configured elsewhere (``backends.mlflow_tracking_uri`` / ``MLFLOW_TRACKING_URI`` naming
an http(s) server, ``backends.prefect_api_url`` / ``PREFECT_API_URL``) is used as it is: `up`
starts nothing for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelcycle import dbcache
from modelcycle.atomic import write_atomic
from modelcycle.config import Workspace
from modelcycle.config.live import process_started, read_servers, servers_path
from modelcycle.config.live import is_alive as _is_alive
from modelcycle.errors import WorkspaceError
from modelcycle.lifecycle.runtime import free_port

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
LOG_DIR = "servers"
# the embedded server's settings hold writes back for a short-lived server; never for this one
_NOT_INHERITED = ("PREFECT_API_URL", "PREFECT__SERVER_EPHEMERAL", "PREFECT_UI_ENABLED",
                  "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE",
                  "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL",
                  "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE",
                  "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL",
                  "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
TITLES = {"prefect": "Prefect", "mlflow": "MLflow"}


class ServerStartError(WorkspaceError):
    """A server of `modelcycle up` did not start."""


@dataclass
class Launch:
    """One server to start: its command, environment and addresses."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    url: str  # what clients use (Prefect: its API)
    ui: str
    health: str
    log: Path
    extra: dict[str, str] = field(default_factory=dict)  # recorded as is (the store it serves)
    on_ready: Callable[[], None] | None = None
    process: subprocess.Popen[bytes] | None = None
    started: float | None = None


@dataclass(frozen=True)
class UpResult:
    servers: dict[str, dict[str, Any]]  # name -> its servers.json entry
    started: tuple[str, ...]  # the ones this call started (the others were running)
    external: dict[str, str]  # name -> a configured server's URL `up` left alone


def _port_free(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _reach(host: str) -> str:
    """The address a client on this machine uses for a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _is_http(url: str | None) -> bool:
    return bool(url) and str(url).split("://", 1)[0].lower() in ("http", "https")


def external_servers(ws: Workspace) -> dict[str, str]:
    """The servers the workspace is configured to use instead of its own (name -> URL)."""
    found = {}
    configured_mlflow = os.environ.get("MLFLOW_TRACKING_URI") or ws.config.backends.mlflow_tracking_uri
    if not configured_mlflow.startswith("sqlite:"):
        found["mlflow"] = configured_mlflow
    configured_prefect = os.environ.get("PREFECT_API_URL") or ws.config.backends.prefect_api_url
    if configured_prefect:
        found["prefect"] = configured_prefect
    return found


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def _prefect(ws: Workspace, host: str, port: int, logs: Path) -> Launch:
    import importlib.util

    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise ServerStartError("Prefect is not installed in this environment",
                               "install modelcycle's dependencies (`pip install modelcycle`)")
    home = ws.prefect_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    base = f"http://{_reach(host)}:{port}"
    env = _base_env()
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port),
                "PREFECT_UI_API_URL": f"{base}/api", "PREFECT_UI_URL": base, "PREFECT_SERVER_UI_ENABLED": "true",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT__SERVER_FINAL": "1"})
    db = home / "prefect.db"
    own_db = any(env.get(k) for k in ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"))
    fresh = not own_db and not db.exists() and not dbcache.seed("prefect", db)

    def remember() -> None:  # migrated and still empty: the next workspace starts from it
        if fresh:
            dbcache.remember("prefect", db)

    app_dir = Path(spec.origin).parent.parent
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
            "prefect.server.api.server:create_app", "--host", host, "--port", str(port),
            "--log-level", "warning", "--lifespan", "on", "--timeout-keep-alive", "5"]
    return Launch("prefect", argv, env, port, f"{base}/api", base, f"{base}/api/health",
                  logs / "prefect.log", extra={"home": str(home)}, on_ready=remember)


def _mlflow(ws: Workspace, host: str, port: int, logs: Path) -> Launch:
    from modelcycle.registry.stores import sqlite_path
    from modelcycle.registry.workspace import own_store

    store = ws.local_tracking_uri
    db = sqlite_path(store)
    if db is not None and not db.exists():
        dbcache.seed("mlflow", db)
    try:
        own_store(ws, store)  # a moved or copied workspace's store points at its own artifacts first
    except sqlite3.Error as exc:
        raise ServerStartError(f"the MLflow store {store} cannot be read: {exc}",
                               "restore .modelcycle/mlflow.db from a backup, or point backends.mlflow_tracking_uri "
                               "at another store; `modelcycle doctor` checks it") from exc
    artifacts = ws.artifact_location
    if artifacts.startswith("file:"):
        Path(artifacts.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    base = f"http://{_reach(host)}:{port}"
    env = _base_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    # no background job runner (GenAI evaluation jobs): seven idle processes less
    env.update({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"})
    if _reach(host).startswith("127.") or host == "localhost":
        # `modelcycle serve` on this machine registers a webhook at http://127.0.0.1:PORT/hooks/mlflow
        # (signed with its secret) to follow alias moves at once; a loopback-only server may deliver there
        env.setdefault("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
        env.setdefault("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    argv = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
            "--backend-store-uri", store, "--default-artifact-root", artifacts,
            "--serve-artifacts", "--artifacts-destination", artifacts, "--workers", "1"]
    return Launch("mlflow", argv, env, port, base, base, f"{base}/health", logs / "mlflow.log",
                  extra={"store": store})


def _spawn(launch: Launch) -> None:
    launch.log.parent.mkdir(parents=True, exist_ok=True)
    with open(launch.log, "ab") as log_file:
        log_file.write(f"\n--- {datetime.now(UTC).isoformat(timespec='seconds')} modelcycle up: "
                       f"{' '.join(launch.argv[1:])}\n".encode())
        log_file.flush()
        launch.process = subprocess.Popen(launch.argv, env=launch.env, stdout=log_file, stderr=log_file,
                                          stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    launch.started = process_started(launch.process.pid)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 12, chars: int = 2000) -> str:
    """The last lines of a log (the last start's, where the error is)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


def _wait(launches: list[Launch], timeout: float, on_ready: Callable[[str], None] | None) -> None:
    """Until every server answers; ServerStartError naming the first that exits or times out."""
    deadline = time.monotonic() + timeout
    waiting = {launch.name: launch for launch in launches}
    while waiting:
        for name, launch in list(waiting.items()):
            assert launch.process is not None
            code = launch.process.poll()
            if code is not None:
                _fail(launch, f"it exited with code {code}")
            if _answers(launch.health):
                del waiting[name]
                if launch.on_ready is not None:
                    launch.on_ready()
                if on_ready is not None:
                    on_ready(name)
        if waiting and time.monotonic() > deadline:
            _fail(next(iter(waiting.values())), f"it did not answer within {timeout:.0f} s")
        if waiting:
            time.sleep(0.2)


def _fail(launch: Launch, why: str) -> None:
    tail = _tail(launch.log)
    raise ServerStartError(
        f"the {TITLES[launch.name]} server did not start on port {launch.port}: {why}"
        + (f"; its log {launch.log} ends with:\n{tail}" if tail else f" (log: {launch.log})"),
        "read the log above; a port in use: pass another with --prefect-port / --mlflow-port; "
        "then run `modelcycle up` again")


def _entry(launch: Launch) -> dict[str, Any]:
    assert launch.process is not None
    return {"pid": launch.process.pid, "started": launch.started, "port": launch.port, "url": launch.url,
            "ui": launch.ui, "log": str(launch.log), "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **launch.extra}


def _write(state_dir: Path, servers: dict[str, dict[str, Any]]) -> None:
    path = servers_path(state_dir)
    if not servers:
        path.unlink(missing_ok=True)
        return
    write_atomic(path, json.dumps(servers, indent=2) + "\n")


def running(ws: Workspace) -> dict[str, dict[str, Any]]:
    """The recorded servers that run now (each entry of servers.json whose process is alive)."""
    return {name: entry for name, entry in read_servers(ws.state_dir).items() if _is_alive(entry)}


@contextlib.contextmanager
def _one_at_a_time(ws: Workspace) -> Iterator[None]:
    """`up` and `down` of one workspace take turns (two `up` at once would start two pairs).
    Not the workspace's lock: a cycle holds that for minutes, and `up` need not wait for it."""
    from filelock import FileLock

    ws.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with FileLock(str(servers_path(ws.state_dir)) + ".lock"):
        yield


def up(ws: Workspace, *, host: str = "127.0.0.1", prefect_port: int | None = None, mlflow_port: int | None = None,
       timeout: float = START_TIMEOUT_S, on_ready: Callable[[str], None] | None = None,
       on_start: Callable[[tuple[str, ...]], None] | None = None) -> UpResult:
    """Start the workspace's servers that are not running yet, in parallel, and wait until all
    answer. On failure, stop what this call started and raise :class:`ServerStartError`."""
    with _one_at_a_time(ws):
        return _up(ws, host, prefect_port, mlflow_port, timeout, on_ready, on_start)


def _up(ws: Workspace, host: str, prefect_port: int | None, mlflow_port: int | None, timeout: float,
        on_ready: Callable[[str], None] | None, on_start: Callable[[tuple[str, ...]], None] | None) -> UpResult:
    external = external_servers(ws)
    recorded = read_servers(ws.state_dir)
    alive = {name: entry for name, entry in recorded.items() if _is_alive(entry)}
    for name, entry in recorded.items():  # a stale entry: its leader ended; end what it left behind
        if name not in alive and _orphans_remain(int(entry["pid"])):
            stop_group(int(entry["pid"]), None)
    wanted = [name for name in ("prefect", "mlflow") if name not in external and name not in alive]
    if not wanted:
        if alive != recorded:
            _write(ws.state_dir, alive)  # forget what has ended
        return UpResult(alive, (), external)
    logs = ws.state_dir / LOG_DIR
    ports = {"prefect": prefect_port, "mlflow": mlflow_port}
    for name in wanted:
        port = ports[name]
        if port is not None and not _port_free(host, port):
            raise ServerStartError(f"port {port} on {host} is in use: the {TITLES[name]} server cannot listen there",
                                   f"pass another port (--{name}-port), or leave it out for a free one")
    builders = {"prefect": _prefect, "mlflow": _mlflow}
    launches = [builders[name](ws, host, ports[name] or free_port(host), logs) for name in wanted]
    try:
        for launch in launches:
            _spawn(launch)
        if on_start is not None:
            on_start(tuple(wanted))
        _wait(launches, timeout, on_ready)
    except BaseException:  # a failed start, or Ctrl-C while waiting: leave no process behind
        for launch in launches:
            if launch.process is not None:
                stop_group(launch.process.pid, launch.started)
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    launch.process.wait(timeout=1)
        raise
    servers = {**alive, **{launch.name: _entry(launch) for launch in launches}}
    _write(ws.state_dir, servers)
    return UpResult(servers, tuple(wanted), external)


@dataclass(frozen=True)
class Stopped:
    name: str
    pid: int
    how: str  # "stopped", "killed" (did not stop within the timeout), "not running" (stale)


def down(ws: Workspace, *, timeout: float = STOP_TIMEOUT_S) -> list[Stopped]:
    """Stop the servers servers.json records (their whole process groups) and remove the file."""
    if not servers_path(ws.state_dir).exists():
        return []
    with _one_at_a_time(ws):
        return _down(ws, timeout)


def _down(ws: Workspace, timeout: float) -> list[Stopped]:
    stopped = []
    for name, entry in read_servers(ws.state_dir).items():
        pid = int(entry["pid"])
        started = entry.get("started")
        if not _is_alive(entry) and not _orphans_remain(pid):
            stopped.append(Stopped(name, pid, "not running"))
            continue
        how = stop_group(pid, float(started) if isinstance(started, (int, float)) else None, timeout)
        stopped.append(Stopped(name, pid, how))
    _write(ws.state_dir, {})
    return stopped


def _orphans_remain(pgid: int) -> bool:
    """Processes of the group ``pgid`` remain while its leader is gone. The pid of a group's
    leader is not reused while any process of its group lives, so a live process that now has
    that pid means the group is gone."""
    if process_started(pgid) is not None:
        return False  # the pid is someone else's now (or the leader itself, which is handled first)
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return False
    except ProcessLookupError:
        return True
    except PermissionError:
        return False


def stop_group(pid: int, started: float | None, timeout: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM the process group of ``pid`` (the server started it in its own session), wait,
    then SIGKILL. Only when ``pid`` is still the process that was started (or its group's
    orphans remain): a reused pid is someone else's."""
    alive = process_started(pid)
    if alive is not None and started is not None and abs(alive - started) > 1.0:
        return "not running"  # the pid was reused: not ours
    if alive is None and not _orphans_remain(pid):
        return "not running"
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "stopped"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if _group_gone(pid):
            return "stopped"
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if _group_gone(pid):
            break
        time.sleep(0.1)
    return "killed"


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when this process started it (a test, or `up` cleaning up),
    or it stays a zombie and its group never looks gone."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def describe(ws: Workspace) -> list[tuple[str, str]]:
    """One line per recorded server for `status`: (name, text)."""
    lines = []
    recorded = read_servers(ws.state_dir)
    for name in ("prefect", "mlflow"):
        entry = recorded.get(name)
        if entry is None:
            lines.append((name, "not running (`modelcycle up` starts it)"))
        elif _is_alive(entry):
            since = entry.get("started_at", "?")
            lines.append((name, f"running at {entry.get('ui')} (pid {entry.get('pid')}, since {since})"))
        else:
            lines.append((name, f"stale: pid {entry.get('pid')} has ended (`modelcycle down` clears it, "
                                "`modelcycle up` restarts it)"))
    return lines


def summary(name: str, entry: dict[str, Any]) -> str:
    if name == "prefect":
        return f"Prefect  UI {entry['ui']}   API {entry['url']}"
    return f"MLflow   UI {entry['ui']}   tracking URI {entry['url']}"


__all__ = ["ServerStartError", "Stopped", "UpResult", "describe", "down", "external_servers", "free_port",
           "running", "summary", "up"]
