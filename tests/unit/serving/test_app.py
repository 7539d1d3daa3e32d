"""The HTTP app on a fake served version: the answer's shape, class probabilities, the shadow
seam, and errors as JSON (a failing model is a 500 with a request id, never a client's 4xx)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelcycle.registry.base import ModelVersion
from modelcycle.serving.app import Server, create_app
from modelcycle.serving.loader import Served

KINDS = {"x": "float", "n": "int"}


class _Follower:
    name, alias, poll_seconds = "m", "champion", 2.0
    loaded_at = last_poll = poll_error = failure = notice = None
    swaps = 0

    def __init__(self, served: Served | None) -> None:
        self.served = served


def _served(predict: Any = None, proba: Any = None, task: str = "regression") -> Served:
    version = ModelVersion("m", "3", "memory://m/3", run_id=None)
    return Served("m", version, dict(KINDS), task, {}, 0.1,
                  predict or (lambda frame: frame["x"].to_numpy() * 2), {}, proba)


class _Shadow:
    def __init__(self) -> None:
        self.got: list[tuple[str, pd.DataFrame, np.ndarray, str]] = []

    def submit(self, request_id: str, frame: pd.DataFrame, predictions: np.ndarray, version: str) -> bool:
        self.got.append((request_id, frame, predictions, version))
        return True

    def counters(self) -> dict[str, int]:
        return {"submitted": len(self.got), "dropped": 0}


def _client(served: Served | None, **kw: Any) -> TestClient:
    return TestClient(create_app(Server(_Follower(served), **kw)))  # type: ignore[arg-type]


def test_predictions_come_with_the_model_and_version_and_go_to_the_shadow_log() -> None:
    shadow = _Shadow()
    client = _client(_served(), shadow=shadow, key_columns=["ride"])
    response = client.post("/predict", json={"records": [{"x": 1.5, "n": 1, "ride": "a"}, {"x": 2, "n": 2, "ride": "b"}]})
    assert response.status_code == 200
    assert response.json() == {"predictions": [3.0, 4.0], "model": "m", "version": "3"}
    rid = response.headers["x-request-id"]
    [(got_id, frame, predictions, version)] = shadow.got
    assert got_id == rid and version == "3" and predictions.tolist() == [3.0, 4.0]
    assert frame["ride"].tolist() == ["a", "b"] and frame["x"].tolist() == [1.5, 2.0]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["shadow"] == {"submitted": 1, "dropped": 0}
    assert client.post("/predict", json={"records": [{"x": 1, "n": 1}]}).headers["x-request-id"] != rid


def test_a_classifier_gives_class_probabilities_when_asked_as_mlflow_clients_ask() -> None:
    def proba(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"proba_no": 1 - frame["x"] / 10, "proba_yes": frame["x"] / 10})

    client = _client(_served(predict=lambda f: np.array(["yes"] * len(f), dtype=object), proba=proba,
                             task="classification"))
    body = {"dataframe_records": [{"x": 2.0, "n": 1}, {"x": 5.0, "n": 1}], "params": {"output": "proba"}}
    answer = client.post("/predict", json=body).json()
    assert answer["predictions"] == [{"proba_no": 0.8, "proba_yes": 0.2}, {"proba_no": 0.5, "proba_yes": 0.5}]
    assert client.post("/predict", json={"records": body["dataframe_records"]}).json()["predictions"] == ["yes", "yes"]
    regression = _client(_served())
    refused = regression.post("/predict", json=body)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "params.output"
    wrong = regression.post("/predict", json={**body, "params": {"output": "logits"}})
    assert wrong.status_code == 422 and "'label' or 'proba'" in wrong.json()["error"]["message"]


def test_no_model_yet_is_503_on_predict_health_and_model() -> None:
    client = _client(None)
    assert client.get("/health").status_code == 503
    assert client.get("/health").json()["status"] == "loading"
    answer = client.post("/predict", json={"records": [{"x": 1, "n": 1}]})
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "not_ready"
    assert client.get("/model").status_code == 503


def test_a_model_that_fails_is_a_500_with_the_request_id_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    def broken(frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("feature builder exploded")

    client = _client(_served(predict=broken))
    response = client.post("/predict", json={"records": [{"x": 1, "n": 1}]})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal" and error["request_id"] == response.headers["x-request-id"]
    assert "feature builder exploded" not in error["message"]  # the details stay in the server's log
    assert any(error["request_id"] in r.getMessage() and r.exc_info for r in caplog.records)


def test_one_bad_request_in_a_batch_does_not_fail_the_others() -> None:
    import asyncio

    from modelcycle.serving.batcher import Batcher

    def picky(frame: pd.DataFrame) -> np.ndarray:
        if (frame["x"] < 0).any():
            raise ValueError("negative")
        return frame["x"].to_numpy()

    served = _served(predict=picky)

    async def three() -> list[Any]:
        batcher = Batcher()
        jobs = [batcher.predict(served, {"x": np.array([x]), "n": np.array([1])}, 1) for x in (1.0, -1.0, 2.0)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    good, bad, other = asyncio.run(three())
    assert good.values().tolist() == [1.0] and other.values().tolist() == [2.0]
    assert isinstance(bad, ValueError)
