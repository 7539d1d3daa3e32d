"""One cell of an image column to pixels: what an image model reads (no PyTorch here).

A cell of a column of type ``image`` (modelcycle.yaml ``data.columns``) is one of:

* a **path** (``str`` or ``os.PathLike``) of an image file; a relative path is read from the
  current directory;
* the image file's **bytes** (``bytes``, ``bytearray``, ``memoryview``);
* the file's bytes as **base64** text, or a ``data:image/...;base64,`` URI (what a browser or
  a JSON client sends);
* a Pillow image already open.

:func:`read_image` is the one reading of a cell, which validation (:mod:`.imagecheck`), training,
prediction and serving share, so that validation keeps exactly the cells a model can read: the
cell's bytes (:func:`cell_bytes`; how a text is taken, path, base64 or data URI, is
:func:`text_form`) and the image they hold, its container verified and its pixels decoded. Base64
may use either alphabet (standard or url-safe, not both), line breaks and no padding; a data URI
must say ``;base64``. With ``paths=False`` (``serve.image_paths: false``) a path is refused and the
disk is never looked at.

:func:`open_image` turns a cell into a Pillow image, :func:`to_array` a Pillow image into a
float32 array of the model's size and channels, scaled to [0, 1] (channels first: C x H x W),
and :func:`batch` a whole column into N x C x H x W. A cell that cannot be read is a
:class:`CellError` (a :class:`~modelcycle.errors.DataError`) naming the row and column and what
was wrong (the file does not exist, it is not an image, the text is not base64).
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
         "the file's bytes, or its base64 text (standard or url-safe, padding optional; or a "
         "data:image/...;base64, URI)")
#: text of either base64 alphabet (no mix is checked here), with line breaks and padding
_BASE64 = re.compile(r"^[A-Za-z0-9+/_\-\s]*={0,2}$")
_DATA_URI = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL | re.IGNORECASE)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: text shorter than this that names no file is taken for a path (the base64 of a readable image
#: is longer: a 1 x 1 PNG's is 92 characters)
_SHORTEST_BASE64 = 16
#: base64 text up to this long that does not decode to an image may as well be a mistyped path
_AMBIGUOUS_UP_TO = 256

#: The forms of a text cell (:func:`text_form`).
PATH, DATA_URI, BASE64 = "path", "data URI", "base64"
#: Why a cell holds no image (:attr:`CellError.problem`).
MISSING, UNREADABLE, REFUSED = "missing", "unreadable", "refused"

#: what a client of a server that refuses paths is told to do instead
PATHS_REFUSED_HINT = ("send the image's base64 text (or a data:image/...;base64, URI) instead of a path, "
                      "or set `serve.image_paths: true` in modelcycle.yaml when the server shares a disk "
                      "with its clients")


class CellError(DataError):
    """An image cell that holds no readable image: ``problem`` is :data:`MISSING` (a path to no
    file), :data:`REFUSED` (a path where paths are not read) or :data:`UNREADABLE`; ``detail``
    says why in a few words (without the row), for validation's examples."""

    def __init__(self, message: str, hint: str | None, *, problem: str, detail: str) -> None:
        super().__init__(message, hint)
        self.problem, self.detail = problem, detail


def _where(row: Any, column: str) -> str:
    return f"row {row} of '{column}'" if row is not None else f"the '{column}' value"


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _path_exists(text: str) -> bool:
    try:
        return os.path.exists(text)
    except (OSError, ValueError):  # too long for a file name, or a NUL in it
        return False


def _looks_like_path(text: str) -> bool:
    """Short, a backslash, an image suffix, a character base64 has not, or a slash beside - or _
    (base64 text never mixes its two alphabets: a JPEG's starts with /9j/, a folder's path may)."""
    return (len(text) < _SHORTEST_BASE64 or "\\" in text or text.lower().endswith(_IMAGE_SUFFIXES)
            or not _BASE64.match(text) or ("/" in text and ("-" in text or "_" in text)))


def text_form(text: str, *, paths: bool = True) -> str:
    """How a text cell is read: :data:`DATA_URI` (it starts with ``data:``), :data:`PATH` (it
    names an existing file, or looks like a path: short, a backslash, an image suffix, characters
    base64 has not) or :data:`BASE64`. With ``paths`` False the disk is not looked at."""
    text = text.strip()
    if text[:5].lower() == "data:":
        return DATA_URI
    if paths and _path_exists(text):
        return PATH  # a file, or a folder (which says it is no file)
    return PATH if _looks_like_path(text) else BASE64


def _decode_base64(text: str) -> bytes:
    """Standard or url-safe base64 (not both in one text), line breaks and padding optional;
    ValueError saying what is wrong otherwise."""
    compact = "".join(text.split())
    if not _BASE64.match(compact):
        raise ValueError("it holds characters base64 has not")
    body = compact.rstrip("=")
    if ("-" in body or "_" in body) and ("+" in body or "/" in body):
        raise ValueError("it mixes the standard (+/) and url-safe (-_) alphabets")
    if len(body) % 4 == 1:
        raise ValueError(f"{len(body)} characters cannot be base64 (one too many or too few)")
    if compact != body and len(compact) % 4:
        raise ValueError("its padding (=) is wrong")
    body = body.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from exc


def _fail(row: Any, column: str, what: str, problem: str, detail: str, hint: str = _HINT) -> CellError:
    return CellError(f"{_where(row, column)}{what}", hint, problem=problem, detail=detail)


