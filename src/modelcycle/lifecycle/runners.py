"""Whether the task runner a cycle's candidates train on can be used, checked before the cycle
changes anything, and by ``modelcycle doctor`` / ``modelcycle backends check`` (standard library
only: Prefect may not be configured yet when it runs)."""

from __future__ import annotations

import importlib.util
import socket
import time
from urllib.parse import urlparse

from modelcycle.config import Workspace
from modelcycle.errors import ConfigError

DASK_EXTRA = ("pip install 'modelcycle[dask]' (prefect-dask, dask and distributed), or set "
              "orchestration.task_runner: threads")
#: the port a Dask scheduler listens on when its address names none
DASK_PORT = 8786
#: where the scheduler's address is set
FIELD = "modelcycle.yaml orchestration.dask_address"
SCHEDULER_HINT = ("start the scheduler (`dask scheduler`), fix orchestration.dask_address in modelcycle.yaml, set it "
                  "to null for a LocalCluster on this machine, or set orchestration.task_runner: threads")


class SchedulerDownError(ConfigError):
    """The scheduler at ``orchestration.dask_address`` accepts no connection; ``said`` how."""

    def __init__(self, ws: Workspace, said: str) -> None:
        self.said = said
        super().__init__(f"the Dask scheduler at {ws.config.orchestration.dask_address} ({FIELD}) does not answer "
                         f"({said}), so the {len(ws.params.candidates)} candidates cannot train there",
                         SCHEDULER_HINT)


def uses_dask(ws: Workspace) -> bool:
    """Whether a cycle trains the workspace's candidates on Dask (params.yaml ``candidates:`` and
    ``orchestration.task_runner: dask``)."""
    return bool(ws.params.candidates) and ws.config.orchestration.task_runner == "dask"


def installed() -> bool:
    """Whether prefect-dask can be imported (it is not: nothing is imported here)."""
    return importlib.util.find_spec("prefect_dask") is not None


def scheduler(ws: Workspace) -> tuple[str, int] | None:
    """The host and port of ``orchestration.dask_address`` when modelcycle can reach it on its own
    (tcp:// or tls://); None for a LocalCluster (no address) or a transport only Dask reaches
    (inproc://, ucx://)."""
    address = ws.config.orchestration.dask_address
    if not address:
        return None
    parsed = urlparse(address)
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname:
        return None
    try:
        return parsed.hostname, parsed.port or DASK_PORT
    except ValueError as exc:
        raise ConfigError(f"'{address}' ({FIELD}) has a port that is not a number from 0 to 65535",
                          "write it as tcp://HOST:8786") from exc


def check(ws: Workspace, timeout: float | None = None) -> str | None:
    """What a cycle needs of Dask, checked: None when the candidates do not train on Dask (no
    candidates, or ``task_runner: threads``); otherwise what was seen. prefect-dask must be
    installed and the scheduler at ``dask_address`` must accept a connection within ``timeout``
    seconds (default: the backends check's, 3 s); raises a :class:`ConfigError` naming the
    setting and what to do (:class:`SchedulerDownError` for the scheduler)."""
    if not uses_dask(ws):
        return None
    o = ws.config.orchestration
    if not installed():
        raise ConfigError("modelcycle.yaml orchestration.task_runner is 'dask', but prefect-dask is not installed",
                          DASK_EXTRA)
    if not o.dask_address:
        return f"each cycle starts a LocalCluster of {o.dask_workers} worker processes on this machine"
    target = scheduler(ws)
    if target is None:
        return f"not checked ({urlparse(o.dask_address).scheme}:// is reached by Dask's own transports only)"
    from modelcycle.lifecycle.backends import timeout_seconds

    limit = timeout_seconds() if timeout is None else timeout
    started = time.monotonic()
    try:
        with socket.create_connection(target, timeout=limit):
            pass
    except OSError as exc:
        said = (f"no connection within {limit:g} s" if isinstance(exc, TimeoutError)
                else exc.strerror or str(exc) or type(exc).__name__)
        raise SchedulerDownError(ws, said) from exc
    return f"the scheduler accepts connections ({(time.monotonic() - started) * 1000:.0f} ms)"


def preflight(ws: Workspace, timeout: float | None = None) -> None:
    """Before a cycle with candidates changes anything: :func:`check`, its error saying that
    nothing was changed, instead of Dask's client retrying for minutes once the candidates are
    submitted. Nothing is imported (Prefect may not be configured yet) and nothing is checked
    without candidates."""
    try:
        check(ws, timeout)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message}; nothing was changed", exc.hint) from exc
