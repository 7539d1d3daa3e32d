"""A served image model through the real HTTP app: a file path a client sends is refused (422,
naming the record and the setting) unless serve.image_paths is true, and the model then reads no
file whatever the client sent; base64 text and data URIs keep working, in JSON and in CSV."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modelcycle.config.models import ServeConfig
from modelcycle.registry.base import ModelVersion
from modelcycle.serving import runner
from modelcycle.serving.app import Server, create_app
from modelcycle.serving.loader import Served
from modelcycle.steps import images


class _Follower:
    name, alias, poll_seconds = "digits", "champion", 2.0
    loaded_at = last_poll = poll_error = failure = notice = None
    swaps = 0

    def __init__(self, served: Served) -> None:
        self.served = served


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), shade).save(buffer, format="PNG")
    return buffer.getvalue()


class ImageModel:
    """What the torch model does with its image column (steps.images, which reads paths too):
    predicts each image's mean shade; remembers the cells it was given."""

    def __init__(self) -> None:
        self.cells: list[Any] = []

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        self.cells += list(frame["image"])
        return images.batch(frame["image"].tolist(), (4, 4), 1, column="image").mean(axis=(1, 2, 3)) * 255


def client(model: ImageModel, **server: Any) -> TestClient:
    version = ModelVersion("digits", "2", "memory://digits/2", run_id=None)
    served = Served("digits", version, {"image": "image"}, "regression", {}, 0.1, model, {}, None)
    return TestClient(create_app(Server(_Follower(served), **server)))  # type: ignore[arg-type]


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "seven.png"
    path.write_bytes(png(70))
    return path


def test_a_path_is_refused_by_default_naming_the_record_the_column_and_the_setting(picture: Path) -> None:
    model = ImageModel()
    http = client(model)
    body = {"records": [{"image": base64.b64encode(png(10)).decode()}, {"image": str(picture)}]}
    answer = http.post("/predict", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "image_path_refused" and error["field"] == "image" and error["row"] == 1
    assert f"record 1 of 'image' is a file path ('{str(picture)[:20]}" in error["message"]
    assert "serve.image_paths: true" in error["message"] and "base64" in error["message"]
    assert model.cells == []  # the model was never asked
    for sent in ("seven.png", "../etc/passwd", "C:\\images\\seven", "cat"):  # paths of no file too
        refused = http.post("/predict", json={"records": [{"image": sent}]})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "image_path_refused", sent
    csv = http.post("/predict", content=f"image\n{picture}\n".encode(), headers={"Content-Type": "text/csv"})
    assert csv.status_code == 422 and csv.json()["error"]["code"] == "image_path_refused"


def test_base64_and_data_uris_keep_working_and_reach_the_model_as_bytes() -> None:
    model = ImageModel()
    http = client(model)
    text = base64.b64encode(png(20)).decode()
    url = base64.urlsafe_b64encode(png(30)).decode().rstrip("=")
    body = {"dataframe_split": {"columns": ["image"],
                                "data": [[text], [url], [f"data:image/png;base64,{base64.b64encode(png(40)).decode()}"]]}}
    answer = http.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == pytest.approx([20, 30, 40], abs=0.01)
    assert model.cells == [png(20), png(30), png(40)]
    csv = http.post("/predict", content=f"image\n{text}\n".encode(), headers={"Content-Type": "text/csv"})
    assert csv.status_code == 200 and csv.json()["predictions"] == pytest.approx([20], abs=0.01)
    bad = http.post("/predict", json={"records": [{"image": text}, {"image": "data:image/png," + text}]})
    assert bad.status_code == 422 and bad.json()["error"] == {
        "code": "invalid_value", "field": "image", "row": 1, "message": bad.json()["error"]["message"]}
    assert "row 1 of 'image': the data URI" in bad.json()["error"]["message"]
    wrong = http.post("/predict", json={"records": [{"image": 7}]})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_type"


def test_a_file_named_like_base64_is_not_read_when_paths_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    name = "QUJDREVGR0hJSktMTU5PUA"  # base64 text, and the name of a file beside the server
    (tmp_path / name).write_bytes(png(90))
    refused = client(ImageModel()).post("/predict", json={"records": [{"image": name}]})
    assert refused.status_code == 422  # read as base64 text: 16 bytes that are no image
    assert "row 0 of 'image': the 16 bytes is not an image" in refused.json()["error"]["message"]
    allowed = client(ImageModel(), image_paths=True).post("/predict", json={"records": [{"image": name}]})
    assert allowed.status_code == 200 and allowed.json()["predictions"] == pytest.approx([90], abs=0.01)


def test_serve_image_paths_true_reads_the_servers_files(picture: Path) -> None:
    model = ImageModel()
    http = client(model, image_paths=True)
    answer = http.post("/predict", json={"records": [{"image": str(picture)},
                                                     {"image": base64.b64encode(png(10)).decode()}]})
    assert answer.status_code == 200 and answer.json()["predictions"] == pytest.approx([70, 10], abs=0.01)
    assert model.cells[0] == str(picture)  # the path itself: the model reads the file
    missing = http.post("/predict", json={"records": [{"image": str(picture.parent / "gone.png")}]})
    assert missing.status_code == 422 and "does not exist" in missing.json()["error"]["message"]


def test_the_setting_is_off_unless_modelcycle_yaml_turns_it_on() -> None:
    assert ServeConfig().image_paths is False and runner.Settings().image_paths is False
    assert ServeConfig.model_validate({"image_paths": True}).image_paths is True
    described = ServeConfig.model_fields["image_paths"].description or ""
    assert "422" in described and "base64" in described and "shares a disk" in described
