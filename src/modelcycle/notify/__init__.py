"""Announce decisions: the console, a JSON-lines log file, and Apprise URLs (Slack, e-mail, ...)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from modelcycle.errors import NotifyError
from modelcycle.notify.events import CycleOutcome, Event, EventKind

__all__ = ["CycleOutcome", "Event", "EventKind", "Notifier", "format_message"]

log = logging.getLogger(__name__)


def format_message(event: Event) -> str:
    if event.kind == EventKind.OUTSIDE:
        return f"[{event.model}] MOVED OUTSIDE MODELCYCLE" + "".join(f"\n  - {r}" for r in event.reasons)
    if event.kind == EventKind.ROLLBACK:
        head = f"[{event.model}] ROLLBACK: the champion is v{event.version}"
        return head + "".join(f"\n  - {r}" for r in event.reasons)
    head = f"[{event.model}] {event.window}: {str(event.outcome).upper()}"
    if event.version:
        head += f" (challenger v{event.version})"
    return head + "".join(f"\n  - {r}" for r in event.reasons)


class Notifier:
    """Sends one event to every configured channel; a failing channel never fails a cycle."""

    def __init__(self, *, file: Path | None = None, urls: list[str] | None = None,
                 echo: Callable[[Event], None] | None = None) -> None:
        self.file = file
        self.urls = list(urls or [])
        self.echo = echo
        if self.urls:
            try:
                import apprise  # noqa: F401
            except ImportError as exc:
                raise NotifyError("notify.urls is set but Apprise is not installed",
                                  "install it with: pip install 'modelcycle[notify]'") from exc

    def send(self, event: Event) -> list[str]:
        """Deliver ``event``; return the problems met (empty when every channel worked)."""
        problems: list[str] = []
        if self.echo is not None:
            self.echo(event)
        if self.file is not None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                with self.file.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(event.to_dict(), default=str) + "\n")
            except OSError as exc:
                problems.append(f"cannot append to {self.file}: {exc.strerror}")
        if self.urls:
            import apprise

            app = apprise.Apprise()
            for url in self.urls:
                if not app.add(url):
                    problems.append(f"Apprise does not understand the URL {url.split('://')[0]}://...")
            if len(app) and not app.notify(title=f"modelcycle: {event.model} {event.outcome}",
                                           body=format_message(event)):
                problems.append("an Apprise notification was not delivered")
        for p in problems:
            log.warning("notification problem: %s", p)
        return problems
