"""The digits example's files: the release plan written as PNG files in class folders and an index.

``data/images/<digit>/<id>.png`` holds one 8x8 8-bit greyscale image (scikit-learn's 0..16 scaled
to 0..255) and ``data/images.csv`` lists the released files, ``path,label,added_at`` (``path``
relative to ``data/images``, ``added_at`` in UTC to the second), oldest first. The images stay
8x8: that is all the information the dataset has, and a CNN reads 64 pixels faster than an
upscaled copy of them.

:func:`write` releases the history and the batches up to a month; :func:`release_next` the batch
after the newest one the index lists, as fresh labelled images arrive.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from modelcycle.errors import SourceError
from modelcycle.examples.digits import pngfile, release

INDEX_COLUMNS = ("path", "label", "added_at")


def relative_path(row: Any) -> str:
    """Where a plan row's file lives under the images folder: ``<label>/<id>.png``."""
    return f"{int(row.label)}/{int(row.id):04d}.png"


def content(row: Any) -> bytes:
    """The bytes of a plan row's file: its PNG, cut to half for ``truncated``, nothing for ``empty``."""
    data = pngfile.encode(release.pixels(row))
    defect = row.defect
    if defect == "truncated":
        return data[:len(data) // 2]
    if defect == "empty":
        return b""
    return data


def _months(through: str) -> list[str]:
    if through not in release.MONTHS:
        raise SourceError(f"the digits example has no month {through}",
                          f"its months are {release.MONTHS[0]}..{release.MONTHS[-1]}")
    return [m for m in release.MONTHS if m <= through]


def write_months(images: Path, index: Path, months: Iterable[str], *, seed: int = release.SEED) -> int:
    """Write the files of ``months`` under ``images`` and add their rows to the ``index`` CSV
    (created with its header when missing); return the number of files written."""
    wanted = set(months)
    files = release.plan(seed)
    files = files[files["month"].isin(wanted)]
    images.mkdir(parents=True, exist_ok=True)
    for digit in sorted(files["label"].unique()):
        (images / str(int(digit))).mkdir(exist_ok=True)
    rows = []
    planned: Iterable[Any] = files.itertuples(index=False)
    for row in planned:
        path = relative_path(row)
        (images / path).write_bytes(content(row))
        rows.append((path, int(row.label), pd.Timestamp(row.added_at).strftime("%Y-%m-%dT%H:%M:%S")))
    index.parent.mkdir(parents=True, exist_ok=True)
    new = not index.exists() or index.stat().st_size == 0
    with index.open("a", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        if new:
            writer.writerow(INDEX_COLUMNS)
        writer.writerows(rows)
    return len(rows)


def write(images: Path, index: Path, *, seed: int = release.SEED, through: str = release.MONTHS[-1]) -> int:
    """Write the history and every batch up to ``through`` (a month, included) afresh: the index
    is replaced; return the number of files written."""
    if index.exists():
        index.unlink()
    return write_months(images, index, _months(through), seed=seed)


def newest_month(index: Path) -> str | None:
    """The month of the newest ``added_at`` in the index, or None for an empty index."""
    if not index.is_file():
        raise SourceError(f"there is no index of the digits' images at {index}",
                          "create the example first: modelcycle init DIR --example digits")
    try:
        stamps = pd.read_csv(index, usecols=["added_at"])["added_at"]
    except (ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"{index} is not an index of images (path,label,added_at): {exc}",
                          "recreate the example: modelcycle init DIR --example digits") from exc
    if stamps.empty:
        return None
    return str(pd.to_datetime(stamps).max().strftime("%Y-%m"))


def release_next(images: Path, index: Path, *, seed: int = release.SEED) -> tuple[str, int]:
    """Release the batch after the newest month the index lists (its files and index rows), the
    whole history when the index lists nothing; return the (last) month released and its file
    count. SourceError once every batch is out."""
    newest = newest_month(index)
    later = [m for m in release.MONTHS if newest is None or m > newest]
    if not later:
        raise SourceError(f"every batch of the digits example is already released (the last is {newest})",
                          "the example's 1,797 images end there; recreate it with "
                          "`modelcycle init DIR --example digits` to replay the batches")
    # the history comes out at once: its months are one release
    months = [m for m in later if m in release.HISTORY_MONTHS] or later[:1]
    return months[-1], write_months(images, index, months, seed=seed)
