"""Read modelcycle.yaml and params.yaml into validated models; find and describe a workspace."""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ValidationError

from modelcycle.config.live import live_servers
from modelcycle.config.models import EMBEDDED_ARTIFACTS, Params, ProjectConfig
from modelcycle.config.secrets import redact, resolve_references, tighten
from modelcycle.config.window import Window
from modelcycle.errors import ConfigError, WorkspaceError

log = logging.getLogger(__name__)

CONFIG_FILE = "modelcycle.yaml"
PARAMS_FILE = "params.yaml"
STATE_DIR = ".modelcycle"


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}",
                          "fix the indentation or quoting there") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values, not a {type(data).__name__}")
    return data


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc`` (the path of the offending key), for suggestions."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            return []
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ()) or ()
        candidates = [annotation, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(getattr(current, "model_fields", {}) or [])


def validation_error(path: Path, exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err.get("type") == "extra_forbidden":
            known = _known_keys(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else (
                f" (known keys here: {', '.join(known)})" if known else "")
            lines.append(f"  {key}: unknown key{hint}")
        elif err.get("type") == "missing":
            lines.append(f"  {key}: required but missing")
        else:
            msg = err.get("msg", "invalid").removeprefix("Value error, ")
            given = err.get("input")
            if isinstance(given, (str, int, float, bool)) and not err.get("type", "").startswith("value_error"):
                shown = redact(repr(given))
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                msg += f" (it is {shown})"
            lines.append(f"  {key}: {msg}")
    return ConfigError(f"{path} has {len(lines)} problem(s):\n" + "\n".join(lines),
                       "fix the key(s) named above; `modelcycle config` describes every key")


def load_config(path: Path, *, resolve: bool = True,
                environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """modelcycle.yaml as a validated model. With ``resolve`` (the default) the ``${VAR}``
    references of its URL fields are replaced by their values (``environ``, default the process
    environment, then ``.env`` beside the file; see :mod:`modelcycle.config.secrets`); without,
    they stay as written (what the file says, safe to show or write back)."""
    data = read_yaml(path)
    if resolve:
        data = resolve_references(data, config_file=path, environ=environ)
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, exc, ProjectConfig) from None


def load_params(path: Path) -> Params:
    data = read_yaml(path) if path.exists() else {}
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, exc, Params) from None


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest directory at or above ``start`` holding modelcycle.yaml."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise WorkspaceError(
        f"no {CONFIG_FILE} in {here} or any folder above it",
        "run this inside a workspace, pass --workspace DIR, or create one with "
        "`modelcycle init DIR --example taxifare`",
    )


def _sqlite_absolute(uri: str, root: Path) -> str:
    """sqlite:///relative/path -> sqlite:////abs/path (relative to the workspace)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((root / uri[len(prefix):]).resolve())
    return uri


def _is_url(text: str) -> bool:
    return "://" in text


@dataclass(frozen=True)
class Workspace:
    """A loaded workspace: its root, config and params, and its resolved backend addresses."""

    root: Path
    config: ProjectConfig
    params: Params

    @classmethod
    def load(cls, start: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace at or above ``start``; ``${VAR}`` references in its URL fields are
        resolved (environment, then ``.env``). Its ``.modelcycle/`` folder (the embedded
        backends) is made private to its owner (0700) when it was looser."""
        root = find_root(start)
        config = load_config(root / CONFIG_FILE)
        if tighten(root / STATE_DIR, 0o700):
            log.warning("%s could be read by other users; its mode is now 0700", root / STATE_DIR)
        return cls(root, config, load_params(root / PARAMS_FILE))

    def reload_params(self) -> Workspace:
        return Workspace(self.root, self.config, load_params(self.root / PARAMS_FILE))

    def next_window(self) -> Window:
        """The window after the last cycle's (``window`` in params.yaml, see
        :meth:`Window.following`): the default of a run."""
        if not self.params.window:
            raise ConfigError("no window given and no cycle has run yet",
                              "name the month to evaluate, e.g. `modelcycle run --window 2015-01`")
        return Window.parse(self.params.window).following()

    # paths --------------------------------------------------------------------------------
    def path(self, relative: str | os.PathLike[str]) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def prefect_home(self) -> Path:
        return self.state_dir / "prefect"

    # backends: an environment variable, else a server named in modelcycle.yaml, else the
    # workspace's own servers while `modelcycle up` runs them, else the embedded default -----
    @cached_property
    def live(self) -> dict[str, dict[str, Any]]:
        """The servers `modelcycle up` started for this workspace that are running now (read once
        per loaded workspace: a small JSON file and a process check, no HTTP)."""
        return live_servers(self.state_dir)

    def _live_mlflow(self) -> str | None:
        """The `up` MLflow server's URL when it serves the store modelcycle.yaml names."""
        entry = self.live.get("mlflow")
        if entry is None:
            return None
        configured = _sqlite_absolute(self.config.backends.mlflow_tracking_uri, self.root)
        return str(entry["url"]) if entry.get("store") == configured and entry.get("url") else None

    @property
    def tracking_uri(self) -> str:
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return _sqlite_absolute(env, self.root)
        return self._live_mlflow() or _sqlite_absolute(self.config.backends.mlflow_tracking_uri, self.root)

    @property
    def registry_uri(self) -> str:
        uri = os.environ.get("MLFLOW_REGISTRY_URI") or self.config.backends.mlflow_registry_uri
        return _sqlite_absolute(uri, self.root) if uri else self.tracking_uri

    @property
    def local_tracking_uri(self) -> str:
        """The MLflow store modelcycle.yaml (or MLFLOW_TRACKING_URI) names, whether or not an
        `up` server serves it: the store that server opens."""
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.config.backends.mlflow_tracking_uri
        return _sqlite_absolute(uri, self.root)

    @property
    def tracking_server(self) -> bool:
        """Whether the configured MLflow store (modelcycle.yaml or MLFLOW_TRACKING_URI, not an `up`
        server of this workspace's own store) is a tracking server other machines reach."""
        return urlparse(self.local_tracking_uri).scheme in ("http", "https")

    @property
    def artifact_location(self) -> str:
        """``backends.mlflow_artifacts`` as a URI (a folder as ``file://``; null: the embedded
        default folder)."""
        loc = self.config.backends.mlflow_artifacts or EMBEDDED_ARTIFACTS
        return loc if _is_url(loc) else self.path(loc).resolve().as_uri()

    @property
    def names_artifact_store(self) -> bool:
        """Whether ``backends.mlflow_artifacts`` names an artifact store (not null, not the
        embedded default folder)."""
        loc = self.config.backends.mlflow_artifacts
        return loc is not None and self.artifact_location != self.path(EMBEDDED_ARTIFACTS).resolve().as_uri()

    @property
    def experiment_artifacts(self) -> str | None:
        """Where a new experiment keeps its artifacts. None with a tracking server when the user
        named no artifact store: the server chooses (its served artifacts, ``mlflow-artifacts:``),
        and every machine loads the models through it; a ``file://`` folder of this machine would
        be readable here only."""
        if self.tracking_server and not self.names_artifact_store:
            return None
        return self.artifact_location

    @property
    def prefect_api_url(self) -> str | None:
        configured = os.environ.get("PREFECT_API_URL") or self.config.backends.prefect_api_url
        if configured:
            return configured
        entry = self.live.get("prefect")  # this workspace's own (not a copied servers.json's)
        if entry is None or not entry.get("url") or entry.get("home") != str(self.prefect_home.resolve()):
            return None
        return str(entry["url"])

    @property
    def dvc_remote(self) -> str | None:
        remote = os.environ.get("MODELCYCLE_DVC_REMOTE") or self.config.backends.dvc_remote
        if not remote:
            return None
        return remote if _is_url(remote) else str(self.path(remote).resolve())

    def backend_origins(self) -> dict[str, str]:
        """Where each backend address came from (for `status`)."""
        env = {"mlflow": "MLFLOW_TRACKING_URI", "prefect": "PREFECT_API_URL",
               "dvc": "MODELCYCLE_DVC_REMOTE"}
        origins = {k: (f"${v}" if os.environ.get(v) else CONFIG_FILE) for k, v in env.items()}
        if not os.environ.get("MLFLOW_TRACKING_URI") and self._live_mlflow():
            origins["mlflow"] = "modelcycle up"
        if (not os.environ.get("PREFECT_API_URL") and not self.config.backends.prefect_api_url
                and self.prefect_api_url):
            origins["prefect"] = "modelcycle up"
        return origins

