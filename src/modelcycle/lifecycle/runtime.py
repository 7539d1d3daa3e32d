"""Prefect's settings and local server for a workspace, set up before Prefect is imported.

With no ``backends.prefect_api_url`` (and no ``PREFECT_API_URL``), Prefect runs locally: its
home, database and run history live in ``.modelcycle/prefect``, and a local server runs for as
long as the command does. That server is Prefect's own server application
(``prefect.server.api.server:create_app`` under uvicorn, the command Prefect's temporary server
runs), started by :class:`LocalServer` *before* this process imports Prefect. Prefect's built-in
temporary server would first import the whole server package into this process (7-8 s of one
core) and only then start it; started here, it comes up on the other core while this process
imports the rest and builds or reads the workspace.

Three settings make it fit short cycles:

* the task-run recorder and the event persister hold their writes until the server stops
  (or ten minutes pass): on SQLite a batch write collides with a cycle's own API calls
  (creating its flow run, setting its state), which then wait for a 2 s client retry. Nothing
  is lost: :meth:`LocalServer.stop` stops the server with SIGTERM and waits while Prefect's
  services write what they hold, and a modelcycle process that dies sends the server the
  same SIGTERM. This server has no UI and lives only as long as the command, so no one reads
  those rows before then;
* flow-run heartbeats are off (they detect crashed runs of a long-lived server; this server
  ends with the command, and the heartbeat thread costs up to a second per flow run);
* a new workspace's database starts from a cached, already migrated empty one
  (:mod:`modelcycle.dbcache`), which saves Prefect's ~10 s of migrations;
* block types are registered once per database and Prefect version, not at every start: the
  server would otherwise import every installed Prefect collection (Dask's ``distributed``
  among them) to check that nothing changed, about 2 s of one core per command.

A team server (``PREFECT_API_URL`` or ``backends.prefect_api_url``) keeps Prefect's defaults.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

from modelcycle import dbcache

log = logging.getLogger(__name__)

EMBEDDED_SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # task runs, their states and events are written when the server stops (see above)
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "10000",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "600",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "10000",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "600",
    # if Prefect starts its own temporary server (a fresh database migrates first), wait for it
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}
STARTUP_TIMEOUT_S = 180.0
# how long the server may take to write what its services hold before it is killed
STOP_TIMEOUT_S = 60.0

_team_server = False
_local: LocalServer | None = None


def configure(*, prefect_home: Path | None, api_url: str | None, verbose: bool = False) -> None:
    """Set Prefect's environment for this process. Call before the first ``import prefect``."""
    global _team_server
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Prefect's server imports py-key-value (through docket), which wraps each of its functions in
    # runtime type checks as it is imported unless told not to: about 7% of the 5 s a Prefect
    # server takes to import (every local server, `modelcycle up`'s). The checks change no behaviour.
    os.environ.setdefault("PY_KEY_VALUE_DISABLE_BEARTYPE", "true")
    if not verbose:
        # Prefect's own log lines (tracebacks of failed tasks included) still reach its API and
        # UI; the terminal shows modelcycle's view, where an error is one paragraph.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "CRITICAL")
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
        _team_server = True
        return
    if os.environ.get("PREFECT_API_URL") and (_local is None or os.environ["PREFECT_API_URL"] != _local.api_url):
        _team_server = True
        return
    if prefect_home is not None and "PREFECT_HOME" not in os.environ:
        prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(prefect_home)
    for key, value in EMBEDDED_SERVER_SETTINGS.items():
        os.environ.setdefault(key, value)


def current_flow_run() -> Any:
    """The Prefect flow run this code runs in (in its flow or one of its tasks), or None outside
    one: a command-line helper, a test. The one place that reads it: the cycle's flow run id,
    a deployed run's deployment and name, the approval pause."""
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
    except Exception:  # noqa: BLE001 - Prefect without a run context
        return None
    return getattr(ctx, "flow_run", None) if ctx is not None else None


def team_server() -> bool:
    """True when the user pointed modelcycle at a Prefect server (config or PREFECT_API_URL)."""
    return _team_server


def long_lived_server() -> bool:
    """True when this process's flows talk to a Prefect server that outlives it (a team's,
    ``modelcycle up``'s; every deployed run), where other machines' cycles may run too; False on
    the local server a command starts."""
    url = os.environ.get("PREFECT_API_URL")
    return _team_server or (bool(url) and (_local is None or url != _local.api_url))


def check_api(timeout: float = 5.0) -> None:
    """Reach the configured Prefect API's health endpoint; a WorkspaceError naming the URL if it
    does not answer within ``timeout`` seconds."""
    from modelcycle.errors import WorkspaceError

    url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if not url:
        return
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            if resp.status == 200:
                return
            problem = f"it answered HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    from modelcycle.config import redact

    raise WorkspaceError(f"the Prefect server {redact(url)} does not answer: {problem}",
                         "start it (`prefect server start`), or fix backends.prefect_api_url in "
                         "modelcycle.yaml / PREFECT_API_URL")


