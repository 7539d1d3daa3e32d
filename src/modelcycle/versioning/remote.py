"""The DVC remote a workspace pushes to, kept in line with modelcycle.yaml.

``backends.dvc_remote`` (or ``MODELCYCLE_DVC_REMOTE``) names the remote; DVC reads its own
config. :func:`sync_remote` makes DVC's git-ignored ``.dvc/config.local`` say what the
workspace's config says, before every push (a cycle's, ``modelcycle push``'s): the remote
``modelcycle``, its URL, and, for an ``s3://`` remote, the endpoint of ``AWS_ENDPOINT_URL``
(``AWS_ENDPOINT_URL_S3`` first) as DVC's ``endpointurl``. Credentials stay in the environment
(``AWS_ACCESS_KEY_ID``...); a URL is never written to the git-tracked ``.dvc/config`` here.
:func:`remote_in_use` reads what DVC will use, for ``modelcycle status``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle.config.secrets import redact
from modelcycle.errors import VersioningError

REMOTE_NAME = "modelcycle"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class RemoteInUse:
    """The default remote DVC's merged config names: its name, URL (absolute for a folder) and
    S3 endpoint."""

    name: str
    url: str
    endpoint: str | None = None

    def describe(self) -> str:
        """The URL, password shown as ***, with the endpoint when there is one."""
        return redact(self.url) + (f" (endpoint {redact(self.endpoint)})" if self.endpoint else "")


def dvc_url(root: Path, remote_url: str, *, create: bool = False) -> Any:
    """The URL as DVC's config stores it: a URL as given; a folder absolute (created if missing
    with ``create``), relative (DVC's ``RelPath``) when it lies inside the workspace, so the
    workspace can move."""
    if "://" in remote_url:
        return remote_url
    from dvc.config_schema import RelPath

    local = Path(remote_url).expanduser()
    local = (local if local.is_absolute() else root / local).resolve()
    if create:
        local.mkdir(parents=True, exist_ok=True)
    return RelPath(local) if local.is_relative_to(root) else str(local)


def endpoint_of(remote_url: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint of the environment for an ``s3://`` remote (None for any other)."""
    env = os.environ if environ is None else environ
    if not remote_url or not remote_url.startswith("s3://"):
        return None
    return next((env[v] for v in ENDPOINT_VARIABLES if env.get(v)), None)


def sync_remote(root: str | os.PathLike[str], remote_url: str | None,
                environ: Mapping[str, str] | None = None) -> bool:
    """Make DVC's ``.dvc/config.local`` name ``remote_url`` as the default remote ``modelcycle``
    (with its S3 endpoint); with None, no default remote. True if the file changed."""
    path = Path(root).resolve()
    endpoint = endpoint_of(remote_url, environ)
    try:
        from modelcycle.versioning.dvcerrors import _quiet_dvc

        with _quiet_dvc():
            from dvc.config import Config

            config = Config(dvc_dir=str(path / ".dvc"), validate=False)
            local = config.load_one("local")
            want: dict[str, Any] | None = None
            if remote_url:
                want = {"url": dvc_url(path, remote_url), **({"endpointurl": endpoint} if endpoint else {})}
            have = local.get("remote", {}).get(REMOTE_NAME)
            default = local.get("core", {}).get("remote")
            if want is not None and _same(have, want) and default == REMOTE_NAME:
                return False
            if want is None and have is None and (default == "" or _repo_default(config) is None):
                return False
            with config.edit("local") as conf:
                if want is None:
                    conf["remote"].pop(REMOTE_NAME, None)
                    conf["core"]["remote"] = ""  # no default remote, whatever .dvc/config says
                else:
                    conf["remote"][REMOTE_NAME] = want
                    conf["core"]["remote"] = REMOTE_NAME
            return True
    except VersioningError:
        raise
    except Exception as exc:
        from modelcycle.versioning.dvcerrors import _translate

        raise _translate(exc, f"setting the DVC remote to {redact(remote_url) or 'none'}", str(path)) from exc


def _same(have: Any, want: dict[str, Any]) -> bool:
    if not isinstance(have, dict):
        return False
    return {k: str(v) for k, v in have.items()} == {k: str(v) for k, v in want.items()}


def _repo_default(config: Any) -> str | None:
    return config.load_one("repo").get("core", {}).get("remote") or None


def remote_in_use(root: str | os.PathLike[str]) -> RemoteInUse | None:
    """The default remote DVC's merged config (``.dvc/config`` and ``config.local``) names, or
    None (no DVC here, or no default remote). Reads the files only; never raises."""
    path = Path(root).resolve()
    if not (path / ".dvc").is_dir():
        return None
    try:
        from modelcycle.versioning.dvcerrors import _quiet_dvc

        with _quiet_dvc():
            from dvc.config import Config

            merged = Config(dvc_dir=str(path / ".dvc"))
            name = merged["core"].get("remote")
            conf = merged["remote"].get(name, {}) if name else {}
    except Exception:  # noqa: BLE001 - status shows what it can
        return None
    if not name or not conf.get("url"):
        return None
    url = str(conf["url"])
    if "://" not in url and not os.path.isabs(url):
        url = str((path / ".dvc" / url).resolve())
    return RemoteInUse(name, url, conf.get("endpointurl"))


def push_failed(remote: RemoteInUse | None, detail: str, root: str) -> VersioningError:
    """The error of a push that failed: which remote (password redacted), why, what to do."""
    where = remote.describe() if remote else "the DVC remote"
    s3 = remote is not None and remote.url.startswith("s3://")
    check = ("check that the bucket exists and that AWS_ENDPOINT_URL (an S3-compatible server) and the "
             "credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) are set in the "
             "environment" if s3 else
             "check that the remote exists and can be written (a folder: its path and permissions; a "
             "server: its address and credentials)")
    return VersioningError(
        f"the data and model of this cycle could not be pushed to the DVC remote {where}: {redact(detail)}",
        f"{check}, or change backends.dvc_remote (or MODELCYCLE_DVC_REMOTE); to let cycles succeed and "
        f"push later, set `versioning: {{push: best-effort}}` in modelcycle.yaml (`modelcycle push` "
        f"retries); `dvc push` in {root} pushes by hand")
