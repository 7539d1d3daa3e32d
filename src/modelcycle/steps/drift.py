"""Drift: does a window's data look like the rows the champion was trained on?

Each declared column of the window (``current``) is compared with the same column of the
champion's training rows (``reference``), with a test that suits its type (``data.columns``):

* **float, int** -- the population stability index (PSI) over ten bins cut at the reference's
  deciles plus two bins for values below and above the reference's range (empty in the
  reference: a broken export's zeros or swapped coordinates show at once), and the two-sample
  Kolmogorov-Smirnov statistic and p-value. A numeric column with
  at most ten distinct reference values (``passenger_count``, a 0/1 flag) is binned by value
  instead, as a category would be.
* **str, category, bool** -- the PSI over the categories seen in either frame and the p-value of
  a chi-square test of the two frames' category counts.
* **datetime** -- a window's dates never overlap its reference's, so raw timestamps are not
  compared: the PSI of the hour-of-day and of the day-of-week distributions is computed and the
  larger of the two is the column's PSI.

In every test, missing values are a bin of their own: a jump in the share of empty cells moves
the PSI like any other change of the mix (``missing_reference``, ``missing_current`` and
``missing_change`` report the shares themselves).

**The score.** A column's score is its PSI, ``sum((c - r) * ln(c / r))`` over the bins, where
``r`` and ``c`` are the shares of the reference and of the current rows in a bin, each floored at
:data:`PSI_FLOOR` so that an empty bin does not make it infinite. The usual reading is: below 0.1
no change, 0.1-0.2 a moderate change, above 0.2 a significant one; the column *drifts* when its
PSI is above the threshold, :data:`DEFAULT_THRESHOLD` = 0.1 unless configured. 0.1 rather than
the rule of thumb's 0.2 because of what the taxi simulator shows (scripts/study_drift.py, each
month against the year before it): the real 2012-09 fare increase (+27 %, from the 4th) moves the
fare's PSI to 0.14 only, under 0.2, while in 50 quiet months no column's PSI passed 0.02. On
thousands of rows a PSI's sampling noise is about ``(bins - 1) * (1/n_reference + 1/n_current)``
(0.01 for 24 hour bins on 5,000 rows each), so 0.1 stays clear of it down to windows of about a
thousand rows; smaller windows want a higher threshold. The PSI is used rather than a
p-value because on tens of thousands of rows every test rejects: a p-value says a difference is
real, not that it matters. The KS statistic and the chi-square p-value are reported beside it.

**Large samples.** Each frame is subsampled to :data:`MAX_ROWS` rows (seeded, so the same frames
give the same figures) before a column is compared: the PSI's sampling noise at that size is
about 0.002 over ten bins, far below any threshold, and a column takes a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.errors import DataError

#: The PSI above which a column drifts unless configured otherwise (see the module docstring).
DEFAULT_THRESHOLD = 0.1
#: The smallest share a bin is given in the PSI (an empty bin would make it infinite).
PSI_FLOOR = 1e-4
#: Rows of each frame a column is compared on (a seeded subsample beyond that).
MAX_ROWS = 10_000
#: Quantile bins of a numeric column; a column with at most this many values is binned by value.
BINS = 10

NUMERIC = frozenset({"float", "int"})
CATEGORICAL = frozenset({"str", "category", "bool"})
DATETIME = "datetime"
#: Image columns are not compared cell by cell (a path or the bytes of an image say nothing of its drift).
IMAGE = "image"
KINDS = NUMERIC | CATEGORICAL | {DATETIME}

_MISSING = "(missing)"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's comparison: ``psi`` is its score; ``stats`` the other figures (``ks``,
    ``ks_pvalue``, ``chi2_pvalue``, ``psi_hour``, ``psi_weekday`` depending on the kind, and
    always ``missing_reference``, ``missing_current`` and ``missing_change``, the shares of empty
    cells and the difference)."""

    column: str
    kind: str
    psi: float
    stats: dict[str, float] = field(default_factory=dict)
    rows_reference: int = 0
    rows_current: int = 0

    @property
    def score(self) -> float:
        """The figure compared with the threshold: the PSI."""
        return self.psi


