"""The adapters one workspace's cycles use, built from its configuration.

Flows receive only plain parameters (the workspace path and the window); they get their
services here. How they are built and shown is chosen by the caller for the calls it makes,
through :func:`using` (a context variable, not module state): the command line's progress and
console, tests' fakes (:func:`override`), a deployment's hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelcycle.config import Workspace
from modelcycle.lifecycle.hooks import Hooks
from modelcycle.notify import Event, Notifier
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
    hooks: Hooks = field(default_factory=Hooks)

    @property
    def name(self) -> str:
        return self.ws.config.name

    def say(self, window: str, text: str) -> None:
        """Report progress (the CLI shows it; a deployment's logs get it from Prefect)."""
        if self.progress is not None:
            self.progress(window, text)


def _echo_default(event: Event) -> None:
    from modelcycle.console import OUTCOME_STYLE, err_console
    from modelcycle.notify import format_console

    err_console.print(format_console(event), style=OUTCOME_STYLE.get(str(event.outcome), ""), markup=False)


def build(ws: Workspace, *, echo: Callable[[Event], None] | None = None) -> Services:
    """Real adapters: the configured source, MLflow, DVC + git, the configured notifications."""
    from modelcycle.registry.workspace import open_registry
    from modelcycle.versioning.dvcgit import DvcGitVersioning

    return Services(
        ws=ws,
        source=build_source(ws.config, ws.root),
        registry=open_registry(ws),
        versioning=DvcGitVersioning(str(ws.root)),
        notifier=notifier_of(ws, echo=echo),
    )


def notifier_of(ws: Workspace, *, echo: Callable[[Event], None] | None = None, console: bool = True) -> Notifier:
    """The workspace's configured notifications: the decision log, Apprise URLs, the console
    (unless ``console`` is False)."""
    n = ws.config.notify
    return Notifier(file=ws.path(n.file) if n.file else None, urls=n.urls,
                    echo=(echo or _echo_default) if n.console and console else None,
                    retries=n.retries, backoff_seconds=n.backoff_seconds)


@dataclass(frozen=True)
class Options:
    """How services are built and shown for the calls made inside :func:`using`."""

    factory: Callable[[Workspace], Services] | None = None  # instead of build (tests' fakes)
    echo: Callable[[Event], None] | None = None     # console notifications
    progress: Callable[[str, str], None] | None = None       # progress lines
    hooks: Hooks = Hooks()


_options: ContextVar[Options] = ContextVar("modelcycle_services", default=Options())  # noqa: B039 - frozen


@contextmanager
def using(**changes: Any) -> Iterator[None]:
    """Within the block, build and show services with these :class:`Options` changed."""
    token = _options.set(replace(_options.get(), **changes))
    try:
        yield
    finally:
        _options.reset(token)


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
    options = _options.get()
    svc = options.factory(ws) if options.factory is not None else build(ws, echo=options.echo)
    if svc.progress is None:
        svc.progress = options.progress
    if options.hooks != Hooks():
        svc.hooks = options.hooks
    return svc
