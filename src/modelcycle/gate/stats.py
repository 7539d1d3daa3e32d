"""Paired resampling of two models' scores on the same held-out rows.

The gate asks one question: *how much better is the challenger, and how sure are we?* Both
models are scored on the same rows, so the comparison is paired: every resample weights the
same rows for both models, and the row-to-row noise that both models share cancels out.

Metrics are written as functions of **weighted column sums** of per-row quantities (MAE is
``sum(w*|e|) / sum(w)``; RMSE the square root of ``sum(w*e**2) / sum(w)``; R² needs
``sum(w*e**2)``, ``sum(w*y)`` and ``sum(w*y**2)``; F1 needs weighted counts of true
positives, false positives and false negatives). A resample is a vector of row weights, so a
bootstrap needs only the weighted sums of a few columns per resample.

Two resampling schemes:

``double-or-nothing`` (the default)
    Each row gets weight 0 or 2 with probability 1/2, independently (the "double-or-nothing"
    bootstrap of Owen & Eckles, 2012). Weights have mean 1 and variance 1, as the classic
    bootstrap's counts do (approximately), so a resampled mean has the classic bootstrap's
    variance. Since a weight is one random bit, groups of 4 rows map to 16 possible partial sums,
    which are precomputed; a resample then costs one table lookup per 4 rows and column, and
    needs n/8 random bytes. 100,000 rows x 2,000 resamples take well under a second on one core
    (``scripts/bench_gate.py`` measures it).

``multinomial``
    The classic bootstrap: n rows drawn with replacement, as row counts. Exact, about seven
    times slower; for users who want the textbook method and for checking the default against it.

The interval is the percentile interval of the resampled relative improvement.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelcycle.steps import evaluate as ev
from modelcycle.steps.evaluate import METRICS, Scores

METHODS = ("double-or-nothing", "multinomial")
_CHUNK_BYTES = 8000000  # working memory of one chunk of resamples
MOST_THREADS = 4  # the resamples' lookups run on up to this many cores


@dataclass(frozen=True)
class Interval:
    """The challenger's relative improvement over the champion (positive = better), with a
    two-sided ``confidence`` percentile interval from ``resamples`` paired resamples."""

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int
    method: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"improvement": self.estimate, "ci_low": self.low, "ci_high": self.high,
                "confidence": self.confidence, "resamples": self.resamples, "method": self.method,
                "rows": self.rows}


# metrics as functions of weighted column sums -------------------------------------------------

Columns = Callable[[Scores], np.ndarray]          # (n, k) per-row quantities of one model
Value = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (..., k) sums, (...) weights -> metric


def _err(s: Scores) -> np.ndarray:
    return s.y_true.astype("float64") - s.y_pred.astype("float64")


def _log_loss_columns(s: Scores) -> np.ndarray:
    if s.proba is None or s.classes is None:
        raise ValueError("log loss needs class probabilities")
    index = {c: i for i, c in enumerate(s.classes)}
    rows = np.array([index.get(v, -1) for v in s.y_true])
    p = np.where(rows >= 0, s.proba[np.arange(len(rows)), np.maximum(rows, 0)], 0.0)
    return (-np.log(np.clip(p, 1e-15, 1.0)))[:, None]


COLUMNS: dict[str, tuple[Columns, Value]] = {
    "mae": (lambda s: np.abs(_err(s))[:, None], lambda S, w: S[..., 0] / w),
    "rmse": (lambda s: (_err(s) ** 2)[:, None], lambda S, w: np.sqrt(S[..., 0] / w)),
    "mape": (lambda s: (np.abs(_err(s)) / np.maximum(np.abs(s.y_true.astype("float64")), 1e-9))[:, None],
             lambda S, w: S[..., 0] / w),
    "r2": (lambda s: np.column_stack([_err(s) ** 2, s.y_true.astype("float64"), s.y_true.astype("float64") ** 2]),
           lambda S, w: 1.0 - S[..., 0] / np.maximum(S[..., 2] - S[..., 1] ** 2 / w, 1e-300)),
    "accuracy": (lambda s: (s.y_true == s.y_pred).astype("float64")[:, None], lambda S, w: S[..., 0] / w),
    "log_loss": (_log_loss_columns, lambda S, w: S[..., 0] / w),
}


# weighted sums of resamples ---------------------------------------------------------------------


def _valid_bits(n: int, nbytes: int) -> np.ndarray:
    """Per random byte, the bits that belong to real rows (row r is bit r % 8 of byte r // 8)."""
    mask = np.full(nbytes, 255, dtype=np.uint8)
    full, rest = divmod(n, 8)
    if full < nbytes:
        mask[full] = (1 << rest) - 1
        mask[full + 1:] = 0
    return mask


def _double_or_nothing(X: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column sums for ``resamples`` double-or-nothing weight vectors (0/2 per row).

    Rows are taken 4 at a time: a 4-bit nibble of random bits chooses which of the 4 rows count,
    and a table holds the 16 possible partial sums of each group, so a resample costs one lookup
    per group and column. The random bits are drawn in order, a chunk of resamples at a time; the
    chunks' lookups run on the process's cores (NumPy's take and sum release the GIL), so the
    result is the same on any number of cores."""
    n, k = X.shape
    nbytes = -(-n // 8)
    groups = nbytes * 2
    padded = np.zeros((groups * 4, k))
    padded[:n] = X
    pick = ((np.arange(16)[:, None] >> np.arange(4)) & 1).astype("float64")   # (16, 4)
    # one contiguous table per column: tables[c][16 * g + v] = sum of column c over the rows of
    # group g whose bits are set in v
    tables = np.ascontiguousarray(np.einsum("vb,gbk->kgv", pick, padded.reshape(groups, 4, k)).reshape(k, groups * 16))
    base = np.arange(groups, dtype=np.intp) * 16
    valid = _valid_bits(n, nbytes)
    chunk = max(1, min(resamples, _CHUNK_BYTES // max(1, groups * 16)))
    sums = np.empty((resamples, k))
    counts = np.empty(resamples)

    buffers = threading.local()   # each thread's working arrays, allocated once

    def lookups(start: int, raw: np.ndarray) -> None:
        m = len(raw)
        if not hasattr(buffers, "nib"):
            buffers.nib, buffers.gathered = np.empty((chunk, groups), dtype=np.intp), np.empty((chunk, groups))
        nib, gathered = buffers.nib[:m], buffers.gathered[:m]
        nib[:, 0::2] = raw & 15
        nib[:, 1::2] = raw >> 4
        nib += base
        for c in range(k):                     # a handful of columns
            np.take(tables[c], nib, out=gathered)
            sums[start:start + m, c] = 2.0 * gathered.sum(axis=1)
        counts[start:start + m] = 2.0 * np.bitwise_count(raw).sum(axis=1, dtype=np.int64)

    def draws() -> Iterator[tuple[int, np.ndarray]]:   # chunks of resamples, not resamples
        for start in range(0, resamples, chunk):
            m = min(chunk, resamples - start)
            yield start, np.frombuffer(rng.bytes(m * nbytes), dtype=np.uint8).reshape(m, nbytes) & valid

    _on_cores(lookups, draws(), chunks=-(-resamples // chunk))
    return sums, counts


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _on_cores(work: Callable[[int, np.ndarray], None], items: Iterator[tuple[int, np.ndarray]], *, chunks: int) -> None:
    """``work(*item)`` for every item, on up to :data:`MOST_THREADS` threads (one per usable core),
    with at most two items per thread drawn ahead, so memory stays a few chunks'."""
    threads = min(MOST_THREADS, _cores(), chunks)
    if threads <= 1:
        for item in items:
            work(*item)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="modelcycle-resample") as pool:
        pending: deque[Future[None]] = deque()
        for item in items:
            if len(pending) >= 2 * threads:
                pending.popleft().result()
            pending.append(pool.submit(work, *item))
        for done in pending:
            done.result()


def _weights(n: int, resamples: int, rng: np.random.Generator, method: str) -> Iterator[np.ndarray]:
    """Explicit row weights, a chunk of resamples at a time (for metrics that are not sums)."""
    chunk = max(1, min(resamples, _CHUNK_BYTES // max(1, n * 24)))
    nbytes = -(-n // 8)
    valid = _valid_bits(n, nbytes)
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        if method == "double-or-nothing":
            raw = np.frombuffer(rng.bytes(m * nbytes), dtype=np.uint8).reshape(m, nbytes) & valid
            yield 2.0 * np.unpackbits(raw, axis=1, bitorder="little")[:, :n]
        else:
            idx = rng.integers(0, n, size=(m, n)) + (np.arange(m)[:, None] * n)
            yield np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype("float64")


def _multinomial(X: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column sums for ``resamples`` classic bootstrap resamples (row counts)."""
    n, k = X.shape
    chunk = max(1, min(resamples, _CHUNK_BYTES // max(1, n * 8)))
    sums = np.empty((resamples, k))
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(m, n), dtype=np.int32 if n < 2**31 else np.int64)
        sums[start:start + m] = np.take(X, idx.ravel(), axis=0).reshape(m, n, k).sum(axis=1)
    return sums, np.full(resamples, float(n))


def pair_labels(champion: Scores, challenger: Scores) -> list[Any]:
    """Every class either model knows or predicts, or the rows hold, sorted."""
    return ev.sorted_labels(champion.y_true, champion.y_pred, challenger.y_pred,
                            champion.classes, challenger.classes)


def _pair_columns(champion: Scores, challenger: Scores) -> tuple[np.ndarray, np.ndarray, Value]:
    """Both models' per-row columns and the metric as a function of their weighted sums."""
    metric = champion.metric
    if metric == "f1":
        targets, _ = ev.f1_targets(pair_labels(champion, challenger))
        return (ev.f1_columns(champion.y_true, champion.y_pred, targets),
                ev.f1_columns(challenger.y_true, challenger.y_pred, targets),
                lambda S, _w: ev.f1_from_sums(S))
    columns, value = COLUMNS[metric]
    return columns(champion), columns(challenger), value


def resampled_metrics(champion: Scores, challenger: Scores, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both models' metric on each resample given as explicit row weights ``W`` (``(m, n)``; a
    row drawn twice weighs 2): the metric recomputed on the same resampled rows for both models.
    (The interval computes the same numbers faster; this is its definition, and the tests'.)"""
    if champion.metric == "roc_auc":
        y, targets, a, b = _auc_inputs(champion, challenger)
        return ev.weighted_auc_mean(y, a, targets, W), ev.weighted_auc_mean(y, b, targets, W)
    a, b, value = _pair_columns(champion, challenger)
    w = W.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return value(W @ a, w), value(W @ b, w)


def improvement_interval(champion: Scores, challenger: Scores, *, confidence: float = 0.95,
                         resamples: int = 2000, seed: int = 0,
                         method: str = "double-or-nothing") -> Interval:
    """Paired resampled interval of the challenger's relative improvement over the champion.

    Each resample weights the same rows for both models, and the metric is recomputed on it for
    both: from per-row terms for accuracy (0/1), log loss and the regression metrics, from
    resampled counts of true/false positives for F1, and from the resampled ranking for ROC AUC.
    """
    if champion.metric != challenger.metric:
        raise ValueError("both models must be scored with the same metric")
    if champion.rows != challenger.rows or not np.array_equal(champion.y_true, challenger.y_true):
        raise ValueError("champion and challenger must be scored on the same held-out rows")
    if method not in METHODS:
        raise ValueError(f"unknown resampling method '{method}'")
    metric = champion.metric
    higher = METRICS[metric].greater_is_better
    rng = np.random.default_rng(seed)
    if metric == "roc_auc":
        return _auc_interval(champion, challenger, confidence, resamples, rng, method)
    a, b, value = _pair_columns(champion, challenger)
    k = a.shape[1]
    X = np.hstack([a, b])
    sums, weights = (_double_or_nothing if method == "double-or-nothing" else _multinomial)(X, resamples, rng)
    full = np.ones(1) * len(X)
    estimate = float(_relative(value(X.sum(axis=0)[None, :k], full), value(X.sum(axis=0)[None, k:], full), higher)[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = _relative(value(sums[:, :k], weights), value(sums[:, k:], weights), higher)
    return _interval(estimate, dist, confidence, resamples, method, len(X))


def _relative(m_champ: np.ndarray, m_chall: np.ndarray, higher: bool) -> np.ndarray:
    gain = (m_chall - m_champ) if higher else (m_champ - m_chall)
    return gain / np.maximum(np.abs(m_champ), 1e-12)


def _interval(estimate: float, dist: np.ndarray, confidence: float, resamples: int, method: str,
              rows: int) -> Interval:
    dist = dist[np.isfinite(dist)]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(dist, [tail, 1.0 - tail]) if len(dist) else (np.nan, np.nan)
    return Interval(estimate=estimate, low=float(low), high=float(high), confidence=confidence,
                    resamples=resamples, method=method, rows=rows)


def _auc_inputs(champion: Scores, challenger: Scores) -> tuple[np.ndarray, list[Any], np.ndarray, np.ndarray]:
    if champion.proba is None or challenger.proba is None:
        raise ValueError("a paired interval of ROC AUC needs both models' class probabilities")
    y = champion.y_true
    labels = ev.sorted_labels(
        y, *(s.classes if s.classes is not None else range(s.proba.shape[1])  # type: ignore[union-attr]
             for s in (champion, challenger)))
    targets, _ = ev.auc_targets(labels)
    return (y, targets, ev.auc_scores(champion.proba, champion.classes, targets),
            ev.auc_scores(challenger.proba, challenger.classes, targets))


def _auc_interval(champion: Scores, challenger: Scores, confidence: float, resamples: int,
                  rng: np.random.Generator, method: str) -> Interval:
    """ROC AUC is a ranking, not a sum of per-row terms: each resample's AUC is recomputed from
    its row weights (binary, or one-vs-rest macro over the classes)."""
    y, targets, a, b = _auc_inputs(champion, challenger)
    ones = np.ones((1, len(y)))
    estimate = float(_relative(ev.weighted_auc_mean(y, a, targets, ones),
                               ev.weighted_auc_mean(y, b, targets, ones), True)[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = [_relative(ev.weighted_auc_mean(y, a, targets, W), ev.weighted_auc_mean(y, b, targets, W), True)
                 for W in _weights(len(y), resamples, rng, method)]
    return _interval(estimate, np.concatenate(parts), confidence, resamples, method, len(y))
