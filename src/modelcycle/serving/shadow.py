"""Shadow scoring: the challenger predicts every served request off the request path, and both
models' predictions go to a prediction log.

The server answers a request with the champion, then hands the request to :meth:`ShadowLog.submit`,
which only puts it on a bounded queue: it never blocks and never raises. When the queue is full
(the challenger is slower than the traffic) the request's shadow work is dropped and counted; the
response is never delayed. One daemon thread takes requests off the queue, asks for the current
challenger (``challenger()``, None when there is none), scores it on the request's rows and buffers
one log row per request row. The buffer is written as a Parquet file when it holds ``flush_rows``
rows, every ``flush_seconds``, and on :meth:`ShadowLog.close`.

The log, read by ``modelcycle shadow-report`` (:mod:`modelcycle.serving.report`)::

    <workspace>/.modelcycle/predictions/date=YYYY-MM-DD/part-<time>-<uuid>.parquet

one folder per UTC day of the requests, with the columns :data:`LOG_COLUMNS` and, between ``row``
and ``champion_version``, the configured key columns (``serve.key_columns``) copied from the
request (null where a request lacks one), then one column per model input the request held,
named :data:`INPUT_PREFIX` + its name (``input.pickup_longitude``: the declared ``data.columns``
except the target, as the server read them), which the data watcher compares with the champion's
training rows (:mod:`modelcycle.lifecycle.served`). The prefix keeps an input from clashing with
the log's own columns or a key column. A file is written under a temporary name and renamed, so
a reader never sees half of one.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from modelcycle.registry.base import ModelVersion

log = logging.getLogger(__name__)

#: Where a workspace's prediction log lives, relative to its root.
PREDICTIONS_DIR = Path(".modelcycle") / "predictions"

#: The log's own columns (the key columns come after ``row``).
LOG_COLUMNS = ("request_id", "time", "row", "champion_version", "champion_prediction",
               "challenger_version", "challenger_prediction")

#: The prefix of a logged input column's name (``input.<column>``).
INPUT_PREFIX = "input."

_WARN_EVERY = 60.0  # seconds between two warnings of one kind


class Scorer(Protocol):
    """What the log needs of a loaded model (the server's ``Served``)."""

    version: ModelVersion

    def predict(self, frame: pd.DataFrame) -> np.ndarray: ...


def predictions_dir(root: Path) -> Path:
    """The prediction log of the workspace at ``root``."""
    return Path(root) / PREDICTIONS_DIR


@dataclass(frozen=True)
class _Request:
    request_id: str
    time: datetime
    frame: pd.DataFrame
    predictions: np.ndarray
    champion_version: str


class _RateLimited:
    """A warning logged at most once a minute per kind, with how many were left out meanwhile."""

    def __init__(self, every: float = _WARN_EVERY) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.every:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return
        more = self._left_out.pop(kind, 0)
        self._last[kind] = now
        log.warning(message + (f" (and {more} more like it since the last warning)" if more else ""), *args)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _one_per_row(values: Any, rows: int) -> np.ndarray:
    out = np.asarray(values)
    if out.ndim > 1:
        out = out.reshape(len(out), -1)[:, 0]
    if len(out) != rows:
        raise ValueError(f"{len(out)} predictions for {rows} rows")
    return out


class ShadowLog:
    """The prediction log of a server that scores the challenger in the shadow of the champion.

    ``input_columns`` are the model inputs logged (as ``input.<column>``) when a request holds them.

    ``challenger`` returns the challenger to score now (None when there is none: the challenger
    columns are then null). ``clock`` gives the time a request is stamped with (UTC; a test passes
    a fake one). The counters (:meth:`counters`) are for the server's ``/health``."""

    def __init__(self, root: Path, *, challenger: Callable[[], Scorer | None], key_columns: list[str],
                 input_columns: list[str] | tuple[str, ...] = (), queue_size: int = 1000,
                 flush_rows: int = 10_000, flush_seconds: float = 5.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.root = Path(root)
        self.key_columns = list(key_columns)
        self.input_columns = list(input_columns)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._challenger = challenger
        self._clock = clock or (lambda: datetime.now(UTC))
        self._queue: queue.Queue[_Request] = queue.Queue(maxsize=queue_size)
        self._buffer: dict[str, list[pd.DataFrame]] = {}   # UTC day -> frames of log rows
        self._buffered = 0
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._deadline = float("inf")   # when close() gives up scoring what is queued
        self._thread: threading.Thread | None = None
        self._warnings = _RateLimited()
        self.submitted = 0
        self.dropped = 0
        self.written_rows = 0
        self.written_files = 0
        self.errors = 0

    # the request path -------------------------------------------------------------------------

    def submit(self, request_id: str, frame: pd.DataFrame, predictions: np.ndarray,
               champion_version: str) -> bool:
        """Queue a request the champion has answered. Never blocks, never raises: False when the
        request's shadow work was dropped (the queue is full, or the log is closed). The caller
        must not change ``frame`` afterwards."""
        try:
            if self._closed:
                self._count("dropped")
                return False
            self._queue.put_nowait(_Request(request_id, _utc(self._clock()), frame, predictions,
                                            str(champion_version)))
        except queue.Full:
            self._count("dropped")
            return False
        except Exception:  # noqa: BLE001 - the request path must not fail because of the log
            self._count("errors")
            return False
        self._count("submitted")
        return True

    def counters(self) -> dict[str, int]:
        """submitted, dropped, written_rows, written_files, errors, and what is waiting (queued
        requests, buffered rows)."""
        with self._count_lock:
            return {"submitted": self.submitted, "dropped": self.dropped, "written_rows": self.written_rows,
                    "written_files": self.written_files, "errors": self.errors,
                    "queued": self._queue.qsize(), "buffered_rows": self._buffered}

    def _count(self, name: str, n: int = 1) -> None:
        with self._count_lock:
            setattr(self, name, getattr(self, name) + n)

    # the worker ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="modelcycle-shadow", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking requests, score what is queued (for up to about ``timeout`` seconds; what is
        left then is dropped and counted) and write every buffered row."""
        if self._closed:
            return
        self._closed = True
        deadline = self._deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is None:
            self._drain(deadline)
            self._flush()
            return
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        if self._thread.is_alive():
            log.warning("the shadow log's worker did not finish within %.1fs; rows still buffered are lost",
                        timeout)

    def __enter__(self) -> ShadowLog:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.is_set():
            wait = max(0.01, min(0.2, last_flush + self.flush_seconds - time.monotonic()))
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._take(item)
                if self._buffered >= self.flush_rows or (
                        self._buffered and time.monotonic() - last_flush >= self.flush_seconds):
                    self._flush()
                    last_flush = time.monotonic()
                elif not self._buffered:
                    last_flush = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - the worker lives on whatever one request does
                self._count("errors")
                self._warnings.warn("request", "the shadow log could not log a request (it goes on with the "
                                    "next): %s: %s", type(exc).__name__, exc)
        self._drain(self._deadline)
        self._flush()

    def _drain(self, deadline: float) -> None:
        """Score what is queued until ``deadline``; count the rest as dropped."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if time.monotonic() > deadline:
                self._count("dropped")
                continue
            try:
                self._take(item)
            except Exception as exc:  # noqa: BLE001 - closing writes what it can
                self._count("errors")
                self._warnings.warn("request", "the shadow log could not log a request: %s: %s",
                                    type(exc).__name__, exc)

    def _take(self, item: _Request) -> None:
        """Score the challenger on one request and buffer its log rows."""
        rows = len(item.frame)
        if rows == 0:
            return
        champion = _one_per_row(item.predictions, rows)
        version, predicted = self._score(item, rows)
        columns: dict[str, Any] = {"request_id": item.request_id, "time": pd.Timestamp(item.time),
                                   "row": np.arange(rows, dtype="int64")}
        for key in self.key_columns:
            columns[key] = (item.frame[key].reset_index(drop=True) if key in item.frame.columns
                            else np.full(rows, None, dtype=object))
        columns["champion_version"] = item.champion_version
        columns["champion_prediction"] = champion
        columns["challenger_version"] = version
        columns["challenger_prediction"] = (predicted if predicted is not None
                                            else np.full(rows, None, dtype=object))
        for name in self.input_columns:
            if name in item.frame.columns:
                columns[INPUT_PREFIX + name] = item.frame[name].reset_index(drop=True)
        day = item.time.strftime("%Y-%m-%d")
        self._buffer.setdefault(day, []).append(pd.DataFrame(columns))
        with self._count_lock:
            self._buffered += rows

    def _score(self, item: _Request, rows: int) -> tuple[str | None, np.ndarray | None]:
        """The challenger's version and predictions on the request (None, None without one; the
        version and None when it failed to predict)."""
        try:
            model = self._challenger()
        except Exception as exc:  # noqa: BLE001 - no challenger this time
            self._count("errors")
            self._warnings.warn("lookup", "the shadow log could not get the challenger: %s: %s",
                                type(exc).__name__, exc)
            return None, None
        if model is None:
            return None, None
        version = str(model.version.version)
        try:
            return version, _one_per_row(model.predict(item.frame), rows)
        except Exception as exc:  # noqa: BLE001 - a failing challenger never stops the log
            self._count("errors")
            self._warnings.warn("predict", "challenger v%s failed to predict request %s (its predictions "
                                "are logged as null): %s: %s", version, item.request_id, type(exc).__name__, exc)
            return version, None

    # writing ------------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write each day's buffered rows as one Parquet file in that day's folder."""
        buffer, self._buffer = self._buffer, {}
        with self._count_lock:
            self._buffered = 0
        for day, frames in sorted(buffer.items()):
            rows = sum(len(f) for f in frames)
            try:
                self._write(day, frames)
            except Exception as exc:  # noqa: BLE001 - a full disk loses rows, not the server
                self._count("errors")
                self._warnings.warn("write", "the shadow log could not write %d rows of %s under %s: %s: %s",
                                    rows, day, self.root, type(exc).__name__, exc)
                continue
            with self._count_lock:
                self.written_rows += rows
                self.written_files += 1

    def _write(self, day: str, frames: list[pd.DataFrame]) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(harmonise(frames), preserve_index=False)
        folder = self.root / f"date={day}"
        # requests may hold personal data: the log's folders are their owner's alone
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        stamp = _utc(self._clock()).strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"part-{stamp}-{uuid.uuid4().hex}.parquet"
        temporary = folder / f".{path.name}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, path)
        return path


def read_files(files: list[Path]) -> tuple[list[pd.DataFrame], list[str]]:
    """The rows of each of the log's ``files`` that holds any, and a note for each file that
    could not be read (one damaged file does not hide the others)."""
    frames, notes = [], []
    for file in files:
        try:
            frames.append(pd.read_parquet(file))
        except Exception as exc:  # noqa: BLE001 - a damaged file is reported, the rest is read
            notes.append(f"{file} could not be read and is left out ({type(exc).__name__}: {exc})")
    return [f for f in frames if len(f)], notes


def harmonise(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame of ``frames``' rows, each column with one Arrow type: a column whose values are
    of different types in different frames (a key sent as a number by one client and as text by
    another) becomes text (nulls stay null); columns some frames lack are null there."""
    import pyarrow as pa

    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        try:
            pa.array(column, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            frame[name] = column.map(lambda v: None if _missing(v) else str(v)).astype(object)
    return frame


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
