"""Image cells to pixels: a path, bytes, base64 text or a data URI; and what a bad cell says."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelcycle.errors import DataError
from modelcycle.steps import images


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def gradient() -> Image.Image:
    """A 4 x 6 (H x W) grayscale image whose pixel (r, c) is 10 * (r * 6 + c)."""
    return Image.fromarray((np.arange(24, dtype=np.uint8).reshape(4, 6) * 10), mode="L")


@pytest.fixture
def gradient_file(tmp_path: Path, gradient: Image.Image) -> Path:
    path = tmp_path / "gradient.png"
    gradient.save(path)
    return path


def expected(gradient: Image.Image) -> np.ndarray:
    return (np.asarray(gradient, dtype=np.float32) / 255.0).reshape(1, 4, 6)


def test_a_path_text_a_pathlike_and_a_relative_path_read_the_same_pixels(
        gradient: Image.Image, gradient_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    want = expected(gradient)
    assert np.array_equal(images.decode(str(gradient_file), (4, 6), 1), want)
    assert np.array_equal(images.decode(gradient_file, (4, 6), 1), want)
    monkeypatch.chdir(gradient_file.parent)
    assert np.array_equal(images.decode("gradient.png", (4, 6), 1), want)


def test_bytes_base64_and_a_data_uri_read_the_same_pixels(gradient: Image.Image) -> None:
    data = png_bytes(gradient)
    text = base64.b64encode(data).decode()
    want = expected(gradient)
    for cell in (data, bytearray(data), memoryview(data), text, f"data:image/png;base64,{text}",
                 base64.urlsafe_b64encode(data).decode().rstrip("=")):
        got = images.decode(cell, (4, 6), 1)
        assert got.dtype == np.float32 and np.array_equal(got, want), type(cell)


def test_pixels_are_resized_scaled_to_0_1_and_given_the_channels_asked_for(gradient: Image.Image) -> None:
    gray = images.decode(png_bytes(gradient), (8, 12), 1)
    assert gray.shape == (1, 8, 12) and gray.dtype == np.float32
    assert 0.0 <= gray.min() < 0.05 and 0.85 < gray.max() <= 1.0
    rgb = images.decode(png_bytes(gradient), (4, 6), 3)
    assert rgb.shape == (3, 4, 6)
    assert np.array_equal(rgb[0], rgb[1]) and np.array_equal(rgb[0], expected(gradient)[0])
    colour = Image.new("RGB", (2, 2), (255, 0, 0))
    assert np.array_equal(images.decode(colour, (2, 2), 3)[:, 0, 0], [1.0, 0.0, 0.0])
    assert images.decode(colour, (2, 2), 1).shape == (1, 2, 2)


def test_transparent_pixels_become_white_and_channels_of_tells_gray_from_colour() -> None:
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert np.allclose(images.decode(clear, (2, 2), 3), 1.0)
    assert images.channels_of(Image.new("L", (1, 1))) == 1
    assert images.channels_of(Image.new("RGB", (1, 1))) == 3


def test_batch_stacks_a_column_and_from_array_round_trips(gradient: Image.Image, gradient_file: Path) -> None:
    out = images.batch([str(gradient_file), png_bytes(gradient)], (4, 6), 1)
    assert out.shape == (2, 1, 4, 6) and np.array_equal(out[0], out[1])
    again = images.from_array(out[0])
    assert np.array_equal(np.asarray(again), np.asarray(gradient))
    text = images.to_base64_png(again)
    assert np.array_equal(images.decode(text, (4, 6), 1), out[0])


def test_a_missing_file_names_the_row_the_file_and_the_folder_it_was_read_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        images.batch(["images/cat.png"], (4, 4), 1, column="photo", rows=[17])
    message = caught.value.message
    assert "row 17 of 'photo'" in message and "images/cat.png" in message and "does not exist" in message
    assert str(tmp_path) in message
    assert "path" in (caught.value.hint or "") and "base64" in (caught.value.hint or "")


def test_a_file_that_is_not_an_image_says_so(tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    with pytest.raises(DataError, match=r"row 3 of 'image': the file .*notes.png is not an image"):
        images.decode(str(notes), (4, 4), 1, row=3)
    with pytest.raises(DataError, match="row 0 of 'image': the 5 bytes is not an image"):
        images.decode(b"hello", (4, 4), 1, row=0)


def test_bad_base64_is_named_as_such() -> None:
    with pytest.raises(DataError, match=r"row 2 of 'image': the data URI is not valid base64"):
        images.decode("data:image/png;base64,@@@@", (4, 4), 1, row=2)
    with pytest.raises(DataError, match="is not base64"):
        images.decode("data:image/png,rawtext", (4, 4), 1, row=2)
    long_text = base64.b64encode(b"these bytes are no image at all" * 20).decode()
    with pytest.raises(DataError, match=r"row 5 of 'image': the base64 text is not an image"):
        images.decode(long_text, (4, 4), 1, row=5)
    with pytest.raises(DataError, match="neither an existing file .* nor the base64 text of an image"):
        images.decode("abcdabcdabcdabcdabcd", (4, 4), 1, row=1)


def test_empty_and_non_image_cells_are_data_errors() -> None:
    for cell, words in ((None, "is empty"), (float("nan"), "is empty"), ("  ", "is empty text"),
                        (42, "holds int")):
        with pytest.raises(DataError, match=f"row 9 of 'image' {words}"):
            images.decode(cell, (4, 4), 1, row=9)
