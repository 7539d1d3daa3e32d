"""Announce decisions: the console, a JSON-lines log file, and Apprise URLs (Slack, e-mail, ...)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelcycle.errors import NotifyError
from modelcycle.notify.channels import AppriseChannel, Channel, deliver_all
from modelcycle.notify.events import CycleOutcome, Event, EventKind
from modelcycle.notify.message import format_body, format_console, format_message, format_title

__all__ = ["Channel", "CycleOutcome", "Event", "EventKind", "Notifier", "format_body", "format_console",
           "format_message", "format_title"]

log = logging.getLogger(__name__)

# Apprise's notification types (a receiver's colour or icon; a json:// receiver's "type")
_KINDS = {CycleOutcome.PROMOTE: "success", CycleOutcome.KEEP: "info", CycleOutcome.ESCALATE: "warning",
          CycleOutcome.ROLLED_BACK: "info", CycleOutcome.FAILED: "failure"}


class Notifier:
    """Sends one event to every configured channel; a failing channel never fails a cycle.

    Each Apprise URL is a channel of its own, tried ``retries`` more times after a failure with
    waits of ``backoff_seconds``, doubled each time (:mod:`modelcycle.notify.channels`).
    ``channels`` replaces the Apprise channels (tests); ``sleep`` is how a wait is waited."""

    def __init__(self, *, file: Path | None = None, urls: list[str] | None = None,
                 echo: Callable[[Event], None] | None = None, retries: int = 3, backoff_seconds: float = 0.5,
                 channels: Sequence[Channel] | None = None, sleep: Callable[[float], Any] = time.sleep) -> None:
        self.file = file
        self.urls = list(urls or [])
        self.echo = echo
        self.retries, self.backoff_seconds, self.sleep = retries, backoff_seconds, sleep
        self._channels: list[Channel] | None = list(channels) if channels is not None else None
        self._unusable: list[str] = []
        if self.urls and channels is None:
            try:
                import apprise  # noqa: F401
            except ImportError as exc:
                raise NotifyError("notify.urls is set but Apprise is not installed",
                                  "install it with: pip install 'modelcycle[notify]'") from exc

    def channels(self) -> list[Channel]:
        """The Apprise channels, built on first use (a URL Apprise does not understand is a problem
        of every send, not an error)."""
        if self._channels is None:
            self._channels = []
            for url in self.urls:
                try:
                    self._channels.append(AppriseChannel(url))
                except ValueError as exc:
                    self._unusable.append(str(exc))
        return self._channels

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
        channels = self.channels()
        problems += self._unusable
        if channels:
            kind = _KINDS.get(event.outcome, "info") if event.kind == EventKind.DECISION else "info"
            title = format_title(event)
            problems += deliver_all(channels, f"modelcycle: {title}", format_body(event) or title, kind,
                                    retries=self.retries, backoff_seconds=self.backoff_seconds, sleep=self.sleep)
        for p in problems:
            log.warning("notification problem: %s", p)
        return problems
