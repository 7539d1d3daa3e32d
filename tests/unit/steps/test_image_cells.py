"""One reading of an image cell: validation (steps.validate, through steps.imagecheck) keeps exactly
the cells training and prediction (steps.images) can read, whatever their form: a path, bytes,
base64 of either alphabet with or without padding, a data URI; and each edge case's own result."""

from __future__ import annotations

import base64
import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelcycle.config.models import DataConfig
from modelcycle.errors import DataError
from modelcycle.steps import imagecheck, images
from modelcycle.steps.validate import validate

COLUMNS = {"image": "image", "label": "category", "added_at": "datetime"}


def png(shade: int, size: tuple[int, int] = (8, 8)) -> bytes:
    """A distinct PNG per shade (validation drops a repeated image as a duplicate)."""
    image = Image.new("L", size, shade)
    image.putpixel((0, 0), 255 - shade)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def url_safe_png(nth: int = 0) -> bytes:
    """The ``nth`` PNG whose base64 text holds + or / (so its url-safe text holds - or _) and
    needs padding."""
    found = [d for d in map(png, range(40, 180)) if set(b64(d)) & {"+", "/"} and b64(d).endswith("=")]
    return found[nth]


def url_safe(nth: int) -> str:
    return base64.urlsafe_b64encode(url_safe_png(nth)).decode()


def bad_checksum() -> bytes:
    """A PNG whose pixels decode but whose IDAT checksum is wrong: Pillow's load() passes it,
    its verify() does not (validation once refused it while prediction read it)."""
    data = bytearray(png(33))
    at = data.find(b"IDAT")
    (size,) = struct.unpack(">I", data[at - 4:at])
    data[at + 4 + size] ^= 0xFF
    return bytes(data)


def cells(tmp_path: Path) -> list[tuple[str, Any, str | None]]:
    """(case, cell, None when it reads, else the words of its error)."""
    (tmp_path / "pics").mkdir()
    file = tmp_path / "pics" / "one.png"
    file.write_bytes(png(10))
    spaced = tmp_path / "pics" / "two.png"
    spaced.write_bytes(png(9))
    pathlike = tmp_path / "pics" / "three.png"
    pathlike.write_bytes(png(8))
    noext = tmp_path / "pics" / "no_suffix"
    noext.write_bytes(png(11))
    notes = tmp_path / "pics" / "notes.png"
    notes.write_text("not a picture")
    cut = png(30)[:-20]
    std = b64(png(31))
    return [
        ("a path", str(file), None),
        ("a path with spaces around it", f"  {spaced}\n", None),
        ("a pathlib.Path", pathlike, None),
        ("a file without a suffix", str(noext), None),
        ("bytes", png(12), None),
        ("a bytearray", bytearray(png(13)), None),
        ("standard base64", b64(png(14)), None),
        ("base64 without its padding", b64(png(15)).rstrip("="), None),
        ("base64 in lines of 76 (MIME)", "\n".join(b64(png(16))[i:i + 76] for i in range(0, len(b64(png(16))), 76)),
         None),
        ("url-safe base64", url_safe(0), None),
        ("url-safe base64 without padding", url_safe(1).rstrip("="), None),
        ("a data URI", f"data:image/png;base64,{b64(png(17))}", None),
        ("a data URI in capitals", f"DATA:image/png;BASE64,{b64(png(18))}", None),
        ("a data URI with a charset", f"data:image/png;charset=binary;base64,{b64(png(19))}", None),
        ("a data URI of url-safe base64 without padding", f"data:image/png;base64,{url_safe(2).rstrip('=')}", None),
        ("a Pillow image", Image.new("RGB", (8, 8), (20, 30, 40)), None),
        ("a missing file", str(tmp_path / "pics" / "gone.png"), "does not exist"),
        ("a short name of no file", "cat", "does not exist"),
        ("a windows path of no file", "C:\\pics\\cat", "does not exist"),
        ("a file that is no image", str(notes), "is not an image Pillow can read"),
        ("a folder", str(tmp_path / "pics"), "cannot be read"),
        ("a data URI without ;base64", f"data:image/png,{std}", "is not base64"),
        ("a data URI of bad base64", "data:image/png;base64,@@@@", "not valid base64"),
        ("a data URI of no bytes", "data:image/png;base64,", "decodes to no bytes"),
        ("base64 of both alphabets", "A+B-" * 80, "mixes the standard (+/) and url-safe (-_) alphabets"),
        ("base64 of a wrong length", "QUJD" * 80 + "Q", "cannot be base64"),
        ("base64 with wrong padding", "QUJD" * 80 + "QQ=", "padding (=) is wrong"),
        ("short base64 of no image", "QUJDREVGR0hJSktMTU5PUA==", "neither an existing file"),
        ("long base64 of no image", b64(b"no image here " * 30), "the base64 text is not an image"),
        ("bytes of no image", b"hello", "the 5 bytes is not an image"),
        ("a truncated PNG's bytes", cut, "is not an image Pillow can read"),
        ("a PNG with a wrong checksum", bad_checksum(), "bad header checksum"),
        ("a number", 42, "holds int"),
        ("nothing", None, "is empty"),
        ("NaN", float("nan"), "is empty"),
        ("empty text", "  ", "is empty text"),
    ]