T = TypeVar("T")


def beside(fn: Callable[..., T], *args: Any, name: str) -> Future[T]:
    """Start ``fn(*args)`` in a thread of its own (named ``name``), with a copy of the caller's
    context (Prefect's settings and run context), and return its future: work a cycle does
    beside its own path, awaited where its result is needed."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        return pool.submit(contextvars.copy_context().run, fn, *args)
    finally:
        pool.shutdown(wait=False)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (the system's choice)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Linux: the server ends (SIGTERM, so it still writes what it holds) if modelcycle is killed;
    it would otherwise outlive it. A parent that died before the child could ask is seen too."""

    def arrange() -> None:  # pragma: no cover - runs in the child, between fork and exec
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - not Linux: the server is stopped at exit instead
            return
        if os.getppid() != parent:
            os._exit(1)

    return arrange


class LocalServer:
    """Prefect's server application in a subprocess on a free loopback port."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "server.log"
        self._fresh_db = False
        self._blocks_pending = True

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def _blocks_marker(self) -> Path:
        """Names the Prefect version whose block types ``prefect.db`` holds."""
        return self.home / "prefect.db.blocks"

    def _blocks_registered(self) -> bool:
        try:
            return self._blocks_marker.read_text().strip() == str(dbcache.version("prefect"))
        except OSError:
            return False

    def _mark_blocks(self) -> None:
        with contextlib.suppress(OSError):
            self._blocks_marker.write_text(f"{dbcache.version('prefect')}\n")

    def start(self) -> None:
        spec = importlib.util.find_spec("prefect")
        if spec is None or spec.origin is None:
            raise RuntimeError("Prefect is not installed")
        app_dir = Path(spec.origin).parent.parent
        db = self.home / "prefect.db"
        own_db = any(os.environ.get(k) for k in ("PREFECT_API_DATABASE_CONNECTION_URL",
                                                "PREFECT_SERVER_DATABASE_CONNECTION_URL"))
        existed = db.exists()
        seeded = not own_db and not existed and dbcache.seed("prefect", db)
        self._fresh_db = not own_db and not existed and not seeded
        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_UI_ENABLED": "0",
               "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        if seeded:  # the cached database was kept after a start that registered the block types
            self._mark_blocks()
        registered = not own_db and self._blocks_registered()
        self._blocks_pending = not own_db and not registered  # the marker speaks of prefect.db only
        if registered:
            env.update(PREFECT_SERVER_REGISTER_BLOCKS_ON_START="false",
                       PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION="false")
        env.pop("PREFECT_API_URL", None)
        self.home.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL,
            # its own session: a Ctrl-C in the terminal reaches modelcycle, which stops its
            # cycle cleanly (it needs the server for that), not the server
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None)
        log_file.close()
        atexit.register(self.stop)

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Block until the API answers; raise RuntimeError with the server's log if it cannot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        if self._blocks_pending:  # the application registered them as it started
                            self._mark_blocks()
                            self._blocks_pending = False
                        if self._fresh_db:  # migrated and still empty: keep it for the next workspace
                            dbcache.remember("prefect", self.home / "prefect.db")
                            self._fresh_db = False
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        tail = ""
        with contextlib.suppress(OSError):
            tail = self.log_path.read_text(errors="replace")[-2000:]
        code = self.process.poll() if self.process else None
        why = f"exit code {code}" if code is not None else "timed out"
        raise RuntimeError(f"Prefect's local server did not start ({why})"
                           + (f"; its log {self.log_path} ends with:\n{tail}" if tail else ""))

    def stop(self) -> None:
        """SIGTERM, then wait: uvicorn shuts the application down, and Prefect's services write
        the task runs, states and events they hold before the process ends."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("Prefect's local server did not stop within %.0f s; killed", STOP_TIMEOUT_S)
            process.kill()
            process.wait()


def start_local_server() -> LocalServer | None:
    """Start the local server for this process unless a server is configured or Prefect is
    already imported (its settings are then fixed, for example under a test harness). The caller
    calls ``wait()`` before the first flow runs."""
    global _local
    if _team_server or os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules:
        return None
    if _local is not None:
        return _local
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    server = LocalServer(home)
    try:
        server.start()
    except (OSError, RuntimeError):
        log.debug("could not start Prefect's server; Prefect will start its own", exc_info=True)
        return None
    os.environ["PREFECT_API_URL"] = server.api_url  # read when Prefect is imported
    _local = server
    return server