def _file_bytes(path: str | os.PathLike[str], row: Any, column: str, paths: bool) -> tuple[bytes, str]:
    file = Path(path)
    if not paths:
        raise _fail(row, column, f": {_shown(str(path))!r} is a file path, and this server reads no files "
                    "(serve.image_paths is false)", REFUSED, "a file path, which is refused here",
                    PATHS_REFUSED_HINT)
    try:
        return file.read_bytes(), f"the file {file}"
    except FileNotFoundError as exc:
        where = "" if file.is_absolute() else f" (a relative path is read from {Path.cwd()})"
        raise _fail(row, column, f": the image file {file} does not exist{where}", MISSING,
                    "no such file") from exc
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise _fail(row, column, f": the image file {file} cannot be read ({why})", UNREADABLE, why,
                    "check the file's permissions, or that it is a file and not a folder") from exc


def _text_bytes(text: str, row: Any, column: str, paths: bool) -> tuple[bytes, str]:
    form = text_form(text, paths=paths)
    if form == PATH:
        return _file_bytes(text, row, column, paths)
    if form == DATA_URI:
        match = _DATA_URI.match(text)
        if match is None or ";base64" not in match.group("params").lower():
            raise _fail(row, column, f": the data URI {_shown(text)!r} is not base64 "
                        "(expected data:image/...;base64,<data>)", UNREADABLE, "a data URI without ;base64")
        payload, what = match.group("data"), "data URI"
    else:
        payload, what = text, "text"
    try:
        data = _decode_base64(payload)
    except ValueError as exc:
        if form == BASE64 and len(text) <= _AMBIGUOUS_UP_TO:
            raise _neither(text, row, column) from exc
        raise _fail(row, column, f": the {what} is not valid base64 ({exc})", UNREADABLE,
                    f"not base64: {exc}") from exc
    if not data:
        raise _fail(row, column, f": the {what} decodes to no bytes", UNREADABLE, "no bytes")
    return data, f"the base64 {what}"


def _neither(text: str, row: Any, column: str) -> CellError:
    return _fail(row, column, f": {_shown(text)!r} is neither an existing file (a relative path is read from "
                 f"{Path.cwd()}) nor the base64 text of an image", UNREADABLE,
                 "neither an existing file nor the base64 text of an image")


def _read(cell: Any, row: Any, column: str, paths: bool) -> tuple[bytes, str]:
    if isinstance(cell, (bytes, bytearray, memoryview)):
        data = bytes(cell)
        return data, f"the {len(data)} bytes"
    if isinstance(cell, Image.Image):
        buffer = io.BytesIO()
        cell.save(buffer, format="PNG")
        return buffer.getvalue(), "the Pillow image"
    if isinstance(cell, os.PathLike):
        return _file_bytes(cell, row, column, paths)
    if isinstance(cell, str):
        text = cell.strip()
        if not text:
            raise _fail(row, column, " is empty text", UNREADABLE, "empty text")
        return _text_bytes(text, row, column, paths)
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        raise _fail(row, column, " is empty", UNREADABLE, "empty")
    raise _fail(row, column, f" holds {type(cell).__name__} ({_shown(repr(cell))}), not an image", UNREADABLE,
                f"a {type(cell).__name__}, not an image")


def cell_bytes(cell: Any, *, row: Any = None, column: str = "image", paths: bool = True) -> bytes:
    """The image file's bytes a cell holds (see the module doc): a path's file, the cell's own
    bytes, its base64 text decoded. A :class:`CellError` naming ``row`` and ``column`` when it
    holds none; with ``paths`` False a path is refused (:data:`REFUSED`) and no file is read."""
    return _read(cell, row, column, paths)[0]


def _pillow(data: bytes, what: str, row: Any, column: str, verify: bool) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if verify:  # the container first (a PNG's chunks and checksums), then the pixels
                with Image.open(io.BytesIO(data)) as checked:
                    checked.verify()
            image = Image.open(io.BytesIO(data))
            image.load()  # decode now: a truncated file fails here, not in the model
    except UnidentifiedImageError as exc:
        raise _fail(row, column, f": {what} is not an image Pillow can read ({type(exc).__name__}: {exc})",
                    UNREADABLE, "no image format Pillow reads") from exc
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error...
        raise _fail(row, column, f": {what} is not an image Pillow can read ({type(exc).__name__}: {exc})",
                    UNREADABLE, str(exc) or type(exc).__name__) from exc
    return image


def read_image(cell: Any, *, row: Any = None, column: str = "image", paths: bool = True
               ) -> tuple[bytes, Image.Image]:
    """The one reading of an image cell, shared by validation, training, prediction and serving:
    its bytes (:func:`cell_bytes`) and the image they hold, verified and decoded. A
    :class:`CellError` naming ``row`` and ``column`` when there is none."""
    data, what = _read(cell, row, column, paths)
    try:
        return data, _pillow(data, what, row, column, verify=True)
    except CellError as exc:
        if isinstance(cell, str) and text_form(cell, paths=paths) == BASE64 and len(cell.strip()) <= _AMBIGUOUS_UP_TO:
            raise _neither(cell.strip(), row, column) from exc
        raise


def open_image(cell: Any, *, row: Any = None, column: str = "image", paths: bool = True) -> Image.Image:
    """The Pillow image a cell holds (see the module doc and :func:`read_image`); a
    :class:`CellError` (a DataError) naming ``row`` (a row's label or position) and ``column``
    when it holds none."""
    if isinstance(cell, Image.Image):
        return cell
    return read_image(cell, row=row, column=column, paths=paths)[1]


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
