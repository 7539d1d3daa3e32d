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
    """Split ``frame`` (history + window rows) at a time cut inside the window."""
    ts = frame[timestamp]
    start, end = pd.Timestamp(window_start), pd.Timestamp(window_end)
    history = frame[ts < start]
    window = frame[(ts >= start) & (ts < end)].sort_values(timestamp, kind="stable")
    n_holdout = int(round(len(window) * holdout_fraction))
    label = f"window {window_label}" if window_label else "the window"
    if n_holdout < MIN_HOLDOUT_ROWS:
        raise DataError(
            f"{label} has {len(window)} valid rows, so only {n_holdout} would be held out "
            f"(at least {MIN_HOLDOUT_ROWS} are needed to compare two models)",
            "choose a longer window, or check the source has data for it")
    cut = window[timestamp].iloc[len(window) - n_holdout]
    fresh = window[window[timestamp] < cut]
    holdout = window[window[timestamp] >= cut]
    train = pd.concat([history, fresh], ignore_index=True)
    if len(train) == 0:
        raise DataError(f"{label} leaves no rows to train on",
                        "raise data.history_months in params.yaml or lower split.holdout_fraction")
    return Split(train=train, holdout=holdout.reset_index(drop=True), history_rows=len(history),
                 fresh_train_rows=len(fresh), cut=cut)
