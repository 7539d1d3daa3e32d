"""A long-lived Prefect server for tests of deployed cycles: Prefect's own `prefect server start`
(not the embedded one a command starts, not the ephemeral test harness: deployments need the
scheduler service), on a free loopback port, its database seeded from modelcycle's migrated empty one."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx

from modelcycle import dbcache
from modelcycle.lifecycle.runtime import EMBEDDED_SERVER_SETTINGS

EXE = str(Path(sys.executable).with_name("modelcycle"))


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Retrying(httpx.HTTPTransport):
    """Sends a request again when the server answers 503: the Prefect server says so when its SQLite
    database is locked for a moment, and Prefect's own client retries it in the same way."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(6):
            response = super().handle_request(request)
            if response.status_code != 503:
                return response
            response.read()
            response.close()
            time.sleep(0.5 * 2**attempt)
        return super().handle_request(request)


def api_client(url: str) -> httpx.Client:
    """A plain HTTP client of a Prefect server's REST API, as the UI calls it (with its retries)."""
    return httpx.Client(base_url=url, timeout=30, transport=_Retrying())


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the embedded server's settings (deferred writes)."""
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_SERVER_SETTINGS or k.endswith("ANALYTICS_ENABLED")}
    env.pop("PREFECT_API_URL", None)
    env.update(extra)
    return env


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A Prefect server with every service; its API URL. Two settings shorten the tests' waits:
    the scheduler looks every 2 s, and a deployed run queued behind another of its deployment
    asks for its slot again after 5 s (Prefect's default, 30 s, keeps the log of a run that waits
    behind a cycle paused for its human short; a test's runs wait seconds, not hours)."""
    home.mkdir(parents=True, exist_ok=True)
    dbcache.seed("prefect", home / "prefect.db")
    port = free_port()
    env = clean_env(PREFECT_HOME=str(home), PREFECT_SERVER_API_PORT=str(port), PREFECT_UI_ENABLED="false",
                    PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
                    PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="5",
                    PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def cli(url: str, ws: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`modelcycle -w WS ARGS...` in its own process, on the server at ``url``."""
    return subprocess.run([EXE, "-w", str(ws), *args], env=clean_env(PREFECT_API_URL=url), capture_output=True,
                          text=True, timeout=timeout, start_new_session=True, check=False)


def start_worker(url: str, ws: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([EXE, "-w", str(ws), "worker", *args], env=clean_env(PREFECT_API_URL=url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop_worker(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out
