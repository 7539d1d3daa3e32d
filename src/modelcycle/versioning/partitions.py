"""A cycle's rows stored once per month, and its data sets as manifests of those partitions.

A cycle reads its window and the months of history before it. Instead of storing that whole
frame again in every cycle (and the validated, training and held-out copies of it besides), the
fetched rows go to a folder of **partitions**, one Parquet file per calendar month of the
timestamp (``data/raw/2015-03.parquet``; rows without a usable timestamp in
``unplaced.parquet``). A partition's bytes depend only on its rows: they are put in a canonical
order (timestamp, then a hash of the whole row: DuckDB's when a DuckDB source sorted them so,
pandas' otherwise) and written with fixed Parquet settings and no time in the metadata. DVC,
which stores files by their md5, then keeps one copy of a month across all the cycles that read
it; a cycle adds the new month's file, and a new file for a month whose rows changed (late
rows), while the tags of earlier cycles keep pointing at the old one.

A cycle's clean, training and held-out sets are **manifests** (:class:`Manifest`, small JSON files
git keeps): the partitions they come from (file, md5, rows), what selected their rows (the
validation's dropped rows, the split's boundary) and a digest of the rows, which
:func:`check_digest` compares when the rows are rebuilt (see
:func:`modelcycle.lifecycle.stages.rows`).

No DVC here: plain files, pandas and pyarrow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.atomic import leftovers, write_atomic
from modelcycle.errors import VersioningError
from modelcycle.steps import frames
from modelcycle.steps.repeats import in_ties

#: The manifests' format, written into each (a reader refuses a format it does not know).
FORMAT = "modelcycle.manifest/1"
#: The partition of rows whose timestamp is missing or not a time.
UNPLACED = "unplaced"
#: Parquet settings of a partition (fixed: the bytes must not depend on anything but the rows).
ROW_GROUP_ROWS = 131_072
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3

_known_lock = threading.Lock()
#: md5 and row count of partitions this process wrote, by (path, size, mtime_ns): a manifest
#: written after them lists them without reading them again.
_known: dict[tuple[str, int, int], tuple[str, int]] = {}


@dataclass(frozen=True)
class Partition:
    """One month's rows in a partition folder: the file's name, its md5 (DVC's hash of it) and
    its number of rows."""

    name: str
    md5: str
    rows: int


@dataclass
class Manifest:
    """A data set as partitions and a selection of their rows.

    ``kind`` is clean, train or holdout; ``folder`` the partitions' folder (workspace-relative);
    ``selection`` says how the rows were chosen (``dropped``: the rows validation dropped, as
    ``[start, stop)`` ranges of positions in the partitions read in order; ``cut`` and
    ``window_start`` for the split); ``digest`` is :func:`digest` of the rows in their order."""

    kind: str
    window: str
    folder: str
    partitions: list[Partition]
    rows: int
    digest: str | None = None
    selection: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        body = {"format": FORMAT, **asdict(self)}
        return json.dumps(body, indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            body = json.loads(text)
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r} is not {FORMAT!r}")
            return cls(kind=str(body["kind"]), window=str(body["window"]), folder=str(body["folder"]),
                       partitions=[Partition(str(p["name"]), str(p["md5"]), int(p["rows"]))
                                   for p in body["partitions"]],
                       rows=int(body["rows"]), digest=body.get("digest"), selection=dict(body.get("selection") or {}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VersioningError(f"{where} is not a modelcycle data manifest: {exc}",
                                  f"restore it with `git checkout -- {where}`, or run the cycle again") from exc

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.to_json()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")

    @classmethod
    def read(cls, path: Path, where: str) -> Manifest:
        if not path.is_file():
            raise VersioningError(f"{where} does not exist",
                                  "run the stages that write it first (`dvc repro`), or check out a cycle's "
                                  "tag with `git checkout <tag> && dvc checkout`")
        return cls.from_json(path.read_text(encoding="utf-8"), where)


# -- canonical order and bytes ------------------------------------------------------------------


def stamps(frame: pd.DataFrame, timestamp: str) -> pd.Series:
    """The timestamp column as naive UTC datetimes (NaT where it is not a time); the column
    itself when it already is (no conversion of every row)."""
    column = frame[timestamp]
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "M":
        return column
    return pd.to_datetime(column, errors="coerce", utc=True).dt.tz_localize(None)


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of every row's values (the order's tie-break); zeros if a column cannot be
    hashed (then ties keep the order the source gave)."""
    try:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except (TypeError, ValueError):
        return np.zeros(len(frame), dtype="uint64")


def arrange(frame: pd.DataFrame, timestamp: str, *,
            ordered: bool = False) -> tuple[pd.DataFrame, list[tuple[str, int, int]]]:
    """``frame`` in the partitions' canonical order (by timestamp, rows without one last, ties
    by a hash of the row), index 0..n-1, and its months: ``(label, start, stop)`` row ranges.
    A frame already in that order is returned as it is (no copy). ``ordered``: the source sorted
    the rows by their timestamp and equal timestamps by a hash of its own (DuckDB's); when the
    timestamps are indeed in order, that order is kept (the same rows always come in it) and the
    frame is neither hashed nor copied."""
    when = stamps(frame, timestamp)
    ns = when.to_numpy(dtype="datetime64[ns]").view("int64")
    missing = when.isna().to_numpy()
    key = np.where(missing, np.iinfo("int64").max, ns)
    in_order = ordered and bool((key[1:] >= key[:-1]).all())
    order = None if in_order else _order(frame, key)
    if order is not None:
        frame = frame.take(order)
        key, missing = key[order], missing[order]
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        frame = frame.reset_index(drop=True)
    placed = int((~missing).sum())
    spans: list[tuple[str, int, int]] = []
    if placed:  # the sorted stamps cut at each month's first instant
        first, last = pd.Timestamp(int(key[0])), pd.Timestamp(int(key[placed - 1]))
        starts = pd.date_range(first.to_period("M").to_timestamp(), last, freq="MS")
        cuts = np.searchsorted(key[:placed], starts.as_unit("ns").asi8, side="left").tolist() + [placed]
        for month, start, stop in zip(starts, cuts[:-1], cuts[1:], strict=True):
            if stop > start:
                spans.append((f"{month:%Y-%m}", int(start), int(stop)))
    if placed < len(frame):
        spans.append((UNPLACED, placed, len(frame)))
    return frame, spans


def _order(frame: pd.DataFrame, key: np.ndarray) -> np.ndarray | None:
    """The positions of ``frame``'s rows sorted by ``key`` then by the row's hash; None when
    they already are. Only rows whose key another row shares are hashed (a source ordered by
    time gives a sorted key: then only its ties are sorted)."""
    n = len(key)
    order: np.ndarray | None = None
    if n > 1 and not bool((key[1:] >= key[:-1]).all()):
        order = np.argsort(key, kind="stable")
    ordered = key if order is None else key[order]
    at = np.flatnonzero(in_ties(ordered))
    if not len(at):
        return order
    rows = at if order is None else order[at]
    hashes = _row_hashes(frame.iloc[rows])
    by = np.lexsort((hashes, ordered[at]))  # ties stay in their places, sorted by hash
    if np.array_equal(by, np.arange(len(at))) and order is None:
        return None
    if order is None:
        order = np.arange(n)
    order[at] = rows[by]
    return order


def to_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as Parquet bytes that depend only on its rows, columns and types: no index, fixed
    row groups and compression, statistics on, and no time written (pyarrow writes none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS, compression=COMPRESSION,
                   compression_level=COMPRESSION_LEVEL, use_dictionary=True, write_statistics=True,
                   data_page_version="1.0", write_page_index=False, store_schema=True)
    return sink.getvalue()


# -- the folder ---------------------------------------------------------------------------------


def fingerprint(frame: pd.DataFrame) -> str:
    """What a partition's bytes are made from: its columns, their types, every value in order
    (the bytes of NumPy columns, a hash of each value otherwise) and the writer's settings. Two
    frames with the same fingerprint are written as the same bytes; computing it costs a tenth
    of writing them."""
    import pyarrow as pa

    h = hashlib.sha256()
    h.update(json.dumps([pa.__version__, ROW_GROUP_ROWS, COMPRESSION, COMPRESSION_LEVEL, len(frame),
                         [[str(c), str(t)] for c, t in frame.dtypes.items()]]).encode())
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biufmM":
            values = np.ascontiguousarray(column.to_numpy())
            h.update((values.view(f"u{values.dtype.itemsize}") if values.dtype.kind in "mM" else values).data)
        else:  # objects, text, categories, nullable numbers: a hash of each value and where it is empty
            h.update(pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes())
            h.update(np.packbits(column.isna().to_numpy()).tobytes())
    return h.hexdigest()


class Memo:
    """The fingerprint of each partition a cycle wrote, with the file's md5, size and time, kept
    outside the versioned folder (``.modelcycle/partitions.json``): a month whose rows have the
    same fingerprint as when its file was written, and whose file is still that file, is not
    encoded again. Lost or wrong, it only costs the encoding."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self.entries = {str(k): dict(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
            except (OSError, ValueError, TypeError, AttributeError):
                self.entries = {}

    def same(self, path: Path, mark: str) -> Partition | None:
        """The partition ``path`` holds if it was written from rows with fingerprint ``mark``."""
        entry = self.entries.get(str(path))
        if not entry or entry.get("fingerprint") != mark or not path.is_file():
            return None
        st = path.stat()
        if [entry.get("size"), entry.get("mtime_ns"), entry.get("inode")] != [st.st_size, st.st_mtime_ns, st.st_ino]:
            return None
        return Partition(path.name, str(entry["md5"]), int(entry["rows"]))

    def note(self, path: Path, mark: str, part: Partition) -> None:
        st = path.stat()
        self.entries[str(path)] = {"fingerprint": mark, "md5": part.md5, "rows": part.rows,
                                   "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}

    def save(self, folder: Path) -> None:
        if self.path is None:
            return
        inside = str(folder) + os.sep
        kept = {k: v for k, v in self.entries.items() if not k.startswith(inside) or Path(k).is_file()}
        write_atomic(self.path, json.dumps(kept, indent=1, sort_keys=True))


def write(folder: Path, frame: pd.DataFrame, spans: Sequence[tuple[str, int, int]],
          memo: Path | None = None) -> list[Partition]:
    """Write ``frame`` (in the order :func:`arrange` gives, with its ``spans``) to ``folder``, one
    ``<label>.parquet`` per span; a file whose bytes are already there is not rewritten (DVC then
    need not hash it again), and any other ``.parquet`` in the folder is removed: the folder holds
    exactly this frame's partitions. With ``memo`` (a file outside ``folder``), a month whose rows
    are those its file was written from is not even encoded again (see :class:`Memo`)."""
    folder.mkdir(parents=True, exist_ok=True)
    memory = Memo(memo)
    found: list[Partition] = []
    for label, start, stop in spans:
        rows = frame.iloc[start:stop]
        path = folder / f"{label}.parquet"
        mark = fingerprint(rows) if memo is not None else ""
        known = memory.same(path, mark) if memo is not None else None
        if known is not None and known.rows == stop - start:
            _remember(path, known.md5, known.rows)
            found.append(known)
            continue
        data = to_bytes(rows)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        same = path.is_file() and path.stat().st_size == len(data) and _md5_of(path) == md5
        if not same:
            write_atomic(path, data)
        _remember(path, md5, stop - start)
        found.append(Partition(path.name, md5, stop - start))
        if memo is not None:
            memory.note(path, mark, found[-1])
    names = {p.name for p in found}
    # and what a killed write left (named as modelcycle names its temporary files now, and did before)
    for other in [*folder.glob("*.parquet"), *leftovers(folder, "*.parquet"), *folder.glob(".*.parquet.tmp")]:
        if other.name not in names:
            other.unlink()
    memory.save(folder)
    return found


def _remember(path: Path, md5: str, rows: int) -> None:
    st = path.stat()
    with _known_lock:
        _known[(str(path), st.st_size, st.st_mtime_ns)] = (md5, rows)


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listing(folder: Path) -> list[Partition]:
    """The partitions in ``folder``, by name (months in order, ``unplaced`` last)."""
    import pyarrow.parquet as pq

    found = []
    for path in sorted(folder.glob("*.parquet"), key=lambda p: (p.stem == UNPLACED, p.name)):
        st = path.stat()
        with _known_lock:
            known = _known.get((str(path), st.st_size, st.st_mtime_ns))
        if known is None:
            known = (_md5_of(path), int(pq.read_metadata(path).num_rows))
            _remember(path, *known)
        found.append(Partition(path.name, *known))
    return found


def read(folder: Path, partitions: Sequence[Partition] | None = None, *, where: str = "") -> pd.DataFrame:
    """The rows of ``partitions`` (all of ``folder``'s when None), concatenated in order, each file
    checked against its md5 and row count first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = where or str(folder)
    chosen = listing(folder) if partitions is None else list(partitions)
    tables = []
    for part in chosen:
        path = folder / part.name
        if not path.is_file():
            raise VersioningError(
                f"{where}: partition {part.name} is missing",
                "bring the cycle's data back with `dvc checkout` (or `dvc pull` if the cache lacks it)")
        data = path.read_bytes()
        if hashlib.md5(data, usedforsecurity=False).hexdigest() != part.md5:
            raise VersioningError(
                f"{where}: partition {part.name} is not the one the manifest names (md5 {part.md5[:12]}...)",
                "check out the data of the manifest's cycle with `dvc checkout`")
        table = pq.read_table(io.BytesIO(data))
        if table.num_rows != part.rows:
            raise VersioningError(f"{where}: partition {part.name} has {table.num_rows} rows, the manifest says "
                                  f"{part.rows}", "check out the data of the manifest's cycle with `dvc checkout`")
        tables.append(table)
    if not tables:
        raise VersioningError(f"{where} has no partitions", "run the fetch stage first (`dvc repro`)")
    if len(tables) == 1:
        return tables[0].to_pandas()
    try:
        joined = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # months whose types differ: let pandas unify them
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return joined.to_pandas()


# -- selections and digests ---------------------------------------------------------------------


def ranges(mask: np.ndarray) -> list[list[int]]:
    """The ``[start, stop)`` ranges of the true positions of a boolean ``mask``."""
    starts, stops = frames.runs(mask)
    return [[int(a), int(b)] for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]


def positions(spans: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """A boolean mask of length ``n``, true in the ``[start, stop)`` ``spans``."""
    mask = np.zeros(n, dtype=bool)
    for start, stop in spans:
        mask[int(start):int(stop)] = True
    return mask


def digest(frame: pd.DataFrame) -> str:
    """A sha256 of ``frame``'s columns and values, row by row in order (the index ignored)."""
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in frame.columns]).encode())
    for name in frame.columns:
        col = frame[name]
        try:
            values = pd.util.hash_pandas_object(col, index=False).to_numpy()
        except TypeError:  # unhashable cells (lists, dicts): their text
            values = pd.util.hash_pandas_object(col.astype(str), index=False).to_numpy()
        h.update(values.tobytes())
    return h.hexdigest()


def check_digest(frame: pd.DataFrame, manifest: Manifest, where: str) -> None:
    """Raise if ``frame`` is not the rows ``manifest`` recorded (count and digest)."""
    if len(frame) != manifest.rows or (manifest.digest and digest(frame) != manifest.digest):
        raise VersioningError(
            f"the rows rebuilt from {where} ({len(frame)}) are not the {manifest.rows} rows its cycle recorded",
            "the data contract or modelcycle's validation changed since; check out the cycle's tag whole "
            "(`git checkout <tag> && dvc checkout`) and rebuild with that modelcycle version")
