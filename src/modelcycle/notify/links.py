"""Links a notification carries: the MLflow run, the registered version, the Prefect flow run.

Built from plain strings (the tracking URI, the Prefect API URL, ids): this module knows the
routes of the two UIs, not their clients. A link is given only where a UI can be reached over
http(s); an embedded backend (MLflow on SQLite, the Prefect server that lives as long as the
command) has no page to link to, and the notification gives the ids and :data:`UI_HINT` instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

UI_HINT = "`modelcycle up` starts the MLflow and Prefect UIs of this workspace"


def http_base(uri: str | None) -> str | None:
    """``uri`` as the base of a UI link when it is http(s): without its user and password,
    query, fragment and trailing slash; None for any other URI (sqlite:///..., a folder)."""
    if not uri:
        return None
    parts = urlsplit(uri.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def mlflow_run_url(tracking_uri: str | None, run_id: str | None, experiment_id: str | None = None) -> str | None:
    """The MLflow UI's page of a run. Without the experiment id, MLflow's direct route
    ``#/runs/<run_id>`` (the UI looks the run up and opens its page in its experiment)."""
    base = http_base(tracking_uri)
    if base is None or not run_id:
        return None
    if experiment_id:
        return f"{base}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{base}/#/runs/{quote(run_id, safe='')}"


def mlflow_version_url(registry_uri: str | None, name: str, version: str | None) -> str | None:
    """The MLflow UI's page of a registered model version."""
    base = http_base(registry_uri)
    if base is None or not version:
        return None
    return f"{base}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"


_CLOUD_API = re.compile(r"^/api/accounts/(?P<account>[^/]+)/workspaces/(?P<workspace>[^/]+)/?$")


def prefect_ui_url(api_url: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The Prefect UI of the server at ``api_url``: ``PREFECT_UI_URL`` when set, else the API URL
    without its ``/api`` (Prefect Cloud's API maps to its app's account and workspace). None
    without an API URL: the embedded server stops with the command, and its runs have no page."""
    base = http_base(api_url)
    if base is None:
        return None
    ui = (os.environ if env is None else env).get("PREFECT_UI_URL")
    if ui:
        return http_base(ui)
    parts = urlsplit(base)
    cloud = _CLOUD_API.match(parts.path)
    if parts.hostname == "api.prefect.cloud" and cloud:
        return f"https://app.prefect.cloud/account/{cloud['account']}/workspace/{cloud['workspace']}"
    return base.removesuffix("/api")


def prefect_flow_run_url(api_url: str | None, flow_run_id: str | None,
                         env: Mapping[str, str] | None = None) -> str | None:
    """The Prefect UI's page of a flow run (for an escalation, where it is approved or rejected)."""
    ui = prefect_ui_url(api_url, env)
    if ui is None or not flow_run_id:
        return None
    return f"{ui}/runs/flow-run/{quote(flow_run_id, safe='')}"
