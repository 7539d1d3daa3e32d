"""Image validation: broken, odd and repeated files drop their rows and are counted like the table
rules; empty classes and a class imbalance make the window suspect, as too many dropped rows do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from PIL import Image
from pydantic import ValidationError

from modelcycle.config.models import DataConfig
from modelcycle.errors import EmptyWindowError
from modelcycle.gate import Outcome, Policy, decide
from modelcycle.lifecycle.cycle import data_problem
from modelcycle.steps import imagecheck
from modelcycle.steps.evaluate import Scores
from modelcycle.steps.validate import validate

COLUMNS = {"image": "image", "label": "category", "added_at": "datetime"}


def data(rules: dict[str, Any] | None = None, **more: Any) -> DataConfig:
    return DataConfig(timestamp="added_at", target="label", task="classification", columns=COLUMNS,
                      rules=rules or {}, **more)


def picture(path: Path, *, size=(8, 8), mode="L", shade=0, fmt="PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new(mode, size, shade if mode in ("L", "1") else (shade, 0, 0))
    im.putpixel((0, 0), 255 if mode == "L" else (255, 255, 255))
    im.save(path, format=fmt)
    return path


def frame(paths: list[Path], labels: list[str], start: str = "2024-02-01") -> pd.DataFrame:
    return pd.DataFrame({"image": [str(p) for p in paths], "label": labels,
                         "added_at": pd.date_range(start, periods=len(paths), freq="h")})


def good_set(tmp_path: Path, per_class: int = 5, classes: str = "01") -> tuple[list[Path], list[str]]:
    paths, labels = [], []
    for c in classes:
        for i in range(per_class):
            paths.append(picture(tmp_path / c / f"{i}.png", shade=10 * i + int(c)))
            labels.append(c)
    return paths, labels


def test_clean_images_pass_and_keep_their_paths(tmp_path):
    paths, labels = good_set(tmp_path)
    clean, report = validate(frame(paths, labels), data({"image": {"size": [8, 8], "modes": ["L"]}}))
    assert report.rows_dropped == 0 and report.summary() == "10 rows, all valid"
    assert list(clean["image"]) == [str(p) for p in paths]
    assert report.class_counts == {"0": 5, "1": 5} and report.class_imbalance == 1.0
    assert report.max_class_ratio == 10.0 and report.suspect(0.1) is None


def test_each_broken_file_drops_its_row_and_is_counted_under_its_rule(tmp_path):
    paths, labels = good_set(tmp_path, per_class=6)
    whole = picture(tmp_path / "1" / "cut.png", shade=77).read_bytes()
    truncated = tmp_path / "1" / "cut.png"
    truncated.write_bytes(whole[: len(whole) - 30])
    text = tmp_path / "0" / "notes.png"
    text.write_text("this is no picture")
    jpeg = picture(tmp_path / "0" / "cut.jpg", size=(32, 32), mode="RGB", fmt="JPEG", shade=50)
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    copy = tmp_path / "1" / "copy.png"
    copy.write_bytes(paths[2].read_bytes())  # same bytes as an earlier row: the first is kept
    big = picture(tmp_path / "1" / "big.png", size=(16, 8), shade=99)
    colour = picture(tmp_path / "0" / "colour.png", mode="RGB", shade=120)
    gone = tmp_path / "0" / "gone.png"
    broken = [truncated, text, jpeg, copy, big, colour, gone]
    rows = frame(paths + broken, labels + ["1", "0", "0", "1", "1", "0", "0"])

    clean, report = validate(rows, data({"image": {"size": [8, 8], "modes": ["L"]}}))
    assert report.dropped == {"image is unreadable": 3, "image is a duplicate": 1, "image size is not 8x8": 1,
                              "image mode not in ['L']": 1, "image file is missing": 1}
    assert report.rows_dropped == 7 and report.rows_in == 19 and len(clean) == 12
    assert set(clean["image"]) == {str(p) for p in paths}
    assert report.examples["image is a duplicate"] == ["1/copy.png (same bytes as 0/2.png)"]
    assert report.examples["image size is not 8x8"] == ["1/big.png (16x8)"]
    assert report.examples["image mode not in ['L']"] == ["0/colour.png (RGB)"]
    assert report.examples["image file is missing"] == ["0/gone.png (no such file)"]
    assert any(e.startswith("1/cut.png (") for e in report.examples["image is unreadable"])
    assert "0/notes.png (no image format Pillow reads)" in report.examples["image is unreadable"]
    summary = report.summary()
    assert summary.startswith("7 of 19 rows dropped (image is unreadable: 3 (e.g. ") and "36.8% invalid" in summary
    assert report.to_dict()["dropped"] == report.dropped  # reports/validation.json holds the counts


def test_min_and_max_size(tmp_path):
    small = picture(tmp_path / "0" / "small.png", size=(4, 8))
    ok = picture(tmp_path / "0" / "ok.png", size=(10, 10))
    large = picture(tmp_path / "1" / "large.png", size=(10, 40))
    rules = {"image": {"min_size": [8, 8], "max_size": [32, 32]}}
    clean, report = validate(frame([small, ok, large], ["0", "0", "1"]), data(rules, max_class_ratio=100))
    assert report.dropped == {"image is smaller than 8x8": 1, "image is larger than 32x32": 1}
    assert list(clean["image"]) == [str(ok)]


def test_image_cells_may_be_bytes_or_base64(tmp_path):
    import base64

    raw = picture(tmp_path / "a.png", shade=3).read_bytes()
    other = picture(tmp_path / "b.png", shade=4).read_bytes()
    facts = imagecheck.inspect_all([raw, base64.b64encode(other).decode(),
                                    "data:image/png;base64," + base64.b64encode(raw).decode(), b"junk"])
    assert [f.problem for f in facts] == [None, None, None, imagecheck.UNREADABLE]
    assert facts[0].sha256 == facts[2].sha256 != facts[1].sha256 and facts[0].size == (8, 8)


def test_pixels_that_do_not_decode_are_caught_after_the_container_verifies(tmp_path):
    import io
    import struct
    import zlib

    data = bytearray(picture(tmp_path / "a.png", size=(32, 32)).read_bytes())
    at = data.find(b"IDAT")
    n = struct.unpack(">I", data[at - 4:at])[0]
    body = bytes(data[at + 4:at + 6]) + bytes(n - 2)  # the zlib header, then zeros: no deflate stream
    data[at + 4:at + 4 + n] = body
    data[at + 4 + n:at + 8 + n] = struct.pack(">I", zlib.crc32(b"IDAT" + body))  # chunk checksums hold
    with Image.open(io.BytesIO(bytes(data))) as im:
        im.verify()  # Pillow's verify() alone passes it
    facts = imagecheck.inspect(bytes(data))
    assert facts.problem == imagecheck.UNREADABLE and "broken data stream" in facts.detail


def test_many_cells_are_read_in_order(tmp_path):
    paths = [picture(tmp_path / f"{i}.png", shade=i) for i in range(80)]  # above the pool's threshold
    paths[40].write_text("broken")
    facts = imagecheck.inspect_all([str(p) for p in paths])
    assert [i for i, f in enumerate(facts) if f.problem] == [40]
    assert len({f.sha256 for f in facts if f.sha256}) == 79


def test_image_rules_are_for_image_columns_only():
    with pytest.raises(ValidationError, match=r"rules.label: size apply to image columns only"):
        data({"label": {"size": [8, 8]}})
    with pytest.raises(ValidationError, match=r"unknown image mode\(s\) 'rgb'"):
        data({"image": {"modes": ["rgb"]}})
    with pytest.raises(ValidationError, match="at least 1"):
        data({"image": {"size": [0, 8]}})


def test_an_empty_class_makes_the_window_suspect(tmp_path):
    paths, labels = good_set(tmp_path, classes="01")
    history = picture(tmp_path / "2" / "old.png", shade=200)  # class 2 only before the window
    rows = pd.concat([frame([history], ["2"], start="2024-01-15"), frame(paths, labels)], ignore_index=True)
    _, report = validate(rows, data({"label": {"allowed": [0, 1, 2]}}), window_start=datetime(2024, 2, 1))
    assert report.rows_dropped == 0  # allowed: [0, 1, 2] are the class folders '0', '1', '2'
    assert report.empty_classes == ["2"]
    problem = report.suspect(0.1)
    assert problem == "no valid rows of class 2 in the window (data.rules.label.allowed lists it)"
    assert problem in report.summary() and report.to_dict()["empty_classes"] == ["2"]


def test_a_class_imbalance_beyond_the_limit_makes_the_window_suspect(tmp_path):
    paths, labels = good_set(tmp_path, per_class=12, classes="0")
    paths.append(picture(tmp_path / "1" / "lonely.png", shade=99))
    labels.append("1")
    _, report = validate(frame(paths, labels), data())
    assert report.class_counts == {"0": 12, "1": 1} and report.class_imbalance == 12.0
    assert report.suspect(0.1) == ("class imbalance: 12 valid rows of label '0' vs 1 of '1' in the window "
                                   "(12.0 to 1, limit data.max_class_ratio 10)")
    _, relaxed = validate(frame(paths, labels), data(max_class_ratio=20))
    assert relaxed.suspect(0.1) is None and relaxed.max_class_ratio == 20


def test_a_table_has_no_class_ratio_limit_unless_it_sets_one():
    rows = pd.DataFrame({"x": [1.0] * 30, "y": ["a"] * 29 + ["b"],
                         "ts": pd.date_range("2024-01-01", periods=30, freq="h")})
    rows["x"] = range(30)
    table = DataConfig(timestamp="ts", target="y", task="classification",
                       columns={"x": "float", "y": "category", "ts": "datetime"})
    _, report = validate(rows, table)
    assert report.class_imbalance == 29.0 and report.max_class_ratio is None and report.suspect(0.1) is None
    limited = table.model_copy(update={"max_class_ratio": 5.0})
    _, report = validate(rows, limited)
    assert report.suspect(0.1) is not None and "29.0 to 1" in report.suspect(0.1)


def _scores(value: float) -> Scores:
    import numpy as np

    y = np.zeros(50)
    return Scores(metric="accuracy", value=value, rows=50, y_true=y, y_pred=y)


def _decision(report, config: DataConfig):
    svc = SimpleNamespace(ws=SimpleNamespace(config=SimpleNamespace(data=config)))
    policy = Policy(metric="accuracy", threshold=0.9, test="none", min_effect=0.0)
    return decide(_scores(0.92), _scores(0.99), policy, data_problem=data_problem(svc, report))  # type: ignore[arg-type]


def test_one_broken_file_is_dropped_but_a_broken_batch_escalates(tmp_path):
    paths, labels = good_set(tmp_path, per_class=10)
    cfg = data({"image": {"size": [8, 8]}})
    one = tmp_path / "1" / "broken.png"
    one.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    _, report = validate(frame([*paths, one], [*labels, "1"]), cfg)
    assert report.rows_dropped == 1
    decision = _decision(report, cfg)
    assert decision.outcome is Outcome.PROMOTE  # one file among 21: dropped, counted, the cycle goes on

    batch = []
    for i in range(8):  # a batch of which most files are cut short
        whole = picture(tmp_path / "batch" / str(i % 2) / f"{i}.png", shade=100 + i)
        whole.write_bytes(whole.read_bytes()[:-25])
        batch.append(whole)
    history = frame(paths, labels, start="2024-01-01")
    window = frame([*batch, paths[0]], [str(i % 2) for i in range(8)] + ["0"], start="2024-02-01")
    window.loc[8, "image"] = str(picture(tmp_path / "batch" / "0" / "fine.png", shade=222))
    _, report = validate(pd.concat([history, window], ignore_index=True), cfg, window_start=datetime(2024, 2, 1))
    assert report.dropped == {"image is unreadable": 8} and report.window_rows_out == 1
    decision = _decision(report, cfg)
    assert decision.outcome is Outcome.ESCALATE
    assert decision.reasons[0].startswith("data suspect: 89% of the window's rows failed validation (limit 10%)")


def test_a_window_of_only_broken_files_stops_with_the_rule_that_dropped_them(tmp_path):
    bad = []
    for i in range(3):
        p = tmp_path / "0" / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"not a picture {i}")
        bad.append(p)
    with pytest.raises(EmptyWindowError, match="most often: image is unreadable"):
        validate(frame(bad, ["0"] * 3), data(), where="(window 2024-02)")
