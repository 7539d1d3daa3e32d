"""One cell of an image column to pixels: what an image model reads (no PyTorch here).

A cell of a column of type ``image`` (modelcycle.yaml ``data.columns``) is one of:

* a **path** (``str`` or ``os.PathLike``) of an image file; a relative path is read from the
  current directory;
* the image file's **bytes** (``bytes``, ``bytearray``, ``memoryview``);
* the file's bytes as **base64** text, or a ``data:image/...;base64,`` URI (what a browser or
  a JSON client sends);
* a Pillow image already open.

:func:`open_image` turns a cell into a Pillow image, :func:`to_array` a Pillow image into a
float32 array of the model's size and channels, scaled to [0, 1] (channels first: C x H x W),
and :func:`batch` a whole column into N x C x H x W. A cell that cannot be read is a
:class:`~modelcycle.errors.DataError` naming the row and what was wrong (the file does not
exist, it is not an image, the text is not base64).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from modelcycle.errors import DataError

#: Pillow modes by number of channels.
MODES = {1: "L", 3: "RGB"}

_HINT = ("an image cell is an image file's path (absolute, or relative to the current directory), "
         "the file's bytes, or its base64 text (optionally a data:image/...;base64, URI)")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_\-\s]*={0,2}\s*$")
_DATA_URI = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _where(row: Any, column: str) -> str:
    return f"row {row} of '{column}'" if row is not None else f"the '{column}' value"


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _from_bytes(data: bytes, what: str, row: Any, column: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()  # decode now: a truncated file fails here, not in the model
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{_where(row, column)}: {what} is not an image Pillow can read "
                        f"({type(exc).__name__}: {exc})", _HINT) from exc
    return image


def _from_base64(text: str, row: Any, column: str, what: str) -> Image.Image:
    compact = "".join(text.split())
    try:
        if "-" in compact or "_" in compact:
            data = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        else:
            data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataError(f"{_where(row, column)}: the {what} is not valid base64 ({exc})", _HINT) from exc
    if not data:
        raise DataError(f"{_where(row, column)}: the {what} decodes to no bytes", _HINT)
    return _from_bytes(data, f"the base64 {what}", row, column)


def _from_data_uri(text: str, row: Any, column: str) -> Image.Image:
    match = _DATA_URI.match(text.strip())
    if match is None or ";base64" not in match.group("params").lower():
        raise DataError(f"{_where(row, column)}: the data URI {_shown(text)!r} is not base64 "
                        "(expected data:image/...;base64,<data>)", _HINT)
    return _from_base64(match.group("data"), row, column, "data URI")


def _path_exists(text: str) -> bool:
    try:
        return os.path.isfile(text)
    except (OSError, ValueError):  # too long for a file name, or a NUL in it
        return False


def _looks_like_path(text: str) -> bool:
    return ("/" in text and not _BASE64.match(text)) or "\\" in text or text.lower().endswith(_IMAGE_SUFFIXES) \
        or len(text) < 16


def _from_path(path: str | os.PathLike[str], row: Any, column: str) -> Image.Image:
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError as exc:
        where = "" if file.is_absolute() else f" (a relative path is read from {Path.cwd()})"
        raise DataError(f"{_where(row, column)}: the image file {file} does not exist{where}", _HINT) from exc
    except OSError as exc:
        raise DataError(f"{_where(row, column)}: the image file {file} cannot be read ({exc.strerror or exc})",
                        "check the file's permissions, or that it is a file and not a folder") from exc
    return _from_bytes(data, f"the file {file}", row, column)


def open_image(cell: Any, *, row: Any = None, column: str = "image") -> Image.Image:
    """The Pillow image a cell holds (see the module doc); a DataError naming ``row`` (a row's
    label or position) and ``column`` when it holds none."""
    if isinstance(cell, Image.Image):
        return cell
    if isinstance(cell, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(cell), f"the {len(cell)} bytes", row, column)
    if isinstance(cell, os.PathLike):
        return _from_path(cell, row, column)
    if isinstance(cell, str):
        text = cell.strip()
        if not text:
            raise DataError(f"{_where(row, column)} is empty text", _HINT)
        if text[:5].lower() == "data:":
            return _from_data_uri(text, row, column)
        if _path_exists(text):
            return _from_path(text, row, column)
        if _looks_like_path(text) or not _BASE64.match(text):
            return _from_path(text, row, column)  # says the file does not exist
        try:
            return _from_base64(text, row, column, "text")
        except DataError as exc:
            if len(text) > 256:
                raise
            raise DataError(f"{_where(row, column)}: {_shown(text)!r} is neither an existing file (a relative "
                            f"path is read from {Path.cwd()}) nor the base64 text of an image", _HINT) from exc
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        raise DataError(f"{_where(row, column)} is empty", _HINT)
    raise DataError(f"{_where(row, column)} holds {type(cell).__name__} ({_shown(repr(cell))}), not an image",
                    _HINT)


def channels_of(image: Image.Image) -> int:
    """1 for a grayscale image (modes 1, L, LA, I, F, a gray palette), else 3."""
    if image.mode == "P":
        return 1 if _palette_is_gray(image) else 3
    return 1 if image.mode.split(";")[0] in ("1", "L", "LA", "I", "F") else 3


def _palette_is_gray(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    triples = [tuple(palette[i:i + 3]) for i in range(0, len(palette), 3)]
    return all(r == g == b for r, g, b in triples)


def to_array(image: Image.Image, size: tuple[int, int], channels: int) -> np.ndarray:
    """``image`` as float32 pixels in [0, 1], channels first (``channels`` x H x W), resized to
    ``size`` (H, W) with bilinear filtering; ``channels`` 1 is grayscale (L), 3 is RGB."""
    if channels not in MODES:
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    mode = MODES[channels]
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F") and channels == 1:
        pixels = np.asarray(image, dtype=np.float32)
        top = float(pixels.max()) if pixels.size else 0.0
        scaled = Image.fromarray(np.clip(pixels * (255.0 / top if top > 255 else 1.0), 0, 255).astype(np.uint8))
        image = scaled
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent -> white
        image = Image.alpha_composite(background, rgba)
    converted = image.convert(mode) if image.mode != mode else image
    height, width = size
    if converted.size != (width, height):
        converted = converted.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(converted, dtype=np.float32) / 255.0
    if channels == 1:
        return pixels.reshape(1, height, width)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def decode(cell: Any, size: tuple[int, int], channels: int, *, row: Any = None, column: str = "image") -> np.ndarray:
    """One cell as ``channels`` x H x W float32 pixels in [0, 1] (see :func:`to_array`)."""
    return to_array(open_image(cell, row=row, column=column), size, channels)


def batch(cells: Sequence[Any], size: tuple[int, int], channels: int, *, column: str = "image",
          rows: Sequence[Any] | None = None) -> np.ndarray:
    """A column's cells as N x ``channels`` x H x W float32 pixels; ``rows`` names the rows in
    errors (a frame's index labels; default: their positions)."""
    labels = list(rows) if rows is not None else list(range(len(cells)))
    out = np.empty((len(cells), channels, *size), dtype=np.float32)
    for i, cell in enumerate(cells):
        out[i] = decode(cell, size, channels, row=labels[i], column=column)
    return out


def from_array(pixels: np.ndarray) -> Image.Image:
    """The Pillow image of C x H x W pixels in [0, 1] (what :func:`to_array` returns)."""
    data = np.clip(np.rint(np.asarray(pixels) * 255.0), 0, 255).astype(np.uint8)
    if data.shape[0] == 1:
        return Image.fromarray(data[0], mode="L")
    return Image.fromarray(data.transpose(1, 2, 0), mode="RGB")


def to_base64_png(image: Image.Image) -> str:
    """``image`` as the base64 text of a PNG file (what a JSON client sends)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
