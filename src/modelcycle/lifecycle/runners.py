"""Whether the task runner a cycle's candidates train on can be used, checked before the cycle
changes anything (standard library only: Prefect may not be configured yet when it runs)."""

from __future__ import annotations

import importlib.util
import socket
from urllib.parse import urlparse

from modelcycle.config import Workspace
from modelcycle.errors import ConfigError

DASK_EXTRA = ("pip install 'modelcycle[dask]' (prefect-dask, dask and distributed), or set "
              "orchestration.task_runner: threads")
#: the port a Dask scheduler listens on when its address names none
DASK_PORT = 8786


def preflight(ws: Workspace, timeout: float | None = None) -> None:
    """Before a cycle with candidates changes anything: with ``orchestration.task_runner: dask``,
    prefect-dask must be installed and the scheduler at ``dask_address`` must accept a
    connection within ``timeout`` seconds (default: the backends check's, 3 s). Raises a
    :class:`ConfigError` naming the address and the setting, instead of Dask's client retrying
    for minutes once the candidates are submitted. Nothing is imported (Prefect may not be
    configured yet) and nothing is checked without candidates."""
    o = ws.config.orchestration
    if not ws.params.candidates or o.task_runner != "dask":
        return
    if importlib.util.find_spec("prefect_dask") is None:
        raise ConfigError("modelcycle.yaml orchestration.task_runner is 'dask', but prefect-dask is not installed",
                          DASK_EXTRA)
    if not o.dask_address:
        return  # a LocalCluster, started by the fan-out
    parsed = urlparse(o.dask_address)
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname:
        return  # inproc://, ucx://: reached by Dask's own transports only
    from modelcycle.lifecycle.backends import timeout_seconds

    limit = timeout_seconds() if timeout is None else timeout
    try:
        port = parsed.port or DASK_PORT
        with socket.create_connection((parsed.hostname, port), timeout=limit):
            pass
    except (OSError, ValueError) as exc:
        said = (f"no connection within {limit:g} s" if isinstance(exc, TimeoutError)
                else getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        raise ConfigError(
            f"the Dask scheduler at {o.dask_address} (modelcycle.yaml orchestration.dask_address) does not "
            f"answer ({said}), so the {len(ws.params.candidates)} candidates cannot train there; nothing was "
            "changed",
            "start the scheduler (`dask scheduler`), fix orchestration.dask_address in modelcycle.yaml, set it "
            "to null for a LocalCluster on this machine, or set orchestration.task_runner: threads") from exc
