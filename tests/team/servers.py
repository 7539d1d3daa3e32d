"""A team's servers on loopback, for the tests and the benchmark: PostgreSQL 15, an S3 endpoint,
``mlflow server`` (on PostgreSQL, serving artifacts from S3) and ``prefect server`` (on
PostgreSQL), each in its own process group on a free 127.0.0.1 port, started once and stopped
at the end (:meth:`TeamServers.stop`, also registered with :mod:`atexit`).

The S3 endpoint is moto's server (``moto_server``): it speaks the S3 protocol, so the clients
(DVC's s3fs, MLflow's boto3) take exactly the code path they take against a real object store.
It is a mock, in memory: it covers the protocol path only, not a real store's durability,
consistency or performance.

PostgreSQL comes from the system (``/usr/lib/postgresql/<version>/bin``, or ``initdb`` on the
PATH; Debian: ``apt-get install -y postgresql-15``). PostgreSQL refuses to run as root: as root
its data folder is given to the user ``nobody`` and it runs as that user (``setpriv``).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
BUCKET = "team-bucket"
USER = "team"
# moto accepts any key; these are what the clients send
AWS_KEYS = {"AWS_ACCESS_KEY_ID": "team-key", "AWS_SECRET_ACCESS_KEY": "team-secret",
            "AWS_DEFAULT_REGION": "us-east-1"}
INSTALL_HINT = "install PostgreSQL 15 (Debian/Ubuntu, as root: apt-get install -y postgresql-15)"


class UnavailableError(RuntimeError):
    """A server cannot be started on this machine (what is missing, and what to install)."""


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (the newest version installed)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not versions:
        raise UnavailableError(f"PostgreSQL's initdb/postgres are not installed: {INSTALL_HINT}")
    return Path(versions[-1]).parent


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: the server gets SIGTERM if the process that started it dies (a killed test run
    leaves no server behind; :meth:`TeamServers.stop` is the orderly way)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _as_user(user: int | None, cmd: list[str]) -> list[str]:
    """``cmd`` run as ``user`` (``setpriv``; the parent-death signal is set again after the
    change of user, which clears it)."""
    if user is None:
        return cmd
    if not shutil.which("setpriv"):
        raise UnavailableError("PostgreSQL refuses to run as root and setpriv (util-linux) is not installed "
                          "to run it as nobody: run the tests as another user, or install util-linux")
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--pdeathsig=SIGTERM", *cmd]


def _venv_bin(name: str) -> str:
    """A console script of this Python's environment (mlflow, prefect, moto_server)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise UnavailableError(f"{name} is not installed in {Path(sys.executable).parent}")
    return str(path)


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (SIGINT for PostgreSQL: its fast shutdown) to the whole process group; SIGKILL
        to the group if it is still there after ``timeout``."""
        if self.process.poll() is not None:
            return
        sig = signal.SIGINT if self.name == "postgres" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the workers a server left behind too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def wait_http(proc: Proc, url: str, timeout: float) -> None:
    """Until ``url`` answers 200; a RuntimeError with the end of the process's log if the process
    ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with code {proc.process.returncode}; "
                               f"{proc.log} ends with:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout:.0f} s; "
                       f"{proc.log} ends with:\n{proc.tail()}")


