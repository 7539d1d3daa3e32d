"""Taking a frame's kept rows with as little work as the rows allow.

Validation usually drops a handful of rows out of millions (a broken coordinate, a repeated
ride). pandas' boolean indexing then gathers every kept value through an index array, column by
column: seconds for ten million rows. When the kept rows form few runs (few rows dropped, or
dropped together), each column here is copied run by run instead, a memory copy per run. Many
short runs (a third of the rows dropped here and there) go through pandas as before.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: above this many runs of kept rows, copying run by run costs more than pandas' gather
MOST_RUNS = 4096


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``[start, stop)`` runs of the true positions of a boolean ``mask``, as two arrays."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], np.asarray(mask, dtype=bool), [False])).astype("int8")))
    return edges[::2], edges[1::2]


def kept(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The rows of ``frame`` where ``keep`` (a boolean array, by position) is true, in order,
    indexed from 0, with ``frame``'s columns, types and ``attrs``: a new frame whose columns are
    their own (nothing shared with ``frame``)."""
    keep = np.asarray(keep, dtype=bool)
    if len(keep) != len(frame):
        raise ValueError(f"a mask of {len(keep)} rows for a frame of {len(frame)}")
    starts, stops = runs(keep)
    if len(starts) > MOST_RUNS or not frame.columns.is_unique:
        taken = frame[keep].reset_index(drop=True)
        taken.attrs = dict(frame.attrs)
        return taken
    total = int((stops - starts).sum())
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if isinstance(values.dtype, np.dtype):  # a NumPy column: a memory copy per run
            source = values.to_numpy()
            out = np.empty(total, dtype=source.dtype)
            at = 0
            for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
                out[at:at + stop - start] = source[start:stop]
                at += stop - start
            columns[name] = out
        else:  # categories, nullable numbers, Arrow-backed text...: their own take
            columns[name] = values.array[keep]
    taken = pd.DataFrame(columns, index=pd.RangeIndex(total), copy=False)
    taken.attrs = dict(frame.attrs)
    return taken
