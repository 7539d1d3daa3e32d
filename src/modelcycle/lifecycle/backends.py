"""Whether a workspace's backends answer: the MLflow store, the Prefect API, the DVC remote and,
when the candidates train on Dask, the Dask scheduler.

:func:`check` asks each configured backend once, all at the same time, with a short time-out,
and says per backend whether it answers, at which URL (any password shown as ``***``). It never
waits longer than the time-out (plus a little): a server that accepts a connection and never
answers, or a host name that does not resolve, is reported, not waited for. :func:`require`
ends a command with one error naming what does not answer and what to do.

The embedded defaults are checked on the file system only (a SQLite store's folder, a local
remote's folder): no thread, no network, well under a millisecond. Only the standard library
is used here (no MLflow, Prefect or DVC import).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from modelcycle.config import CONFIG_FILE, Workspace, redact
from modelcycle.errors import ConfigError, ModelcycleError, RegistryError, VersioningError, WorkspaceError
from modelcycle.lifecycle import runners

#: Seconds a backend has to answer (``MODELCYCLE_BACKENDS_TIMEOUT`` changes it).
TIMEOUT = 3.0
ALL = ("mlflow", "prefect", "dvc")
#: what :func:`check` asks by default: the commands' backends, and the scheduler a cycle's
#: candidates train on (checked by the cycle itself before it starts, see ``runners.preflight``)
CHECKED = (*ALL, "dask")
TITLES = {"mlflow": "MLflow", "prefect": "Prefect", "dvc": "DVC remote", "dask": "Dask"}
_DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
_ERRORS: dict[str, type[ModelcycleError]] = {"mlflow": RegistryError, "prefect": WorkspaceError,
                                             "dvc": VersioningError, "dask": ConfigError}

log = logging.getLogger(__name__)


class UnreachableError(Exception):
    """A probe's finding that the backend does not answer (its text says how; ``hint``, when
    given, what to do)."""

    def __init__(self, text: str, hint: str | None = None) -> None:
        super().__init__(text)
        self.hint = hint


@dataclass(frozen=True)
class Reach:
    """One backend: ``name`` (mlflow, prefect, dvc), its URL (redacted), whether it answers and
    what was seen; ``hint`` says what to do when it does not."""

    name: str
    url: str
    ok: bool
    text: str
    hint: str | None = None
    local: bool = False  # a folder of this machine, not a server

    def problem(self) -> str:
        return f"{self.url} {'is not usable' if self.local else 'does not answer'}: {self.text}"

    @property
    def title(self) -> str:
        return TITLES[self.name]


def timeout_seconds() -> float:
    try:
        return max(0.1, float(os.environ.get("MODELCYCLE_BACKENDS_TIMEOUT", TIMEOUT)))
    except ValueError:
        return TIMEOUT


# -- probes: each returns what it saw, or raises UnreachableError ---------------------------

def _http(url: str, timeout: float, *, health: bool) -> str:
    """GET ``url``: with ``health``, only HTTP 200 (401/403: it answers, credentials are
    checked on use) counts; otherwise any HTTP answer below 500 does (an object store answers
    403 to an anonymous request)."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import unquote

    parts = urlparse(url)
    headers = {}
    if parts.username is not None:  # urllib takes no user:password@ in a URL: send it as basic auth
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()
        url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (TimeoutError, socket.timeout)) or "timed out" in str(reason):
            raise UnreachableError(f"no answer within {timeout:g} s (it accepts connections and does not "
                                   "reply, or the host does not answer)") from exc
        raise UnreachableError(str(reason) or type(reason).__name__) from exc
    ms = (time.monotonic() - started) * 1000
    if status == 200 or (status < 500 and (not health or status in (401, 403))):
        return f"answers ({ms:.0f} ms)"
    raise UnreachableError(f"it answered HTTP {status} at {redact(url)}")


def _tcp(host: str, port: int, timeout: float) -> str:
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError as exc:
        raise UnreachableError(f"no connection to {host}:{port} within {timeout:g} s") from exc
    except OSError as exc:
        raise UnreachableError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    return f"accepts connections ({(time.monotonic() - started) * 1000:.0f} ms)"


def _folder(path: Path, *, writable: bool) -> str:
    if not path.is_dir():
        raise UnreachableError(f"the folder {path} does not exist" if not path.exists() else f"{path} is not a folder")
    if writable and not os.access(path, os.W_OK | os.X_OK):
        raise UnreachableError(f"the folder {path} is not writable by this user")
    return "the folder exists" + (" and is writable" if writable else "")


