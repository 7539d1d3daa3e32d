"""The logistic regression on raw pixels, the benchmark beside a CNN champion; and what it says of
the scenario: a model trained on the history cannot read February's 9s nor April's rotated digits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from modelcycle.errors import DataError
from modelcycle.examples.digits import baseline


def window_split(written: Path, month: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows a cycle of ``month`` trains on (every intact file before it and the window's first
    70%) and holds out (the window's latest 30%), as the image source gives them: absolute paths."""
    index = pd.read_csv(written / "images.csv")
    index["image"] = [str(written / "images" / p) for p in index["path"]]
    index["month"] = index["added_at"].str[:7]
    window = index[index["month"] == month]
    cut = len(window) - round(len(window) * 0.3)
    return pd.concat([index[index["month"] < month], window.iloc[:cut]]), window.iloc[cut:]


def test_on_a_quiet_month_the_baseline_is_a_fair_benchmark(written):
    train, holdout = window_split(written, "2015-01")
    result = baseline.logistic_regression(train, holdout)
    assert result.train_rows == len(train) == 1002 and result.holdout_rows == len(holdout) == 45
    assert 0.9 <= result.accuracy <= 1.0
    assert result.to_dict()["model"] == "logistic regression on raw pixels"


def test_a_model_of_the_history_misreads_februarys_9s_and_the_rotated_batch(written):
    history, _ = window_split(written, "2015-01")
    history = history[history["month"] < "2015-01"]
    for month in ("2015-02", "2015-04"):
        _, holdout = window_split(written, month)
        assert baseline.logistic_regression(history, holdout).accuracy < 0.9
    train, holdout = window_split(written, "2015-04")
    assert baseline.logistic_regression(train, holdout).accuracy < 0.95  # the challenger of a rotated batch


def test_paths_may_be_relative_to_a_folder_and_labels_strings(written):
    index = pd.read_csv(written / "images.csv").head(200).rename(columns={"path": "image"})
    index["label"] = index["label"].astype(str)
    result = baseline.logistic_regression(index.iloc[:150], index.iloc[150:], root=written / "images")
    assert result.holdout_rows == 50 and result.accuracy > 0.5


def test_a_row_whose_image_cannot_be_read_is_named(written, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n")
    rows = pd.DataFrame({"image": [str(next((written / "images" / "1").iterdir())), str(broken)],
                         "label": ["1", "2"]})
    with pytest.raises(DataError, match=r"row 1: cannot read the image .*broken.png"):
        baseline.logistic_regression(rows, rows)
    with pytest.raises(DataError, match="no column 'label'"):
        baseline.logistic_regression(rows.drop(columns=["label"]), rows)
    with pytest.raises(DataError, match="no column 'picture'"):
        baseline.logistic_regression(rows, rows, image="picture")


def test_pixels_read_paths_bytes_and_base64_as_validation_and_serving_do(tmp_path):
    import base64

    import numpy as np
    from PIL import Image

    (tmp_path / "3").mkdir()
    path = tmp_path / "3" / "a.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4, mode="L").save(path)
    data = path.read_bytes()
    text = base64.b64encode(data).decode()
    cells = [str(path), "3/a.png", data, text, base64.urlsafe_b64encode(data).decode().rstrip("="),
             f"data:image/png;base64,{text}"]
    got = baseline.pixels(pd.DataFrame({"image": cells}), root=tmp_path)
    assert got.shape == (6, 64)
    assert all(np.array_equal(got[0], got[i]) for i in range(1, 6))
    assert got[0][1] == pytest.approx(4 / 255)
    with pytest.raises(DataError, match=r"row 1: cannot read the image data:image/png,iVBOR.*data URI without ;base64"):
        baseline.pixels(pd.DataFrame({"image": [text, "data:image/png," + text]}))
