"""Announce decisions: the console, a JSON-lines log file, and Apprise URLs (Slack, e-mail, ...)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelcycle.errors import NotifyError

log = logging.getLogger(__name__)


def format_message(event: dict[str, Any]) -> str:
    outcome = str(event.get("outcome", "?")).upper()
    head = f"[{event.get('model', '?')}] {event.get('window', '?')}: {outcome}"
    version = event.get("version")
    if version:
        head += f" (challenger v{version})"
    reasons = event.get("reasons") or []
    return head + "".join(f"\n  - {r}" for r in reasons)


class Notifier:
    """Sends one event to every configured channel; a failing channel never fails a cycle."""

    def __init__(self, *, file: Path | None = None, urls: list[str] | None = None,
                 echo: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.file = file
        self.urls = list(urls or [])
        self.echo = echo
        if self.urls:
            try:
                import apprise  # noqa: F401
            except ImportError as exc:
                raise NotifyError("notify.urls is set but Apprise is not installed",
                                  "install it with: pip install 'modelcycle[notify]'") from exc

    def send(self, event: dict[str, Any]) -> list[str]:
        """Deliver ``event``; return the problems met (empty when every channel worked)."""
        event = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **event}
        problems: list[str] = []
        if self.echo is not None:
            self.echo(event)
        if self.file is not None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                with self.file.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(event, default=str) + "\n")
            except OSError as exc:
                problems.append(f"cannot append to {self.file}: {exc.strerror}")
        if self.urls:
            import apprise

            app = apprise.Apprise()
            for url in self.urls:
                if not app.add(url):
                    problems.append(f"Apprise does not understand the URL {url.split('://')[0]}://...")
            if len(app) and not app.notify(title=f"modelcycle: {event.get('model')} {event.get('outcome')}",
                                           body=format_message(event)):
                problems.append("an Apprise notification was not delivered")
        for p in problems:
            log.warning("notification problem: %s", p)
        return problems