def _own_folder(ws: Workspace, path: Path, *, writable: bool) -> Callable[[], str]:
    """A folder's probe; one of the workspace's own embedded backends (under ``.modelcycle/``)
    that does not exist yet is fine: it is made when first used."""
    def probe() -> str:
        if not path.exists() and path.resolve().is_relative_to(ws.state_dir.resolve()):
            return "not made yet (made when first used)"
        return _folder(path, writable=writable)
    return probe


def _mlflow_probe(ws: Workspace, uri: str, timeout: float) -> Callable[[], str]:
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+", 1)[0]
    if scheme in ("http", "https"):
        return lambda: _http(uri.rstrip("/") + "/health", timeout, health=True)
    if scheme == "sqlite":
        raw = uri[len("sqlite:///"):].split("?", 1)[0]
        if not raw or raw == ":memory:":
            return lambda: "in memory"
        return _own_folder(ws, Path(raw).expanduser().parent, writable=False)
    if scheme in _DB_PORTS and parsed.hostname:
        host, port = parsed.hostname, parsed.port or _DB_PORTS[scheme]
        return lambda: _tcp(host, port, timeout)
    if scheme in ("", "file"):
        return lambda: _folder(Path(parsed.path if scheme else uri).expanduser(), writable=False)
    return lambda: "not checked (a store modelcycle cannot reach on its own)"


def _s3_endpoint(ws: Workspace, remote: str) -> str:
    """Where an s3:// remote is served: DVC's ``endpointurl`` for that remote, else
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS."""
    import configparser
    import contextlib

    conf = configparser.ConfigParser()
    with contextlib.suppress(configparser.Error):
        conf.read([ws.root / ".dvc" / "config", ws.root / ".dvc" / "config.local"], encoding="utf-8")
    for section in conf.sections():
        if (section.startswith("remote ") and conf[section].get("url", "").rstrip("/") == remote.rstrip("/")
                and conf[section].get("endpointurl")):
            return conf[section]["endpointurl"]
    return (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            or "https://s3.amazonaws.com")


def _dvc_probe(ws: Workspace, remote: str, timeout: float) -> Callable[[], str]:
    parsed = urlparse(remote)
    scheme = parsed.scheme
    if "://" not in remote:
        return _own_folder(ws, Path(remote), writable=True)
    if scheme == "file":
        return lambda: _folder(Path(parsed.path), writable=True)
    if scheme == "s3":
        endpoint = _s3_endpoint(ws, remote)
        return lambda: _http(endpoint, timeout, health=False) + f" at {redact(endpoint)}"
    if scheme in ("gs", "gcs"):
        return lambda: _http("https://storage.googleapis.com", timeout, health=False)
    if scheme in ("http", "https", "webdav", "webdavs"):
        url = remote.replace("webdav", "http", 1)
        return lambda: _http(url, timeout, health=False)
    if parsed.hostname:
        host, port = parsed.hostname, parsed.port or {"ssh": 22, "hdfs": 8020, "webhdfs": 9870}.get(scheme)
        if port:
            return lambda: _tcp(host, port, timeout)
    return lambda: f"not checked ({scheme}:// is reached by DVC with its own credentials)"


def _dask_probe(ws: Workspace, timeout: float) -> Callable[[], str]:
    """The cycles' own check of Dask (``runners.check``), its error as a finding."""
    def probe() -> str:
        try:
            return runners.check(ws, timeout) or "not used"
        except runners.SchedulerDownError as exc:
            raise UnreachableError(f"{exc.said} ({runners.FIELD}): the {len(ws.params.candidates)} candidates "
                                   "cannot train there", exc.hint) from exc
        except ModelcycleError as exc:
            raise UnreachableError(exc.message, exc.hint) from exc
    return probe


# -- the check -----------------------------------------------------------------------------

def _hint(name: str, ws: Workspace) -> str:
    if name == "dask":
        return runners.SCHEDULER_HINT
    origins = ws.backend_origins()
    where = {"mlflow": ("backends.mlflow_tracking_uri", "MLFLOW_TRACKING_URI"),
             "prefect": ("backends.prefect_api_url", "PREFECT_API_URL"),
             "dvc": ("backends.dvc_remote", "MODELCYCLE_DVC_REMOTE")}[name]
    origin = origins.get(name, CONFIG_FILE)
    fix = (f"fix or unset ${where[1]}" if origin.startswith("$") else
           "run `modelcycle up` again (its server stopped)" if origin == "modelcycle up" else
           f"fix {where[0]} in {CONFIG_FILE} (or set {where[1]})")
    start = {"mlflow": "start the MLflow server (`mlflow server ...`)",
             "prefect": "start the Prefect server (`prefect server start`)",
             "dvc": "create or mount the remote (a folder: `mkdir -p` it; a bucket: check the endpoint, "
                    "AWS_ENDPOINT_URL and the credentials)"}[name]
    return f"{start}, or {fix}"


