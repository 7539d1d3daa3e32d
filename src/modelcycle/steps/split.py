"""Chronological split: history + the window's early rows train, the window's latest rows are held out.

Every held-out row is later than every training row, so neither model sees the future, and
both the champion and the challenger are scored on exactly these rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from modelcycle.errors import DataError

MIN_HOLDOUT_ROWS = 30


@dataclass
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    history_rows: int
    fresh_train_rows: int
    cut: pd.Timestamp  # first timestamp of the holdout

    def describe(self) -> str:
        return (f"train {len(self.train)} rows ({self.history_rows} history + "
                f"{self.fresh_train_rows} fresh), holdout {len(self.holdout)} rows from {self.cut}")


def chronological(frame: pd.DataFrame, *, timestamp: str, window_start: datetime,
                  window_end: datetime, holdout_fraction: float, window_label: str = "") -> Split:
    """Split ``frame`` (history + window rows) at a time cut inside the window.

    Rows sorted by the timestamp (as validation returns them) are split by position: the
    training rows are a slice of ``frame`` (no copy of the history) and only the held-out rows
    are copied. Other frames are split by masks, with the same result."""
    ts = frame[timestamp]
    start, end = pd.Timestamp(window_start), pd.Timestamp(window_end)
    label = f"window {window_label}" if window_label else "the window"
    if ts.is_monotonic_increasing:
        return _sorted_split(frame, ts, start, end, holdout_fraction, label)
    history = frame[ts < start]
    window = frame[(ts >= start) & (ts < end)].sort_values(timestamp, kind="stable")
    n_holdout = _holdout_rows(len(window), holdout_fraction, label)
    cut = window[timestamp].iloc[len(window) - n_holdout]
    fresh = window[window[timestamp] < cut]
    holdout = window[window[timestamp] >= cut]
    train = pd.concat([history, fresh], ignore_index=True)
    _check_train(len(train), label)
    return Split(train=train, holdout=holdout.reset_index(drop=True), history_rows=len(history),
                 fresh_train_rows=len(fresh), cut=cut)


def _holdout_rows(window_rows: int, holdout_fraction: float, label: str) -> int:
    n_holdout = int(round(window_rows * holdout_fraction))
    if n_holdout < MIN_HOLDOUT_ROWS:
        raise DataError(
            f"{label} has {window_rows} valid rows, so only {n_holdout} would be held out "
            f"(at least {MIN_HOLDOUT_ROWS} are needed to compare two models)",
            "choose a longer window, or check the source has data for it")
    return n_holdout


def _check_train(rows: int, label: str) -> None:
    if rows == 0:
        raise DataError(f"{label} leaves no rows to train on",
                        "raise data.history_months in params.yaml or lower split.holdout_fraction")


def _sorted_split(frame: pd.DataFrame, ts: pd.Series, start: pd.Timestamp, end: pd.Timestamp,
                  holdout_fraction: float, label: str) -> Split:
    """:func:`chronological` for rows in time order: positions found by binary search. The
    history is every row before ``start``, the window the rows of [start, end), the cut the
    timestamp of the window's first held-out row, and every row of the window from the cut on is
    held out (ties included), as the masks would have it."""
    first, stop = (int(i) for i in ts.searchsorted([start, end], side="left"))
    n_holdout = _holdout_rows(stop - first, holdout_fraction, label)
    cut = ts.iloc[stop - n_holdout]
    at_cut = int(ts.searchsorted(cut, side="left"))
    _check_train(at_cut, label)
    return Split(train=frame.iloc[:at_cut].reset_index(drop=True),
                 holdout=frame.iloc[at_cut:stop].copy().reset_index(drop=True), history_rows=first,
                 fresh_train_rows=at_cut - first, cut=cut)
