"""What validation needs to know about one image cell: can it be read, its size, mode and hash.

A cell of an image column is a file's path, the image's bytes, or base64 text (a ``data:`` URI
too). :func:`inspect` reads it with :func:`modelcycle.steps.images.read_image`, the one reading
training, prediction and serving use too: the bytes once, hashed here (sha256, for the duplicate
rule), opened by Pillow twice: ``verify()`` (the container: a PNG's chunks and checksums) and then
a real ``load()`` (the pixels: a file cut short fails here, as Pillow refuses truncated images by
default). Nothing raises: a cell that cannot be read comes back with its ``problem`` ("missing"
for a path to no file, "unreadable" otherwise) and Pillow's or the OS's words in ``detail``, so
one broken file drops its row and never stops a cycle. Many cells are read by a few threads
(:func:`inspect_all`): the time goes to the disk and to Pillow's decoders, which release the GIL.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from modelcycle.config.models import RuleConfig

MISSING = "missing"
UNREADABLE = "unreadable"

#: below this many cells one thread reads them all (a pool costs more than it saves)
_POOL_FROM = 64
_WORKERS = 4
_EXAMPLES = 3


@dataclass(frozen=True)
class ImageFacts:
    """One cell's image: ``problem`` None and its ``size`` (width, height), ``mode`` and ``sha256``
    when it reads; else ``problem`` (:data:`MISSING` or :data:`UNREADABLE`) and why, in ``detail``."""

    problem: str | None = None
    detail: str = ""
    size: tuple[int, int] | None = None
    mode: str | None = None
    sha256: str | None = None


def short_name(cell: Any) -> str:
    """How a cell is named in a report: a path as its class folder and file name, bytes by size."""
    if isinstance(cell, (bytes, bytearray, memoryview)):
        return f"<{len(cell)} bytes>"
    text = str(cell)
    if os.sep in text or "/" in text:
        parts = text.replace(os.sep, "/").rstrip("/").split("/")
        if not text.startswith("data:") and len(parts) >= 2:
            return "/".join(parts[-2:])
    return text if len(text) <= 40 else text[:37] + "..."


def inspect(cell: Any) -> ImageFacts:
    """The facts of one cell (see the module); never raises for a bad cell. The cell is read by
    :func:`modelcycle.steps.images.read_image`, as training and prediction read it: validation
    keeps exactly the cells a model can read."""
    from modelcycle.steps import images

    try:
        data, image = images.read_image(cell)
    except images.CellError as exc:
        return ImageFacts(MISSING if exc.problem == images.MISSING else UNREADABLE, exc.detail)
    with image:
        size, mode = (int(image.size[0]), int(image.size[1])), str(image.mode)
    return ImageFacts(size=size, mode=mode, sha256=hashlib.sha256(data).hexdigest())


def inspect_all(cells: Sequence[Any]) -> list[ImageFacts]:
    """The facts of every cell, in order; a few threads read them when there are many."""
    if len(cells) < _POOL_FROM:
        return [inspect(c) for c in cells]
    with ThreadPoolExecutor(max_workers=min(_WORKERS, (os.cpu_count() or 1) + 2)) as pool:
        return list(pool.map(inspect, cells, chunksize=32))


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def rule_masks(cells: pd.Series, name: str, rule: RuleConfig | None
               ) -> list[tuple[str, pd.Series, list[str]]]:
    """The image rules of column ``name`` over ``cells`` (the rows still kept, in time order):
    per rule, (label, rows it drops, a few examples). Every image must be readable and unlike an
    earlier one (same bytes: the first is kept); ``rule`` may add size, min_size, max_size, modes."""
    facts = pd.Series(inspect_all(list(cells)), index=cells.index, dtype=object)
    names = cells.map(short_name)
    out: list[tuple[str, pd.Series, list[str]]] = []

    def add(label: str, mask: pd.Series, why: pd.Series) -> None:
        if mask.any():
            pairs = zip(names[mask].iloc[:_EXAMPLES], why[mask].iloc[:_EXAMPLES], strict=True)
            shown = [f"{n} ({w})" for n, w in pairs]
            out.append((label, mask, shown))

    problem = facts.map(lambda f: f.problem)
    detail = facts.map(lambda f: f.detail)
    add(f"{name} file is missing", problem == MISSING, detail.map(lambda d: "no such file"))
    add(f"{name} is unreadable", problem == UNREADABLE, detail)
    readable = problem.isna()
    size = facts.map(lambda f: f.size)
    shown_size = size.map(lambda s: _size(s) if s else "")
    if rule is not None and rule.size is not None:
        want = rule.size
        add(f"{name} size is not {_size(want)}", readable & size.map(lambda s: s != want), shown_size)
    if rule is not None and rule.min_size is not None:
        lo = rule.min_size
        add(f"{name} is smaller than {_size(lo)}",
            readable & size.map(lambda s: bool(s) and (s[0] < lo[0] or s[1] < lo[1])), shown_size)
    if rule is not None and rule.max_size is not None:
        hi = rule.max_size
        add(f"{name} is larger than {_size(hi)}",
            readable & size.map(lambda s: bool(s) and (s[0] > hi[0] or s[1] > hi[1])), shown_size)
    if rule is not None and rule.modes is not None:
        modes = facts.map(lambda f: f.mode)
        add(f"{name} mode not in {rule.modes}", readable & ~modes.isin(rule.modes), modes)
    digest = facts.map(lambda f: f.sha256)
    repeated = readable & digest.duplicated(keep="first") & digest.notna()
    first = names[readable].groupby(digest[readable]).transform("first")
    add(f"{name} is a duplicate", repeated, first.reindex(cells.index).map(lambda n: f"same bytes as {n}"))
    return out
