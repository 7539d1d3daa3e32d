"""The source interface: rows of a table filtered by a time window."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

log = logging.getLogger(__name__)

#: A fetched frame's ``attrs`` key: true when the source gave its rows in an order that depends
#: only on the rows (by the timestamp, then by a hash of the whole row, as DuckDB sorts them), so
#: the same rows fetched twice come in the same order and need no sorting here.
ORDERED = "modelcycle_ordered"


class Source(Protocol):
    """A table with a timestamp column, read one time range at a time."""

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, sorted by the timestamp."""
        ...

    def describe(self) -> str:
        """Where the rows come from, in words (for messages)."""
        ...

    def check(self) -> None:
        """Raise SourceError if the source does not open or lacks the table/column."""
        ...


@runtime_checkable
class KnowsLatest(Protocol):
    """What a source may add to :class:`Source`: the time of its newest row, cheaply (one
    ``max(timestamp)`` query, a file listing). The data watcher asks it every few seconds to
    see whether a new window is complete; a source without it is asked for the window's rows."""

    def latest(self) -> datetime | None:
        """The newest timestamp in the source (naive UTC wall time), None when it has no rows."""
        ...


def latest_of(source: Source, since: datetime) -> datetime | None:
    """The newest timestamp in ``source``: its own :meth:`KnowsLatest.latest`, or the newest of
    the rows from ``since`` on (a fetch) when it has none."""
    if isinstance(source, KnowsLatest):
        return source.latest()
    rows = source.fetch(since, datetime(9999, 1, 1))
    ts = getattr(source, "timestamp", None)
    if rows.empty or ts is None or ts not in rows.columns:
        return None
    newest = pd.to_datetime(rows[ts], errors="coerce").max()
    return None if pd.isna(newest) else newest.to_pydatetime().replace(tzinfo=None)


@runtime_checkable
class TracksFiles(Protocol):
    """What a source may add to :class:`Source`: the files it reads, for DVC to version as they are.

    A source that reads files or folders inside the workspace (an image folder, say) returns
    them here; each cycle's snapshot then records their content hash in ``dvc.lock`` and their
    bytes in the DVC cache, beside the window's tables, and restoring a snapshot brings them back.
    The built-in sources do not: the rows they read are versioned as the ``fetch`` stage's
    table already. Paths outside the workspace are not versioned (DVC tracks only what lies
    inside its repository): :func:`tracked_paths` leaves them out and says so in the log.
    """

    def tracked_paths(self) -> list[Path]:
        """Files or folders the source reads (absolute, or relative to the workspace)."""
        ...


def tracked_paths(source: object, root: Path) -> list[str]:
    """The workspace-relative POSIX paths of the files ``source`` asks to have versioned (none
    when it does not say), each once, in the order given; those outside ``root`` are left out."""
    if not isinstance(source, TracksFiles):
        return []
    base = root.resolve()
    out: list[str] = []
    for path in source.tracked_paths():
        full = (path if path.is_absolute() else base / path).resolve()
        try:
            rel = full.relative_to(base).as_posix()
        except ValueError:
            log.warning("%s is outside the workspace %s: DVC does not version it", full, base)
            continue
        if rel in ("", ".") or rel in out:
            continue
        out.append(rel)
    return out
