"""Channels a notification goes out on, each on its own: one Apprise URL is one channel.

A channel that fails is tried again after a wait that doubles each time
(``backoff_seconds``, then twice that, ...), up to ``retries`` more times; each failure is
logged with the channel's scheme and host, never its tokens or password. Channels are sent
on at the same time, so one that is down delays none of the others, and the whole delivery
takes as long as its slowest channel."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlsplit

from modelcycle.config.secrets import redact

log = logging.getLogger(__name__)


class Channel(Protocol):
    """Somewhere a notification is delivered. ``label`` names it in logs (no secrets)."""

    label: str

    def send(self, title: str, body: str, kind: str) -> bool:
        """Deliver; True when delivered. ``kind`` is info, success, warning or failure."""
        ...


def channel_label(url: str) -> str:
    """``scheme://host[:port]`` of a URL: no user, password, token path or query."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return url.split("://", 1)[0] + "://..."
    return redact(f"{parts.scheme}://{host}" if parts.scheme else "a URL without a scheme")


class _Withheld(logging.Filter):
    """Apprise's warnings from one thread, withheld from the log: the channel's own warning says
    what failed, once per attempt, with Apprise's last reason in it."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.said: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread or record.levelno < logging.WARNING:
            return True
        self.said.append(record.getMessage())
        return False


class AppriseChannel:
    """One Apprise URL (its own Apprise object, so its result is its own)."""

    last_error: str | None = None

    def __init__(self, url: str) -> None:
        import apprise

        self._app = apprise.Apprise()
        if not self._app.add(url):
            raise ValueError(f"Apprise does not understand the URL {url.split('://')[0]}://...")
        # Apprise's own masked form of the URL (tokens shortened, passwords starred), as scheme://host
        self.label = channel_label(str(self._app[0].url(privacy=True)))

    def send(self, title: str, body: str, kind: str) -> bool:
        withheld = _Withheld()
        apprise_log = logging.getLogger("apprise")
        apprise_log.addFilter(withheld)
        try:
            sent = bool(self._app.notify(body=body, title=title, notify_type=kind))
        finally:
            apprise_log.removeFilter(withheld)
        self.last_error = None if sent or not withheld.said else redact(withheld.said[-1])
        return sent


def deliver(channel: Channel, title: str, body: str, kind: str = "info", *, retries: int = 3,
            backoff_seconds: float = 0.5, sleep: Callable[[float], Any] = time.sleep) -> str | None:
    """Send on ``channel``, trying ``retries`` more times after a failure (waits of
    ``backoff_seconds``, doubled each time). Returns None when delivered, else the problem."""
    attempts = retries + 1
    why = "not delivered"
    for attempt in range(1, attempts + 1):
        try:
            if channel.send(title, body, kind):
                if attempt > 1:
                    log.info("notification to %s delivered at attempt %d", channel.label, attempt)
                return None
            why = getattr(channel, "last_error", None) or "not delivered"
        except Exception as exc:  # noqa: BLE001 - a channel's failure is reported, never raised
            why = redact(f"{type(exc).__name__}: {exc}")
        if attempt < attempts:
            wait = backoff_seconds * 2 ** (attempt - 1)
            log.warning("notification to %s failed (attempt %d of %d: %s); trying again in %.1f s",
                        channel.label, attempt, attempts, why, wait)
            sleep(wait)
        else:
            log.warning("notification to %s failed (attempt %d of %d: %s); giving up",
                        channel.label, attempt, attempts, why)
    return f"the notification to {channel.label} was not delivered after {attempts} attempts: {why}"


def deliver_all(channels: Sequence[Channel], title: str, body: str, kind: str = "info", *, retries: int = 3,
                backoff_seconds: float = 0.5, sleep: Callable[[float], Any] = time.sleep) -> list[str]:
    """Send on every channel at once (each with its retries); the problems met, in channel order."""
    def one(channel: Channel) -> str | None:
        return deliver(channel, title, body, kind, retries=retries, backoff_seconds=backoff_seconds, sleep=sleep)

    if len(channels) <= 1:
        found = [one(c) for c in channels]
    else:
        with ThreadPoolExecutor(max_workers=min(len(channels), 8), thread_name_prefix="modelcycle-notify") as pool:
            found = list(pool.map(one, channels))
    return [p for p in found if p]
