"""The image-folder source (``source.kind: images``): a folder with one sub-folder per class.

The layout image workflows use::

    data/images/            source.url
      cat/0001.png          a file of class "cat"
      dog/0002.JPG          suffixes .png .jpg .jpeg .bmp .gif .webp, in any case
    data/images.csv         source.index (optional): path,label,added_at

Each file is a row: the image column (the ``data.columns`` entry of type image; ``image`` when
there is none) holds its ABSOLUTE path as text, so that any loader, and the champion's model,
opens it wherever the cycle runs; the target column its label; the timestamp column its
``added_at`` (naive UTC), which places it in a window like any table's row. ``fetch`` lists
folders and reads the index: it opens no image (validation does, see
:mod:`modelcycle.steps.imagecheck`), so a listing of 100,000 files stays quick.

**When was a file added?** A window is the files added in its time range, so ``added_at`` is what
matters, and it is only reliable in an index. The index (``source.index``) is a CSV file with the
columns ``path`` (relative to the images folder, or absolute inside the workspace), ``label`` and
``added_at`` (a timestamp, UTC unless it names its zone); further columns come along as they
are. It is the truth of each file's window and label: a file it does not list is ignored (the log
counts them), and a row whose file is missing still comes back, so that validation drops it and
counts it (``<image> file is missing``): a batch whose files went missing then escalates as any
broken batch does. New labelled batches arrive as new files plus their rows appended to the index.

Without an index, a file's label is its class folder and its ``added_at`` the file's modification
time. That serves a folder that only ever grows in place; but a git checkout, ``dvc checkout``,
a copy or an unzip gives every file the time it was written, so all of them fall in one window.
Give an index whenever windows matter (the digits example does).

Files directly in the images folder, hidden files and folders (``.name``), sub-sub-folders and
files with other suffixes belong to no class: they are ignored, and the log says how many.

The images folder and the index are the source's files (:class:`~modelcycle.sources.base.TracksFiles`):
each cycle's snapshot versions them with DVC (the folder as a directory), so restoring a snapshot
brings back the images the model was trained on. An index inside the images folder is versioned
with the folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from modelcycle.errors import SourceError
from modelcycle.steps.validate import UNPLACED

log = logging.getLogger(__name__)

#: The suffixes of image files (compared in lower case).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
#: The columns an index must have.
INDEX_COLUMNS = ("path", "label", "added_at")


@dataclass
class Listing:
    """The image files of a folder: absolute paths, their class folder and modification time
    (seconds since the epoch), and how many entries were ignored."""

    paths: list[str]
    labels: list[str]
    mtimes: list[float]
    ignored: int = 0


def _visible(entry: os.DirEntry[str]) -> bool:
    return not entry.name.startswith(".")


def _is_image(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    return "." + name.rpartition(".")[2].lower() in IMAGE_SUFFIXES and "." in name and entry.is_file()


class ImageFolderSource:
    """The image files under ``folder`` (one sub-folder per class), or those ``index`` lists."""

    def __init__(self, folder: Path, *, timestamp: str, target: str, image: str = "image",
                 index: Path | None = None) -> None:
        self.folder = Path(os.path.abspath(folder))
        self.index = Path(os.path.abspath(index)) if index is not None else None
        self.timestamp = timestamp
        self.target = target
        self.image = image

    def describe(self) -> str:
        where = f"image folder {self.folder}"
        return where + (f" (index {self.index})" if self.index is not None else "")

    # reading ------------------------------------------------------------------------------------

    def listing(self, *, times: bool = True) -> Listing:
        """Every image file in a class folder (``times``: with its modification time, one stat
        each; without, names only). Entries of no class are counted in ``ignored``."""
        if not self.folder.is_dir():
            what = "is not a folder" if self.folder.exists() else "does not exist"
            raise SourceError(f"the image folder {self.folder} {what}",
                              "set source.url in modelcycle.yaml to a folder holding one sub-folder per "
                              "class (data/images/<class>/<file>.png)")
        out = Listing([], [], [])
        with os.scandir(self.folder) as top:
            visible = [e for e in top if _visible(e)]
        classes = sorted((e for e in visible if e.is_dir()), key=lambda e: e.name)
        out.ignored = len(visible) - len(classes)
        for cls in classes:
            with os.scandir(cls.path) as entries:
                for e in entries:
                    if not _visible(e):
                        continue
                    if not _is_image(e):
                        out.ignored += 1
                        continue
                    out.paths.append(e.path)
                    out.labels.append(cls.name)
                    if times:
                        out.mtimes.append(e.stat().st_mtime)
        return out

    def _read_index(self) -> pd.DataFrame:
        assert self.index is not None
        if not self.index.is_file():
            raise SourceError(f"the image index {self.index} does not exist",
                              "set source.index in modelcycle.yaml to a CSV file with the columns "
                              "path,label,added_at, or remove it to use the files' class folders and times")
        try:
            frame = pd.read_csv(self.index, dtype=str, keep_default_na=False)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read the image index {self.index}: {exc}",
                              "it must be a CSV file with the header path,label,added_at") from exc
        missing = [c for c in INDEX_COLUMNS if c not in frame.columns]
        if missing:
            raise SourceError(f"the image index {self.index} lacks the column(s) {', '.join(missing)} "
                              f"(it has: {', '.join(map(str, frame.columns)) or 'no header'})",
                              "its header must be path,label,added_at (more columns may follow)")
        return frame

    def _indexed(self) -> tuple[pd.DataFrame, pd.Series]:
        """The index's rows (paths absolute, added_at as naive UTC, NaT where it is no time), and
        the added_at text of the rows whose added_at is not a time."""
        frame = self._read_index()
        given = frame["path"].str.strip()
        paths = given.where(given.str.startswith(os.sep), str(self.folder) + os.sep + given)
        odd = paths.str.contains(r"//|/\.\.?(?:/|$)", regex=True)  # a/./b, a/../b, a//b: spelled out
        paths[odd] = paths[odd].map(os.path.normpath)
        stamps = pd.to_datetime(frame["added_at"], errors="coerce", utc=True, format="ISO8601")  # fast
        other = stamps.isna() & frame["added_at"].str.strip().ne("")
        if other.any():  # other ways of writing a time, one by one
            stamps[other] = pd.to_datetime(frame["added_at"][other], errors="coerce", utc=True, format="mixed")
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
        out = frame.drop(columns=list(INDEX_COLUMNS)).assign(
            **{self.image: paths, self.target: frame["label"], self.timestamp: stamps})
        return out, frame["added_at"][stamps.isna() & frame["added_at"].str.strip().ne("")]

    def _log_index_coverage(self, frame: pd.DataFrame) -> None:
        """Say in the log which indexed files are missing and how many files the index leaves out."""
        listed = self.listing(times=False)
        on_disk = set(listed.paths)
        absent = frame[self.image].map(lambda p: p not in on_disk and not os.path.isfile(p))
        if absent.any():
            log.warning("%s: %d indexed file(s) are missing, e.g. %s; validation drops their rows",
                        self.describe(), int(absent.sum()), ", ".join(frame.loc[absent, self.image].head(3)))
        unlisted = len(on_disk - set(frame[self.image]))
        if unlisted or listed.ignored:
            log.info("%s: %d image file(s) are not in the index and %d entries are not image files in a "
                     "class folder; ignored", self.describe(), unlisted, listed.ignored)

    # the Source interface -----------------------------------------------------------------------

    def check(self) -> None:
        listed = self.listing(times=False)  # the folder must be there, with or without an index
        if self.index is not None:
            if not len(self._read_index()):
                raise SourceError(f"the image index {self.index} has no rows",
                                  "add a row path,label,added_at per image file")
            return
        if not listed.paths:
            raise SourceError(
                f"the image folder {self.folder} has no image files in class folders"
                + (f" ({listed.ignored} other entries)" if listed.ignored else ""),
                "put each image in a sub-folder named after its class: "
                f"{self.folder}/<class>/<file>.png (or .jpg, .jpeg, .bmp, .gif, .webp)")

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        unplaced = pd.Series(dtype=object)
        if self.index is not None:
            frame, unplaced = self._indexed()
            self._log_index_coverage(frame)
        else:
            listed = self.listing()
            if not listed.paths:
                self.check()  # says what is wrong
            if listed.ignored:
                log.info("%s: %d entries are not image files in a class folder; ignored", self.describe(),
                         listed.ignored)
            frame = pd.DataFrame({
                self.image: pd.Series(listed.paths, dtype=object),
                self.target: pd.Series(listed.labels, dtype=object),
                self.timestamp: pd.to_datetime(pd.Series(listed.mtimes, dtype="float64"), unit="s")})
        ts = frame[self.timestamp]
        rows = frame[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
        rows = rows.sort_values([self.timestamp, self.image], kind="stable").reset_index(drop=True)
        if len(unplaced):  # index rows whose added_at is no time belong to no window: counted
            rows.attrs[UNPLACED] = {self.timestamp: (len(unplaced), [str(v) for v in unplaced.unique()[:3]])}
        return rows

    def latest(self) -> datetime | None:
        """The newest added_at: the index's, or the newest modification time of a listing."""
        if self.index is None:
            mtimes = self.listing().mtimes
            return datetime.fromtimestamp(max(mtimes), UTC).replace(tzinfo=None) if mtimes else None
        newest = self._indexed()[0][self.timestamp].max()
        return None if pd.isna(newest) else pd.Timestamp(newest).ceil("us").to_pydatetime()

    def tracked_paths(self) -> list[Path]:
        """The images folder, and the index unless it lies inside the folder (versioned with it)."""
        paths = [self.folder]
        if self.index is not None and not self.index.is_relative_to(self.folder):
            paths.append(self.index)
        return paths


def image_column(columns: Mapping[str, str]) -> str:
    """The first column of type image in ``data.columns``; ``image`` when there is none."""
    return next((name for name, kind in columns.items() if kind == "image"), "image")