@dataclass(frozen=True)
class DriftReport:
    """Every column's comparison and which of them drift (PSI above ``threshold``)."""

    columns: dict[str, ColumnDrift]
    threshold: float

    @property
    def drifted(self) -> list[str]:
        """The columns whose PSI is above the threshold, the largest drift first."""
        over = [c for c in self.columns.values() if c.psi > self.threshold]
        return [c.column for c in sorted(over, key=lambda c: -c.psi)]

    @property
    def has_drift(self) -> bool:
        return bool(self.drifted)

    def to_metrics(self) -> dict[str, float]:
        """Flat ``drift.<column>.<stat>`` floats (NaN-free), ready for ``mlflow.log_metrics``."""
        drifted = set(self.drifted)
        out: dict[str, float] = {"drift.threshold": float(self.threshold),
                                 "drift.columns_drifted": float(len(drifted))}
        for name, col in self.columns.items():
            figures = {"psi": col.psi, **col.stats, "drifted": 1.0 if name in drifted else 0.0}
            for stat, value in figures.items():
                if math.isfinite(value):
                    out[f"drift.{name}.{stat}"] = float(value)
        return out

    def summary(self) -> str:
        """One line per column: its PSI, and a mark where it drifts."""
        drifted = set(self.drifted)
        return "\n".join(
            f"{name}: PSI {col.psi:.3f}{'  DRIFT' if name in drifted else ''}"
            for name, col in self.columns.items())


def psi(reference: np.ndarray, current: np.ndarray, *, floor: float = PSI_FLOOR) -> float:
    """The population stability index of two count (or share) vectors over the same bins."""
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if r.sum() <= 0 or c.sum() <= 0:
        return math.nan
    r = np.maximum(r / r.sum(), floor)
    c = np.maximum(c / c.sum(), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def _subsample(values: pd.Series, seed: int) -> pd.Series:
    if len(values) <= MAX_ROWS:
        return values
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(values), size=MAX_ROWS, replace=False))
    return values.iloc[picked]


