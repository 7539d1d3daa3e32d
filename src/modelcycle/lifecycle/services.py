"""The adapters one workspace's cycles use, built from its configuration.

Flows receive only plain parameters (the workspace path and the window); they get their
services here. Tests swap in fakes with :func:`override`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.config import Workspace
from modelcycle.notify import Notifier
from modelcycle.registry.base import Registry
from modelcycle.sources import Source, build_source
from modelcycle.versioning.base import Versioning


@dataclass
class Services:
    ws: Workspace
    source: Source
    registry: Registry
    versioning: Versioning
    notifier: Notifier
    progress: Callable[[str, str], None] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.ws.config.name

    def say(self, window: str, text: str) -> None:
        """Report progress (the CLI shows it; a deployment's logs get it from Prefect)."""
        if self.progress is not None:
            self.progress(window, text)


def _echo_default(event: dict[str, Any]) -> None:
    from modelcycle.console import err_console
    from modelcycle.notify import format_message

    style = {"promote": "promote", "keep": "keep", "escalate": "escalate"}.get(str(event.get("outcome")), "")
    err_console.print(format_message(event), style=style, markup=False)


def build(ws: Workspace, *, echo: Callable[[dict[str, Any]], None] | None = None) -> Services:
    """Real adapters: the configured source, MLflow, DVC + git, the configured notifications."""
    from modelcycle.registry.workspace import for_workspace as registry_for
    from modelcycle.versioning.dvcgit import DvcGitVersioning

    n = ws.config.notify
    return Services(
        ws=ws,
        source=build_source(ws.config, ws.root),
        registry=registry_for(ws),
        versioning=DvcGitVersioning(str(ws.root)),
        notifier=Notifier(file=ws.path(n.file) if n.file else None, urls=n.urls,
                          echo=(echo or _echo_default) if n.console else None),
    )


_factory: Callable[[Workspace], Services] | None = None
_echo: Callable[[dict[str, Any]], None] | None = None
_progress: Callable[[str, str], None] | None = None


def refuse_literal_secrets(ws: Workspace) -> None:
    """A cycle commits modelcycle.yaml: refuse, before anything connects, one that holds a
    password in a URL (it belongs in ``.env`` as a ``${VAR}``)."""
    from modelcycle.config import CONFIG_FILE, literal_secrets, literal_secrets_error

    found = literal_secrets(ws.root / CONFIG_FILE)
    if found:
        raise literal_secrets_error(ws.root / CONFIG_FILE, found)


def open_services(root: str | Path, *, committable: bool = True) -> Services:
    """The services a cycle uses; with ``committable``, the workspace's config must be fit to
    commit (a rollback does not ask)."""
    ws = Workspace.load(Path(root))
    if committable:
        refuse_literal_secrets(ws)
    svc = _factory(ws) if _factory is not None else build(ws, echo=_echo)
    if svc.progress is None:
        svc.progress = _progress
    return svc


@contextmanager
def override(factory: Callable[[Workspace], Services]) -> Iterator[None]:
    """Use ``factory`` instead of :func:`build` (tests: fakes for the registry or versioning)."""
    global _factory
    previous, _factory = _factory, factory
    try:
        yield
    finally:
        _factory = previous


def set_ui(*, echo: Callable[[dict[str, Any]], None] | None = None,
           progress: Callable[[str, str], None] | None = None) -> None:
    """How console notifications and progress are shown (the CLI renders them its own way)."""
    global _echo, _progress
    _echo, _progress = echo, progress
