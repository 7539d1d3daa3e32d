"""The digits example's files: PNG files in class folders, the index, the broken batch, determinism."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelcycle.errors import SourceError
from modelcycle.examples.digits import files, pngfile, release


def digest(folder: Path, index: Path) -> str:
    sha = hashlib.sha256(index.read_bytes())
    for path in sorted(folder.rglob("*.png")):
        sha.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (8, 8)
        return np.asarray(image)


def test_the_index_lists_every_file_in_its_class_folder_oldest_first(written):
    index = pd.read_csv(written / "images.csv")
    assert list(index.columns) == ["path", "label", "added_at"] and len(index) == 1798
    assert index["path"].is_unique
    assert (index["path"].str.split("/").str[0] == index["label"].astype(str)).all()
    assert all((written / "images" / p).is_file() for p in index["path"])
    assert sorted(p.relative_to(written / "images").as_posix() for p in (written / "images").rglob("*.png")) \
        == sorted(index["path"])
    stamps = pd.to_datetime(index["added_at"])
    assert stamps.is_monotonic_increasing and str(stamps.min()) >= "2014-07-01" and str(stamps.max()) < "2015-07-01"


def test_an_image_file_holds_the_datasets_digit_as_8_bit_greyscale(written):
    images, labels = release.dataset()
    plan = release.plan()
    for i in (0, 5, 1796):
        row = plan[plan["id"] == i].iloc[0]
        path = written / "images" / f"{labels[i]}/{i:04d}.png"
        expected = np.rint(images[i] * 255 / 16).astype(np.uint8)
        if row["rotation"]:
            expected = np.rot90(expected, row["rotation"] // 90)
        if not row["defect"]:
            assert np.array_equal(read(path), expected)


def test_the_rotated_batchs_files_are_turned_copies_of_the_originals(written):
    images, _ = release.dataset()
    plan = release.plan()
    rotated = plan[plan["month"] == release.ROTATED_MONTH]
    same = 0
    rows: list[Any] = list(rotated.itertuples())
    for row in rows:
        pixels = read(written / "images" / files.relative_path(row))
        original = np.rint(images[row.source] * 255 / 16).astype(np.uint8)
        assert np.array_equal(pixels, np.rot90(original, row.rotation // 90))
        same += np.array_equal(pixels, original)
    assert same == 0  # no digit of the batch looks as it did


def test_the_broken_batchs_files_are_broken_as_the_plan_says(written):
    plan = release.plan()
    broken = plan[plan["defect"] != ""]
    for row in broken.itertuples():
        path = written / "images" / files.relative_path(row)
        if row.defect == "truncated":
            whole = pngfile.encode(release.pixels(row))
            assert path.read_bytes() == whole[:len(whole) // 2]
            with pytest.raises(OSError), Image.open(path) as image:
                image.load()
        elif row.defect == "empty":
            assert path.stat().st_size == 0
        else:
            original = plan[(plan["id"] == row.source)].iloc[0]
            assert path.read_bytes() == (written / "images" / files.relative_path(original)).read_bytes()
            assert path.name != files.relative_path(original).split("/")[1]
    intact = plan[(plan["month"] == release.BROKEN_MONTH) & (plan["defect"] == "")]
    for row in intact.itertuples():
        read(written / "images" / files.relative_path(row))


def test_the_same_seed_writes_byte_identical_files_and_another_seed_other_ones(written, tmp_path):
    files.write(tmp_path / "a", tmp_path / "a.csv", seed=release.SEED)
    assert digest(tmp_path / "a", tmp_path / "a.csv") == digest(written / "images", written / "images.csv")
    files.write(tmp_path / "b", tmp_path / "b.csv", seed=1)
    assert digest(tmp_path / "b", tmp_path / "b.csv") != digest(tmp_path / "a", tmp_path / "a.csv")


def test_the_batches_are_released_one_month_at_a_time_then_no_more(tmp_path, written):
    images, index = tmp_path / "images", tmp_path / "images.csv"
    assert files.write(images, index, through="2014-12") == 897
    assert files.newest_month(index) == "2014-12"
    released = [files.release_next(images, index) for _ in release.BATCH_MONTHS]
    assert released == [("2015-01", 150), ("2015-02", 150), ("2015-03", 150), ("2015-04", 150),
                        ("2015-05", 151), ("2015-06", 150)]
    assert digest(images, index) == digest(written / "images", written / "images.csv")
    with pytest.raises(SourceError, match="every batch of the digits example is already released"):
        files.release_next(images, index)


def test_an_empty_index_releases_the_history_at_once_and_a_missing_one_is_named(tmp_path):
    index = tmp_path / "images.csv"
    index.write_text("path,label,added_at\n")
    assert files.release_next(tmp_path / "images", index) == ("2014-12", 897)
    with pytest.raises(SourceError, match="there is no index of the digits' images"):
        files.release_next(tmp_path / "images", tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="the digits example has no month 2016-01"):
        files.write(tmp_path / "x", tmp_path / "x.csv", through="2016-01")


def test_the_png_encoder_writes_what_pillow_reads_and_refuses_what_is_not_greyscale():
    pixels = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4) * 10
    data = pngfile.encode(pixels)
    from io import BytesIO

    with Image.open(BytesIO(data)) as image:
        assert image.size == (4, 6) and image.mode == "L" and np.array_equal(np.asarray(image), pixels)
    with pytest.raises(ValueError, match="2-D"):
        pngfile.encode(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="0..255"):
        pngfile.encode(np.full((2, 2), 300))