def _counts_by_value(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Counts per category (missing as a category of its own), aligned over both frames."""
    r, c = _value_counts(ref), _value_counts(cur)
    both = sorted(set(r) | set(c))
    return (np.array([r.get(k, 0) for k in both], dtype=float),
            np.array([c.get(k, 0) for k in both], dtype=float))


def _value_counts(values: pd.Series) -> dict[str, int]:
    """Counts per value as text (``True`` and ``'True'`` are one category), missing as one."""
    out: dict[str, int] = {}
    for value, count in values.value_counts(dropna=False).items():
        # None and pd.NA by identity; NaN and NaT are the values unequal to themselves
        key = _MISSING if value is None or value is pd.NA or value != value else str(value)
        out[key] = out.get(key, 0) + int(count)
    return out


def _stats() -> Any:
    """SciPy's statistics, imported when a comparison first needs them (1.2 s of one core): the
    commands that only read a drift report (``status``, ``doctor``) do without."""
    from scipy import stats  # type: ignore[import-untyped]  # scipy ships no type stubs

    return stats


def _chi2_pvalue(r: np.ndarray, c: np.ndarray) -> float:
    keep = (r + c) > 0
    if keep.sum() < 2:
        return 1.0
    table = np.vstack([r[keep], c[keep]])
    return float(_stats().chi2_contingency(table, correction=False).pvalue)


def _numeric(ref: pd.Series, cur: pd.Series) -> tuple[float, dict[str, float]]:
    r = pd.to_numeric(ref, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    c = pd.to_numeric(cur, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    r_ok, c_ok = r[np.isfinite(r)], c[np.isfinite(c)]
    figures: dict[str, float] = {}
    if len(r_ok) and len(c_ok):
        ks = _stats().ks_2samp(r_ok, c_ok, method="asymp")
        figures["ks"], figures["ks_pvalue"] = float(ks.statistic), float(ks.pvalue)
    distinct = np.unique(r_ok)
    if len(distinct) <= BINS:  # few values: a bin per value (values the reference lacks: one more)
        r_bins = np.searchsorted(distinct, r_ok)
        c_pos = np.searchsorted(distinct, c_ok)
        known = (c_pos < len(distinct)) & (distinct[np.minimum(c_pos, len(distinct) - 1)] == c_ok)
        c_bins = np.where(known, c_pos, len(distinct))
        width = len(distinct) + 1
    else:
        edges = np.unique(np.quantile(r_ok, np.linspace(0, 1, BINS + 1)[1:-1]))
        low, high = distinct[0], distinct[-1]
        r_bins = np.searchsorted(edges, r_ok, side="right") + 1
        c_bins = np.searchsorted(edges, c_ok, side="right") + 1
        c_bins[c_ok < low] = 0  # outside the reference's range: a bin of its own on each side
        c_bins[c_ok > high] = len(edges) + 2
        width = len(edges) + 3
    r_counts = np.append(np.bincount(r_bins, minlength=width), len(r) - len(r_ok))
    c_counts = np.append(np.bincount(c_bins, minlength=width), len(c) - len(c_ok))
    return psi(r_counts, c_counts), figures


def _categorical(ref: pd.Series, cur: pd.Series) -> tuple[float, dict[str, float]]:
    r, c = _counts_by_value(ref, cur)
    return psi(r, c), {"chi2_pvalue": _chi2_pvalue(r, c)}


def _timestamps(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    return pd.to_datetime(values, errors="coerce", format="mixed")


def _datetime(ref: pd.Series, cur: pd.Series) -> tuple[float, dict[str, float]]:
    r, c = _timestamps(ref), _timestamps(cur)
    figures: dict[str, float] = {}
    for stat, part, width in (("hour", "hour", 24), ("weekday", "dayofweek", 7)):
        r_part = getattr(r.dt, part).to_numpy(dtype=float, na_value=np.nan)
        c_part = getattr(c.dt, part).to_numpy(dtype=float, na_value=np.nan)
        r_counts = np.bincount(np.nan_to_num(r_part, nan=width).astype(int), minlength=width + 1)
        c_counts = np.bincount(np.nan_to_num(c_part, nan=width).astype(int), minlength=width + 1)
        figures[f"psi_{stat}"] = psi(r_counts, c_counts)
    return max(figures["psi_hour"], figures["psi_weekday"]), figures


def column_drift(reference: pd.Series, current: pd.Series, kind: str, *, seed: int = 0) -> ColumnDrift:
    """Compare one column of the champion's training rows with the window's (see the module).

    ``kind`` is the column's type in ``data.columns``. Frames larger than :data:`MAX_ROWS` are
    subsampled with ``seed``.
    """
    named = current.name if current.name is not None else reference.name
    name = "(unnamed)" if named is None else str(named)
    if kind not in KINDS:
        raise ValueError(f"column '{name}': unknown kind {kind!r} (one of {', '.join(sorted(KINDS))})")
    if len(reference) == 0 or len(current) == 0:
        which = "the reference (the champion's training rows)" if len(reference) == 0 else "the window"
        raise DataError(f"cannot measure the drift of column '{name}': {which} has no rows",
                        "compare a window with rows against the champion's training rows")
    ref, cur = _subsample(reference, seed), _subsample(current, seed + 1)
    if kind in NUMERIC:
        score, figures = _numeric(ref, cur)
    elif kind in CATEGORICAL:
        score, figures = _categorical(ref, cur)
    else:
        score, figures = _datetime(ref, cur)
    figures["missing_reference"] = float(ref.isna().mean())
    figures["missing_current"] = float(cur.isna().mean())
    figures["missing_change"] = figures["missing_current"] - figures["missing_reference"]
    return ColumnDrift(column=name, kind=kind, psi=score, stats=figures,
                       rows_reference=len(reference), rows_current=len(current))


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, columns: dict[str, str], *,
                 threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> DriftReport:
    """Compare every column of ``columns`` (name -> kind, as ``data.columns``) between the
    champion's training rows and the window; a column drifts when its PSI is above ``threshold``."""
    for frame, which in ((reference, "the champion's training rows"), (current, "the window")):
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise DataError(f"cannot measure drift: {which} lack column(s) {', '.join(missing)}",
                            "compare frames that have every column of data.columns")
    results = {name: column_drift(reference[name], current[name], kind, seed=seed)
               for name, kind in columns.items() if kind != IMAGE}
    return DriftReport(columns=results, threshold=float(threshold))