@dataclass
class TeamServers:
    """Start with :meth:`start` (or as a context manager); the URLs are then set."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="modelcycle-team-")))
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    procs: list[Proc] = field(default_factory=list)
    pg_port: int = 0
    s3_port: int = 0
    mlflow_port: int = 0
    prefect_port: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    _mlflow: Proc = field(init=False, repr=False)
    _prefect: Proc = field(init=False, repr=False)
    _launched: float = field(init=False, repr=False, default=0.0)

    # the URLs a workspace and its clients use ---------------------------------------------
    def pg_url(self, db: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{USER}:{self.password}@{HOST}:{self.pg_port}/{db}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}/api"

    def client_env(self) -> dict[str, str]:
        """What a client of these servers needs in its environment: the S3 endpoint and keys
        (boto3/s3fs read AWS_ENDPOINT_URL; MLflow's S3 client reads MLFLOW_S3_ENDPOINT_URL)."""
        return {**AWS_KEYS, "AWS_ENDPOINT_URL": self.s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint}

    # starting and stopping ------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
               user: int | None = None) -> Proc:
        """``cmd`` in its own session (process group), with this process's environment less the
        caller's Prefect and MLflow settings (a test session's), plus ``env``."""
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("PREFECT_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}
        log_path = self.folder / f"{name}.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(_as_user(user, cmd), env={**base, **(env or {})}, stdout=log_file,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=self.folder,
                                       preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        proc = Proc(name, process, log_path)
        self.procs.append(proc)
        return proc

    def start(self) -> TeamServers:
        """Start every server and wait until each answers."""
        return self.launch().ready()

    def launch(self) -> TeamServers:
        """Start PostgreSQL and S3 (ready when this returns: ~2 s), then MLflow and Prefect
        without waiting for them (~25 s to answer): :meth:`ready` waits. A caller may do other
        work in between."""
        atexit.register(self.stop)
        try:
            t0 = time.monotonic()
            pg = self._start_postgres()
            s3 = self._start_s3()
            wait_http(s3, f"{self.s3_endpoint}/moto-api/", 30)
            self._make_bucket()
            self._wait_postgres(pg)
            self._make_databases()
            self.timings["postgres+s3"] = time.monotonic() - t0
            self._launched = time.monotonic()
            self._mlflow = self._start_mlflow()
            self._prefect = self._start_prefect()
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> TeamServers:
        """Wait until MLflow and Prefect answer (their start-up: MLflow 15-25 s, Prefect ~10 s)."""
        try:
            wait_http(self._prefect, f"{self.prefect_api_url}/health", 180)
            wait_http(self._mlflow, f"{self.mlflow_url}/health", 180)
        except BaseException:
            self.stop()
            raise
        self.timings.setdefault("mlflow+prefect", time.monotonic() - self._launched)
        return self

    def stop(self) -> None:
        """Stop every server (the last started first) and remove their files."""
        t0 = time.monotonic()
        while self.procs:
            proc = self.procs.pop()
            t1 = time.monotonic()
            proc.stop()
            self.timings[f"stop {proc.name}"] = time.monotonic() - t1
        self.timings["stop"] = time.monotonic() - t0
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> TeamServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # each server ----------------------------------------------------------------------------
    def _start_postgres(self) -> Proc:
        bindir = postgres_bin()
        data = self.folder / "pgdata"
        pwfile = self.folder / "pgpass"
        pwfile.write_text(self.password + "\n")
        user: int | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as `nobody`
            user = 65534
            self.folder.chmod(0o755)
            data.mkdir(mode=0o700)
            os.chown(data, user, user)
            os.chown(pwfile, user, user)
        self.pg_port = free_port()
        init = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"]
        done = subprocess.run(_as_user(user, init), capture_output=True, text=True, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
        pwfile.unlink()
        return self._spawn("postgres", [str(bindir / "postgres"), "-D", str(data), "-p", str(self.pg_port),
                                        "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={data}",
                                        "-c", "fsync=off", "-c", "synchronous_commit=off"], user=user)

    def _wait_postgres(self, pg: Proc, timeout: float = 60) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if pg.process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {pg.process.returncode}:\n{pg.tail()}")
            try:
                psycopg.connect(host=HOST, port=self.pg_port, user="postgres", password=self.password,
                                dbname="postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections:\n{pg.tail()}") from None
                time.sleep(0.2)

    def _make_databases(self) -> None:
        import psycopg

        with psycopg.connect(host=HOST, port=self.pg_port, user="postgres", password=self.password,
                             dbname="postgres", autocommit=True) as con:
            con.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{self.password}'")
            for db in ("mlflow", "prefect"):
                con.execute(f"CREATE DATABASE {db} OWNER {USER}")

    def _start_s3(self) -> Proc:
        self.s3_port = free_port()
        return self._spawn("s3", [_venv_bin("moto_server"), "-H", HOST, "-p", str(self.s3_port)])

    def _make_bucket(self) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.s3_endpoint, **{k.lower(): v for k, v in AWS_KEYS.items()
                                                             if k != "AWS_DEFAULT_REGION"},
                     region_name=AWS_KEYS["AWS_DEFAULT_REGION"]).create_bucket(Bucket=BUCKET)

    def _start_mlflow(self) -> Proc:
        self.mlflow_port = free_port()
        return self._spawn("mlflow", [
            _venv_bin("mlflow"), "server", "--host", HOST, "--port", str(self.mlflow_port), "--workers", "1",
            "--backend-store-uri", self.pg_url("mlflow"), "--serve-artifacts",
            "--artifacts-destination", f"s3://{BUCKET}/mlartifacts"],
            # its job runner off, as `modelcycle up` runs it: GenAI jobs play no part in a model's
            # cycle, and the runner's seven processes would each import MLflow beside the test
            env={**self.client_env(), "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                 "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})

    def _start_prefect(self) -> Proc:
        self.prefect_port = free_port()
        home = self.folder / "prefect-home"
        home.mkdir()
        env = {"PREFECT_HOME": str(home), "PREFECT_API_DATABASE_CONNECTION_URL": self.pg_url("prefect", "asyncpg"),
               "PREFECT_SERVER_API_HOST": HOST, "PREFECT_SERVER_API_PORT": str(self.prefect_port),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false", "DO_NOT_TRACK": "true"}
        return self._spawn("prefect", [_venv_bin("prefect"), "server", "start", "--host", HOST,
                                       "--port", str(self.prefect_port)], env=env)