def predicts(cell: Any) -> str | None:
    """None when prediction reads the cell (what the torch model calls), else its error."""
    try:
        images.batch([cell], (8, 8), 1, column="image")
    except DataError as exc:
        return exc.message
    return None


def test_validation_keeps_exactly_the_cells_prediction_reads(tmp_path: Path) -> None:
    table = cells(tmp_path)
    good = [png(200 + i) for i in range(40)]  # a window of mostly good rows: nothing escalates
    frame = pd.DataFrame({"image": [c for _, c, _ in table] + good,
                          "label": ["a", "b"] * ((len(table) + len(good)) // 2) + ["a"] * ((len(table) + len(good)) % 2),
                          "added_at": pd.date_range("2024-02-01", periods=len(table) + len(good), freq="h")})
    clean, report = validate(frame, DataConfig(timestamp="added_at", target="label", task="classification",
                                               columns=COLUMNS, max_class_ratio=100))
    kept = set(clean["added_at"])  # validation returns its rows in time order, numbered anew
    for position, (case, cell, error) in enumerate(table):
        by_prediction = predicts(cell)
        assert (frame["added_at"][position] in kept) == (by_prediction is None), (case, by_prediction)
        assert (by_prediction is None) == (error is None), (case, by_prediction)
        facts = imagecheck.inspect(cell)
        assert (facts.problem is None) == (error is None), (case, facts)
    assert set(frame["added_at"][len(table):]) <= kept
    assert report.dropped["image file is missing"] == 3 and report.dropped["image is empty"] == 2


CASES = 36


@pytest.mark.parametrize("index", range(CASES))
def test_each_edge_case_reads_or_says_why(tmp_path: Path, index: int) -> None:
    table = cells(tmp_path)
    assert len(table) == CASES
    case, cell, error = table[index]
    if error is None:
        image = images.open_image(cell, row=4, column="photo")
        assert image.size == (8, 8), case
        data = images.cell_bytes(cell)
        assert Image.open(io.BytesIO(data)).size == (8, 8), case
        assert imagecheck.inspect(cell).sha256 is not None
        return
    with pytest.raises(images.CellError) as caught:
        images.open_image(cell, row=4, column="photo")
    message = caught.value.message
    assert message.startswith("row 4 of 'photo'") and error in message, (case, message)
    assert caught.value.hint
    facts = imagecheck.inspect(cell)
    assert facts.problem == (imagecheck.MISSING if error == "does not exist" else imagecheck.UNREADABLE), case
    assert facts.detail == caught.value.detail


def test_the_same_image_in_every_form_is_the_same_bytes_and_pixels(tmp_path: Path) -> None:
    data = url_safe_png()
    file = tmp_path / "x.png"
    file.write_bytes(data)
    url = base64.urlsafe_b64encode(data).decode()
    forms = [data, str(file), file, b64(data), b64(data).rstrip("="), url, url.rstrip("="),
             f"data:image/png;base64,{url}", f"data:image/png;base64,{b64(data)}"]
    assert {images.cell_bytes(f) for f in forms} == {data}
    want = images.decode(data, (8, 8), 1)
    assert all(np.array_equal(images.decode(f, (8, 8), 1), want) for f in forms)
    assert len({imagecheck.inspect(f).sha256 for f in forms}) == 1


def test_a_reader_that_takes_no_paths_refuses_them_without_looking_at_the_disk(tmp_path: Path) -> None:
    file = tmp_path / "x.png"
    file.write_bytes(png(5))
    for cell in (str(file), file, "x.png", "cat", "C:\\x"):
        with pytest.raises(images.CellError) as caught:
            images.cell_bytes(cell, row=2, column="image", paths=False)
        assert caught.value.problem == images.REFUSED
        assert "row 2 of 'image'" in caught.value.message and "file path" in caught.value.message
        assert "serve.image_paths: true" in (caught.value.hint or "")
    for cell in (png(5), b64(png(5)), f"data:image/png;base64,{b64(png(5))}"):
        assert images.cell_bytes(cell, paths=False) == png(5)
    assert images.text_form(str(file), paths=False) == images.PATH
    assert images.text_form(b64(png(5)), paths=False) == images.BASE64
    assert images.text_form(" data:image/png;base64,AAAA") == images.DATA_URI
