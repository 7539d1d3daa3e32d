"""The image-folder source: a folder per class, windows by an index or by the files' times."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from modelcycle.config.load import load_config
from modelcycle.errors import ConfigError, SourceError
from modelcycle.sources import build_source
from modelcycle.sources.base import KnowsLatest, TracksFiles, tracked_paths
from modelcycle.sources.images import ImageFolderSource
from modelcycle.steps.validate import UNPLACED

JAN, FEB, MAR = datetime(2024, 1, 1), datetime(2024, 2, 1), datetime(2024, 3, 1)


def png(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4), shade).save(path, format="PNG")
    return path


def at(path: Path, when: datetime) -> None:
    stamp = pd.Timestamp(when, tz="UTC").timestamp()  # a naive time in the tests is UTC
    os.utime(path, (stamp, stamp))


def source(folder: Path, index: Path | None = None) -> ImageFolderSource:
    return ImageFolderSource(folder, timestamp="added_at", target="label", image="picture", index=index)


def test_without_an_index_the_class_folder_is_the_label_and_the_modification_time_the_window(tmp_path):
    images = tmp_path / "images"
    at(png(images / "cat" / "a.png"), datetime(2024, 1, 10))
    at(png(images / "cat" / "b.JPG", 1), datetime(2024, 2, 3))  # suffixes in any case
    at(png(images / "dog" / "c.jpeg", 2), datetime(2024, 2, 2))
    at(png(images / "dog" / "d.png", 3), datetime(2024, 3, 5))
    (images / "dog" / "notes.txt").write_text("not an image")
    (images / "dog" / ".hidden.png").write_bytes(b"")
    (images / "README.md").write_text("files outside a class folder")
    png(images / ".cache" / "e.png")  # a hidden folder is no class

    src = source(images)
    got = src.fetch(FEB, MAR)
    assert list(got.columns) == ["picture", "label", "added_at"]
    assert list(got["picture"]) == [str(images / "dog" / "c.jpeg"), str(images / "cat" / "b.JPG")]  # by time
    assert list(got["label"]) == ["dog", "cat"]
    assert list(got["added_at"]) == [pd.Timestamp("2024-02-02"), pd.Timestamp("2024-02-03")]
    assert Path(got["picture"][0]).is_absolute()
    assert isinstance(src, KnowsLatest) and src.latest() == datetime(2024, 3, 5)
    listed = src.listing()
    assert len(listed.paths) == 4 and listed.ignored == 2  # notes.txt, README.md (hidden entries are not counted)
    assert src.fetch(datetime(2025, 1, 1), datetime(2026, 1, 1)).empty


def write_index(path: Path, rows: list[tuple[str, str, str]], extra: str = "") -> Path:
    lines = ["path,label,added_at" + (",batch" if extra else "")]
    lines += [",".join(r) + (f",{extra}" if extra else "") for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_index_is_the_truth_of_windows_and_labels(tmp_path, caplog):
    images = tmp_path / "images"
    for name in ("a", "b", "c", "unlisted"):
        png(images / "3" / f"{name}.png", ord(name[0]))
    elsewhere = png(tmp_path / "more" / "x.png", 9)  # absolute in the index
    index = write_index(tmp_path / "images.csv", [
        ("3/a.png", "3", "2024-01-20T00:00:00Z"),
        ("3/b.png", "8", "2024-02-10 12:00:00"),       # the index's label wins over the folder
        ("3/c.png", "3", "2024-02-05T01:00:00+01:00"),  # a zone: UTC wall time 2024-02-05 00:00
        (str(elsewhere), "5", "2024-02-20"),
        ("3/gone.png", "3", "2024-02-15"),           # missing: comes back for validation to drop and count
        ("3/when.png", "3", "soon"),                  # no time: in no window, counted
    ], extra="may")
    src = source(images, index)
    with caplog.at_level(logging.INFO, logger="modelcycle.sources.images"):
        got = src.fetch(FEB, MAR)
    assert list(got["picture"]) == [str(images / "3" / "c.png"), str(images / "3" / "b.png"),
                                    str(images / "3" / "gone.png"), str(elsewhere)]
    assert list(got["label"]) == ["3", "8", "3", "5"]
    assert got["added_at"][0] == pd.Timestamp("2024-02-05 00:00:00")
    assert list(got["batch"]) == ["may"] * 4  # further index columns come along
    assert got.attrs[UNPLACED] == {"added_at": (1, ["soon"])}
    assert "2 indexed file(s) are missing" in caplog.text and "gone.png" in caplog.text
    assert "1 image file(s) are not in the index" in caplog.text
    assert src.latest() == datetime(2024, 2, 20)
    assert list(src.fetch(JAN, FEB)["picture"]) == [str(images / "3" / "a.png")]


def test_tracked_paths_are_the_folder_and_the_index(tmp_path):
    images = tmp_path / "data" / "images"
    png(images / "0" / "a.png")
    index = write_index(tmp_path / "data" / "images.csv", [("0/a.png", "0", "2024-01-01")])
    src = source(images, index)
    assert isinstance(src, TracksFiles)
    assert tracked_paths(src, tmp_path) == ["data/images", "data/images.csv"]
    inside = write_index(images / "index.csv", [("0/a.png", "0", "2024-01-01")])
    assert tracked_paths(source(images, inside), tmp_path) == ["data/images"]  # versioned with the folder
    assert tracked_paths(source(images), tmp_path) == ["data/images"]


def test_check_names_the_folder_or_index_and_what_to_do(tmp_path):
    with pytest.raises(SourceError, match=r"image folder .*nowhere does not exist") as e:
        source(tmp_path / "nowhere").check()
    assert "one sub-folder per class" in e.value.hint
    png(tmp_path / "flat" / "a.png")  # an image, but in no class folder
    with pytest.raises(SourceError, match=r"no image files in class folders \(1 other entries\)") as e:
        source(tmp_path / "flat").check()
    assert "<class>/<file>.png" in e.value.hint
    png(tmp_path / "flat" / "cat" / "a.png")
    source(tmp_path / "flat").check()
    with pytest.raises(SourceError, match=r"image index .*none.csv does not exist"):
        source(tmp_path / "flat", tmp_path / "none.csv").check()
    (tmp_path / "bad.csv").write_text("file,class\na.png,cat\n")
    with pytest.raises(SourceError, match=r"lacks the column\(s\) path, label, added_at") as e:
        source(tmp_path / "flat", tmp_path / "bad.csv").fetch(JAN, FEB)
    assert "path,label,added_at" in e.value.hint
    with pytest.raises(SourceError, match="has no rows"):
        source(tmp_path / "flat", write_index(tmp_path / "empty.csv", [])).check()


def test_listing_many_files_opens_none(tmp_path, monkeypatch):
    images = tmp_path / "images"
    for c in range(10):
        (images / str(c)).mkdir(parents=True)
        for i in range(300):
            (images / str(c) / f"{i}.png").write_bytes(b"not even an image: fetch never opens one")
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("fetch opened an image"))
    started = time.perf_counter()
    got = source(images).fetch(datetime(2000, 1, 1), datetime(2100, 1, 1))
    assert len(got) == 3000 and time.perf_counter() - started < 5


def _workspace(tmp_path: Path, source_yaml: str, image_col: str = "picture") -> Path:
    (tmp_path / "modelcycle.yaml").write_text(f"""
name: digits
source:
{source_yaml}
data:
  timestamp: added_at
  target: label
  task: classification
  columns: {{{image_col}: image, label: category, added_at: datetime}}
metric: accuracy
gate: {{threshold: 0.9}}
""")
    return tmp_path


def test_the_config_builds_the_source_from_the_workspace(tmp_path):
    png(tmp_path / "data" / "images" / "7" / "a.png")
    write_index(tmp_path / "data" / "images.csv", [("7/a.png", "7", "2024-01-05")])
    root = _workspace(tmp_path, "  kind: images\n  url: data/images\n  index: data/images.csv")
    src = build_source(load_config(root / "modelcycle.yaml"), root)
    assert isinstance(src, ImageFolderSource)
    got = src.fetch(JAN, FEB)
    assert list(got.columns) == ["picture", "label", "added_at"]
    assert got["picture"][0] == str(root / "data" / "images" / "7" / "a.png")


def test_an_index_belongs_to_an_images_source_only(tmp_path):
    root = _workspace(tmp_path, "  kind: files\n  url: data/*.csv\n  index: data/images.csv")
    with pytest.raises(ConfigError, match="`index` is for an `images` source"):
        load_config(root / "modelcycle.yaml")
