"""Follow an alias move at once when the registry is an MLflow tracking server: a registry
webhook on ``model_version_alias`` events, delivered to ``POST /hooks/mlflow``.

At start, :func:`open_webhook` creates a webhook on the server with a secret made for this run;
on the way out :meth:`Webhook.close` deletes it. MLflow signs each delivery:
``X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "<delivery id>.<timestamp>.<body>")>``
with the ``X-MLflow-Delivery-Id`` and ``X-MLflow-Timestamp`` headers. :class:`Receiver` checks
that signature (and the timestamp's age) and wakes the follower of the alias the event names;
it never loads anything itself. The poll every ``serve.poll_seconds`` goes on regardless: a
webhook that could not be created, or a delivery that never arrives, only costs the delay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import orjson

log = logging.getLogger(__name__)

#: The path MLflow delivers to.
PATH = "/hooks/mlflow"
EVENTS = ["model_version_alias.created", "model_version_alias.deleted"]
#: A delivery whose timestamp is further than this from now (seconds) is refused (a replay).
MAX_AGE = 300.0
#: A delivery's body is small; anything larger is refused before it is read.
MAX_BODY = 64 * 1024


def is_tracking_server(uri: str | None) -> bool:
    return bool(uri) and urlparse(str(uri)).scheme in ("http", "https")


def is_loopback_url(url: str) -> bool:
    from modelcycle.serving.runner import is_loopback

    host = urlparse(url).hostname or ""
    return is_loopback(host)


@dataclass
class Receiver:
    """Checks a delivery and wakes the follower of the alias it names: ``wake`` maps an alias
    (``champion``, ``challenger``) to the follower's ``wake``."""

    secret: str
    name: str
    wake: Mapping[str, Callable[[], None]]
    max_age: float = MAX_AGE
    clock: Callable[[], float] = time.time
    received: int = field(default=0, init=False)

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """``(status, JSON body)``. ``headers`` has lower-case names."""
        refused = self._refusal(headers, body)
        if refused is not None:
            log.warning("refused a webhook delivery: %s", refused)
            return 401, {"error": {"code": "unauthorized", "message": refused}}
        self.received += 1
        try:
            event = orjson.loads(body)
            data = event.get("data") or {}
            entity, name, alias = event.get("entity"), data.get("name"), data.get("alias")
        except (orjson.JSONDecodeError, AttributeError):
            return 200, {"ignored": "not an MLflow event"}
        if entity != "model_version_alias" or name != self.name or alias not in self.wake:
            return 200, {"ignored": f"{entity} of {name!r} (alias {alias!r}) is not followed here"}
        self.wake[str(alias)]()
        return 200, {"woken": alias}

    def _refusal(self, headers: Mapping[str, str], body: bytes) -> str | None:
        given = headers.get("x-mlflow-signature", "")
        delivery = headers.get("x-mlflow-delivery-id", "")
        stamp = headers.get("x-mlflow-timestamp", "")
        if not given or not delivery or not stamp:
            return "no X-MLflow-Signature, X-MLflow-Delivery-Id or X-MLflow-Timestamp header"
        try:
            age = self.clock() - int(stamp)
        except ValueError:
            return f"X-MLflow-Timestamp is not a number: {stamp[:40]!r}"
        if abs(age) > self.max_age:
            return f"the delivery's timestamp is {age:.0f} s from now (at most {self.max_age:.0f} s)"
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            return "the body is not UTF-8"
        if not hmac.compare_digest(given.encode(), sign(self.secret, delivery, stamp, payload).encode()):
            return "the signature does not match this server's webhook secret"
        return None


def sign(secret: str, delivery_id: str, timestamp: str, payload: str) -> str:
    """MLflow's webhook signature (``mlflow.webhooks.delivery._generate_hmac_signature``)."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{payload}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_name(model: str, port: int) -> str:
    """A name MLflow accepts (letters, digits, ``._-``, under 63 characters) saying what made it."""
    tail = f"-{port}"
    base = re.sub(r"[^A-Za-z0-9._-]", "-", f"modelcycle-serve-{model}")[: 62 - len(tail)].rstrip("._-")
    return base + tail


@dataclass
class Webhook:
    """A webhook this run created on the tracking server; :meth:`close` deletes it."""

    client: Any
    webhook_id: str
    url: str

    def close(self) -> None:
        try:
            self.client.delete_webhook(self.webhook_id)
        except Exception as exc:  # noqa: BLE001 - leaving never fails on the webhook's account
            log.warning("could not delete the MLflow webhook %s (%s): %s", self.webhook_id, self.url, exc)


def open_webhook(tracking_uri: str, registry_uri: str, *, model: str, url: str, secret: str, port: int,
                 say: Callable[[str], None], client: Any = None) -> Webhook | None:
    """Create the webhook delivering ``model``'s alias moves to ``url``; None (after one console
    line) when the server refuses it: the server then follows by polling only."""
    name = webhook_name(model, port)
    try:
        if client is None:
            import mlflow

            client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        _drop_stale(client, name, url)
        created = client.create_webhook(name=name, url=url, events=list(EVENTS), secret=secret,
                                        description=f"modelcycle serve of {model}: follow alias moves at once")
    except Exception as exc:  # noqa: BLE001 - an old server, no permission, unreachable: poll only
        from modelcycle.config.secrets import redact

        first = redact(str(exc)).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        say(f"no MLflow webhook ({first}): following the champion by polling every few seconds only"
            + _private_hint(url))
        return None
    note = _private_hint(url) if is_loopback_url(url) else ""
    say(f"MLflow webhook created: alias moves are delivered to {url}{note}")
    return Webhook(client, created.webhook_id, url)


def _private_hint(url: str) -> str:
    hints = []
    if urlparse(url).scheme == "http":
        hints.append("MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https")
    if is_loopback_url(url):
        hints.append("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true")
    if not hints:
        return ""
    return (f" (the MLflow server delivers to {url} only when it runs with {' and '.join(hints)}; "
            f"or set serve.webhook_url to an address it may reach)")


def _drop_stale(client: Any, name: str, url: str) -> None:
    """A webhook of the same name and URL is left by a run that did not stop cleanly: its secret
    is lost, so it only delivers refusals. Delete it."""
    try:
        for hook in client.list_webhooks():
            if hook.name == name and hook.url == url:
                client.delete_webhook(hook.webhook_id)
    except Exception as exc:  # noqa: BLE001 - the creation says what is wrong
        log.debug("could not list the MLflow webhooks: %s", exc)


def new_secret() -> str:
    return secrets.token_urlsafe(32)
