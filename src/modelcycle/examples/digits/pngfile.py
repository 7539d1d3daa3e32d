"""A minimal PNG encoder for 8-bit greyscale images: the digits example's files.

Written here rather than with Pillow so that a file's bytes depend on its pixels and zlib alone
(no encoder version, no metadata chunk): the same seed writes byte-identical files, which a DVC
hash of ``data/images`` then shows.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode(pixels: np.ndarray) -> bytes:
    """The PNG file of ``pixels``, a 2-D array of 0..255 (height x width), greyscale, 8 bits."""
    array = np.asarray(pixels)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"a greyscale image is a non-empty 2-D array, got shape {array.shape}")
    if array.min() < 0 or array.max() > 255:
        raise ValueError("greyscale pixels are 0..255")
    rows = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = rows.shape
    raw = b"".join(b"\x00" + rows[r].tobytes() for r in range(height))  # filter type 0 on each row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bits, greyscale, no interlace
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