def _probes(ws: Workspace, which: Iterable[str], timeout: float) -> list[tuple[str, str, Callable[[], str], bool]]:
    """(name, redacted URL, probe, needs the network) per configured backend."""
    found: list[tuple[str, str, Callable[[], str], bool]] = []
    wanted = set(which)
    if "mlflow" in wanted:
        uris = [ws.tracking_uri] + ([ws.registry_uri] if ws.registry_uri != ws.tracking_uri else [])
        for uri in uris:
            local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
            found.append(("mlflow", redact(uri), _mlflow_probe(ws, uri, timeout), not local))
    if "prefect" in wanted and ws.prefect_api_url:
        url = ws.prefect_api_url.rstrip("/")
        found.append(("prefect", redact(url), lambda: _http(f"{url}/health", timeout, health=True), True))
    if "dvc" in wanted and ws.dvc_remote:
        remote = ws.dvc_remote
        found.append(("dvc", redact(remote), _dvc_probe(ws, remote, timeout), "://" in remote
                      and not remote.startswith("file:")))
    if "dask" in wanted and runners.uses_dask(ws):
        address = ws.config.orchestration.dask_address
        found.append(("dask", redact(address) if address else "orchestration.dask_address: null",
                      _dask_probe(ws, timeout), bool(address) and runners.installed()))
    return found


def check(ws: Workspace, which: Iterable[str] = CHECKED, *, timeout: float | None = None) -> list[Reach]:
    """Ask each configured backend of ``which`` once, at the same time; a :class:`Reach` per
    backend within about ``timeout`` seconds (default :func:`timeout_seconds`), whatever they do."""
    limit = timeout_seconds() if timeout is None else timeout
    return _ask(ws, _probes(ws, which, limit), limit)


def _ask(ws: Workspace, probes: list[tuple[str, str, Callable[[], str], bool]], limit: float, *,
         hints: bool = True) -> list[Reach]:
    """Run ``probes`` at the same time (the network ones in daemon threads) and wait at most
    ``limit`` (+0.5) seconds for them; a :class:`Reach` per probe."""
    results: dict[int, str | UnreachableError] = {}

    def run(i: int, probe: Callable[[], str]) -> None:
        try:
            results[i] = probe()
        except UnreachableError as exc:
            results[i] = exc
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is the finding
            results[i] = UnreachableError(f"{type(exc).__name__}: {exc}")

    threads = []
    for i, (_name, _url, probe, remote) in enumerate(probes):
        if remote:  # daemon threads: a name that never resolves does not hold the command
            t = threading.Thread(target=run, args=(i, probe), name=f"modelcycle-check-{i}", daemon=True)
            t.start()
            threads.append(t)
        else:
            run(i, probe)
    deadline = time.monotonic() + limit + 0.5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    reaches = []
    for i, (name, url, _probe, remote) in enumerate(probes):
        got = results.get(i, UnreachableError(f"no answer within {limit:g} s"))
        if isinstance(got, UnreachableError):
            hint = (got.hint or _hint(name, ws)) if hints else None
            reaches.append(Reach(name, url, False, str(got), hint, local=not remote))
        else:
            reaches.append(Reach(name, url, True, got, local=not remote))
    return reaches


def probe_mlflow(ws: Workspace, uri: str, *, timeout: float | None = None) -> Reach:
    """:func:`check` of one MLflow tracking URI that is not (yet) the workspace's: a server about
    to be used (``modelcycle backends migrate --to``)."""
    limit = timeout_seconds() if timeout is None else timeout
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    return _ask(ws, [("mlflow", redact(uri), _mlflow_probe(ws, uri, limit), not local)], limit, hints=False)[0]


def require(ws: Workspace, which: Iterable[str] = ALL, *, timeout: float | None = None) -> list[Reach]:
    """:func:`check`, ending the command with an error naming each backend that does not answer
    (MLflow: a RegistryError, Prefect: a WorkspaceError, the DVC remote: a VersioningError)."""
    reaches = check(ws, which, timeout=timeout)
    down = [r for r in reaches if not r.ok]
    if ws.config.versioning.push == "best-effort":  # the user lets cycles run while the remote is away
        for r in [r for r in down if r.name == "dvc"]:
            log.warning("%s %s; versioning.push is best-effort: cycles are versioned here and pushed by "
                        "the next cycle or `modelcycle push`", r.title, r.problem())
            down.remove(r)
    if not down:
        return reaches
    what = "; ".join(f"{r.title} {r.problem()}" for r in down)
    hints = [h for h in dict.fromkeys(r.hint or "" for r in down) if h]
    raise _ERRORS[down[0].name](what, "; ".join(hints) + "; `modelcycle doctor` checks every backend")
