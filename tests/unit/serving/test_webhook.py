"""MLflow registry webhooks: a delivery MLflow signed wakes the follower of the alias it names;
anything else is refused (401) or ignored, and never wakes it. Signatures are made with MLflow's
own signer, so the format checked is the one an MLflow server sends."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow.webhooks.delivery import _generate_hmac_signature

from modelcycle.registry.memory import MemoryRegistry
from modelcycle.serving import runner, webhook
from modelcycle.serving.app import Server, create_app
from modelcycle.serving.webhook import Receiver, open_webhook

SECRET = "s3cret-of-this-run"


class _Follower:
    name, alias, poll_seconds = "m", "champion", 2.0
    loaded_at = last_poll = poll_error = failure = served = None
    swaps = 0

    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def _delivery(name: str = "m", alias: str = "champion", *, secret: str = SECRET, age: float = 0.0,
              action: str = "created") -> tuple[str, dict[str, str]]:
    """The body and headers as mlflow.webhooks.delivery sends them."""
    payload = json.dumps({"entity": "model_version_alias", "action": action, "timestamp": "2026-01-01T00:00:00+00:00",
                          "data": {"name": name, "alias": alias, "version": "4"}})
    delivery_id, stamp = str(uuid.uuid4()), str(int(time.time() - age))
    return payload, {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery_id,
                     "X-MLflow-Timestamp": stamp,
                     "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, stamp, payload)}


def _app(token: str | None = "tok", shadow: bool = False) -> tuple[TestClient, _Follower, _Follower]:
    champion, challenger = _Follower(), _Follower()
    wake = {"champion": champion.wake, **({"challenger": challenger.wake} if shadow else {})}
    server = Server(champion, webhook=Receiver(SECRET, "m", wake))  # type: ignore[arg-type]
    return TestClient(create_app(server, token=token)), champion, challenger


def test_a_delivery_mlflow_signed_wakes_the_follower_without_the_serve_token() -> None:
    client, champion, _ = _app(token="tok")
    body, headers = _delivery()
    answer = client.post(webhook.PATH, content=body, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"woken": "champion"}
    assert champion.woken == 1
    body, headers = _delivery(action="deleted")
    assert client.post(webhook.PATH, content=body, headers=headers).status_code == 200
    assert champion.woken == 2
    assert client.get("/model").status_code == 401  # the other routes still need the token


def test_the_challenger_is_woken_only_when_shadow_scoring_follows_it() -> None:
    client, champion, challenger = _app(shadow=True)
    body, headers = _delivery(alias="challenger")
    assert client.post(webhook.PATH, content=body, headers=headers).json() == {"woken": "challenger"}
    assert (champion.woken, challenger.woken) == (0, 1)
    plain, champion, challenger = _app(shadow=False)
    answer = plain.post(webhook.PATH, content=body, headers=headers)
    assert answer.status_code == 200 and "ignored" in answer.json()
    assert (champion.woken, challenger.woken) == (0, 0)


@pytest.mark.parametrize("case", ["wrong secret", "no signature", "no timestamp", "too old", "from the future",
                                  "body changed", "delivery id changed"])
def test_a_delivery_without_a_valid_signature_is_401_and_wakes_nothing(case: str) -> None:
    client, champion, _ = _app()
    body, headers = _delivery(secret="another" if case == "wrong secret" else SECRET,
                              age={"too old": 301.0, "from the future": -400.0}.get(case, 0.0))
    if case == "no signature":
        del headers["X-MLflow-Signature"]
    elif case == "no timestamp":
        del headers["X-MLflow-Timestamp"]
    elif case == "body changed":
        body = body.replace('"4"', '"5"')
    elif case == "delivery id changed":
        headers["X-MLflow-Delivery-Id"] = str(uuid.uuid4())
    answer = client.post(webhook.PATH, content=body, headers=headers)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    assert champion.woken == 0


def test_a_delivery_four_minutes_old_is_still_taken() -> None:
    client, champion, _ = _app()
    body, headers = _delivery(age=240.0)
    assert client.post(webhook.PATH, content=body, headers=headers).status_code == 200
    assert champion.woken == 1


@pytest.mark.parametrize(("name", "alias"), [("other-model", "champion"), ("m", "staging"), ("m", "challenger")])
def test_another_models_or_aliases_event_is_ignored(name: str, alias: str) -> None:
    client, champion, _ = _app()
    body, headers = _delivery(name=name, alias=alias)
    answer = client.post(webhook.PATH, content=body, headers=headers)
    assert answer.status_code == 200 and "ignored" in answer.json()
    assert champion.woken == 0


def test_without_a_webhook_the_path_is_not_served() -> None:
    client = TestClient(create_app(Server(_Follower())))  # type: ignore[arg-type]
    body, headers = _delivery()
    assert client.post(webhook.PATH, content=body, headers=headers).status_code == 404


class _Client:
    def __init__(self, refuse: Exception | None = None, stale: list[Any] | None = None) -> None:
        self.refuse, self.stale = refuse, list(stale or [])
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def list_webhooks(self) -> list[Any]:
        return self.stale

    def create_webhook(self, **kw: Any) -> Any:
        if self.refuse is not None:
            raise self.refuse
        self.created.append(kw)
        return type("Hook", (), {"webhook_id": "wh-1"})()

    def delete_webhook(self, webhook_id: str) -> None:
        self.deleted.append(webhook_id)


def test_the_webhook_is_created_for_alias_events_with_the_secret_and_deleted_on_close() -> None:
    said: list[str] = []
    stale = type("Hook", (), {"webhook_id": "old", "name": "modelcycle-serve-m-8080",
                              "url": "http://serve.internal:8080/hooks/mlflow"})()
    client = _Client(stale=[stale])
    hook = open_webhook("http://mlflow:5000", "http://mlflow:5000", model="m", url=stale.url, secret=SECRET,
                        port=8080, say=said.append, client=client)
    assert hook is not None and client.deleted == ["old"]  # a dead run's webhook of the same name and URL
    [created] = client.created
    assert created["events"] == ["model_version_alias.created", "model_version_alias.deleted"]
    assert created["secret"] == SECRET and created["url"] == stale.url and created["name"] == "modelcycle-serve-m-8080"
    assert said == ["MLflow webhook created: alias moves are delivered to http://serve.internal:8080/hooks/mlflow"]
    hook.close()
    assert client.deleted == ["old", "wh-1"]


def test_a_refused_webhook_is_one_line_naming_what_mlflow_needs_for_a_loopback_url() -> None:
    said: list[str] = []
    client = _Client(refuse=RuntimeError("Invalid webhook URL scheme: 'http'.\nmore detail"))
    hook = open_webhook("http://127.0.0.1:5000", "http://127.0.0.1:5000", model="m",
                        url="http://127.0.0.1:8080/hooks/mlflow", secret=SECRET, port=8080, say=said.append,
                        client=client)
    assert hook is None
    [line] = said
    assert "Invalid webhook URL scheme" in line and "more detail" not in line and "polling" in line
    assert "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true" in line and "serve.webhook_url" in line


def test_the_served_model_gets_its_webhook_at_start_and_loses_it_on_the_way_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = MemoryRegistry()
    reg.registry_uri = "http://mlflow.internal:5000"  # type: ignore[attr-defined]
    opened: list[dict[str, Any]] = []
    closed = threading.Event()

    class _Hook:
        def close(self) -> None:
            closed.set()

    def fake_open(tracking_uri: str, registry_uri: str, **kw: Any) -> Any:
        opened.append({"registry_uri": registry_uri, **kw})
        return _Hook()

    monkeypatch.setattr(runner, "open_webhook", fake_open)
    stop = threading.Event()
    settings = runner.Settings(port=0, poll_seconds=60, webhook_url="http://serve.internal:9000/hooks/mlflow")
    runner.serve(reg, "m", tmp_path, settings, runner.Hooks(say=lambda _text: None), ready=lambda _url: stop.set(),
                 stop=stop)
    [call] = opened
    assert call["registry_uri"] == "http://mlflow.internal:5000" and call["model"] == "m"
    assert call["url"] == "http://serve.internal:9000/hooks/mlflow" and len(call["secret"]) >= 32
    assert closed.is_set()

    opened.clear()
    plain = MemoryRegistry()  # not a tracking server: polling only, no webhook
    runner.serve(plain, "m", tmp_path, runner.Settings(port=0, poll_seconds=60), runner.Hooks(say=lambda _t: None),
                 ready=lambda _url: stop.set(), stop=stop)
    assert opened == []
