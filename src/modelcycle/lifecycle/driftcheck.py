"""Drift against the champion's training rows: measured in each cycle, and between cycles for a
data watcher (:func:`live_drift`). The figures are :mod:`modelcycle.steps.drift`'s; this module
chooses the two frames, and records and reads the result.

**The champion's training rows** (the reference). A champion version carries its cycle's window
in its ``window`` tag (the lineage :func:`~modelcycle.lifecycle.act.commit` writes); that cycle
trained on the ``data.history_months`` months before the window and the window's first part
(its latest ``split.holdout_fraction`` was held out), so the reference is the clean rows of
``[window.history_start(history_months), window.end)`` -- the held-out part included: it is a
sample of the same weeks, and leaving it out would need the split redone for no change in the
figures. In a cycle the reference is taken, cheapest first, from:

* **the cycle's own rows**, when the champion was trained by the cycle of the month just before
  (the usual case: every cycle promotes or keeps a champion of the month before). The cycle has
  fetched and validated its history months with its window, and those are the champion's
  training range less its oldest month: ``history_months`` of its ``history_months + 1``
  months, the same mix of rows but for one month, and nothing more is fetched. (When the
  champion was trained on this very window, a rerun, all of the cycle's clean rows are.)
* **the cycle's rows and the months it lacks**, when the champion's range and the cycle's
  overlap (a champion kept for a month or two): the overlap is the cycle's own clean rows (not
  copied) and only the champion's older months are fetched and validated, so a year of history
  is not read a second time while the challenger trains;
* **the source**, otherwise (a champion kept longer than the history, one promoted by hand, no
  history months): its range is fetched and validated as its cycle did, while the challenger trains.

``history_months`` is today's params.yaml value: a champion trained with another one is compared
with a range a little longer or shorter than its own, which changes the figures little.

**The window's rows** (the current frame) are its rows *as fetched*, before validation: drift is
about what arrives, and a broken export (zeroed coordinates) is exactly what validation drops.
Between cycles, the rows of ``[start, end)`` as the source has them now.

**Storage.** Each cycle logs the figures to its MLflow run (``drift_psi_<column>``,
``drift_max_psi``, the full report as ``drift.json``), puts a summary in
``reports/metrics.json`` and in :class:`~modelcycle.lifecycle.result.CycleResult`, and writes
the summary to ``.modelcycle/drift.json`` (:data:`LATEST`), which ``modelcycle status`` reads: a
file in the workspace answers without the tracking server and needs no search of runs.

This module imports neither Prefect nor MLflow: a watcher calls :func:`live_drift` in a plain
thread.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from modelcycle.config import Window, Workspace
from modelcycle.errors import ModelcycleError
from modelcycle.registry.base import CHAMPION, ModelVersion
from modelcycle.sources import Source
from modelcycle.steps import drift as dr
from modelcycle.steps import validate as va
from modelcycle.versioning.partitions import stamps

if TYPE_CHECKING:
    from modelcycle.registry.base import Registry

log = logging.getLogger(__name__)

#: The latest cycle's drift summary, read by ``modelcycle status``.
LATEST = ".modelcycle/drift.json"
#: The columns a reason names before "and N more".
NAMED = 4


def champion_window(champion: ModelVersion) -> Window | None:
    """The window of the cycle that trained ``champion`` (its ``window`` tag), if it says one."""
    label = champion.tags.get("window")
    if not label:
        return None
    try:
        return Window.parse(label)
    except ModelcycleError:
        return None


def training_range(ws: Workspace, trained: Window) -> tuple[datetime, datetime]:
    """The time range a cycle of window ``trained`` fetched, and trained on (see the module)."""
    return trained.history_start(ws.params.data.history_months), trained.end


def fetch_training_rows(ws: Workspace, source: Source, champion: ModelVersion) -> pd.DataFrame:
    """The champion's training rows from the source: its range, fetched and validated."""
    trained = champion_window(champion)
    if trained is None:
        raise ValueError(f"{champion.name} v{champion.version} has no `window` tag: which rows it was "
                         "trained on is unknown")
    start, end = training_range(ws, trained)
    clean, _ = va.validate(source.fetch(start, end), ws.config.data, window_start=trained.start,
                           where=f"(the champion's training rows, {start:%Y-%m-%d}..{end:%Y-%m-%d})")
    return clean


def cycle_reference(ws: Workspace, source: Source, champion: ModelVersion, window: Window,
                    clean: pd.DataFrame) -> tuple[pd.DataFrame | _Joined, str]:
    """The champion's training rows for a cycle of ``window`` whose clean rows (history and
    window) are ``clean``, and where they came from in words (see the module)."""
    trained = champion_window(champion)
    if trained is not None and trained.label == window.label:
        return clean, f"this cycle's rows (v{champion.version} was trained on {window})"
    if trained is not None and trained.end == window.start and ws.params.data.history_months > 0:
        history = _marked(clean, stamps(clean, ws.config.data.timestamp) < window.start)
        if len(history):
            return history, f"this cycle's history rows (v{champion.version} was trained to {trained})"
    if trained is not None:
        overlapping = _overlapping(ws, source, champion, trained, window, clean)
        if overlapping is not None:
            return overlapping
    rows = fetch_training_rows(ws, source, champion)  # raises without a window tag
    assert trained is not None
    start, end = training_range(ws, trained)
    return rows, f"fetched {start:%Y-%m-%d}..{end:%Y-%m-%d} (v{champion.version}'s training range)"


class _Joined:
    """Frames one after the other, read a column at a time (what drift reads): the rows a cycle
    holds already are not copied into a second frame of the champion's range."""

    def __init__(self, parts: list[pd.DataFrame]) -> None:
        self.parts = parts
        self.columns = parts[0].columns

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, name: str) -> pd.Series:
        return pd.concat([p[name] for p in self.parts], ignore_index=True)


def _overlapping(ws: Workspace, source: Source, champion: ModelVersion, trained: Window, window: Window,
                 clean: pd.DataFrame) -> tuple[pd.DataFrame | _Joined, str] | None:
    """The champion's training rows when its range and this cycle's overlap: the cycle's clean
    rows of the overlap, and only the months it lacks fetched and validated (its history is read
    once per cycle, not a second time for drift); None when they do not overlap."""
    start, end = training_range(ws, trained)
    have = window.history_start(ws.params.data.history_months), window.end
    lo, hi = max(start, have[0]), min(end, have[1])
    if lo >= hi:
        return None
    at = stamps(clean, ws.config.data.timestamp)
    shared = _marked(clean, (at >= lo) & (at < hi))
    parts: list[pd.DataFrame] = []
    fetched: list[str] = []
    for a, b in ((start, min(end, have[0])), (max(start, have[1]), end)):
        if a < b:
            rows, _ = va.validate(source.fetch(a, b), ws.config.data, window_start=trained.start,
                                  where=f"(the champion's training rows, {a:%Y-%m-%d}..{b:%Y-%m-%d})")
            parts.append(rows)
            fetched.append(f"{a:%Y-%m-%d}..{b:%Y-%m-%d}")
    parts.insert(1 if start < have[0] else 0, shared)
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    said = (f"this cycle's rows of {lo:%Y-%m-%d}..{hi:%Y-%m-%d}"
            + (f" and fetched {', '.join(fetched)}" if fetched else "") + f" (v{champion.version}'s training range)")
    return (parts[0] if len(parts) == 1 else _Joined(parts)), said


def _marked(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """``frame[mask]``; a slice of ``frame`` (no copy) when the marked rows are one run of
    rows, as the rows of a time range of a cycle's clean rows (sorted by time) are."""
    n = int(mask.sum())
    first = int(mask.to_numpy().argmax()) if n else 0
    return frame.iloc[first:first + n] if bool(mask.iloc[first:first + n].all()) else frame[mask]


def window_rows(ws: Workspace, raw: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The window's rows as fetched (the history months left out)."""
    at = stamps(raw, ws.config.data.timestamp)
    return raw[(at >= window.start) & (at < window.end)]


def measure(ws: Workspace, reference: pd.DataFrame, current: pd.DataFrame) -> dr.DriftReport:
    """The drift of the configured columns (``drift.columns``) between the two frames."""
    return dr.drift_report(reference, current, ws.config.drift_columns(), threshold=ws.config.drift.threshold)


# in a cycle --------------------------------------------------------------------------------------


@dataclass
class CycleDrift:
    """A cycle's drift: the report, or the error that stopped it (never both)."""

    window: str
    champion: str
    champion_window: str | None
    target: str
    reference: str = ""
    report: dr.DriftReport | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def drifted(self) -> dict[str, float]:
        """Drifted column -> PSI, the largest first."""
        if self.report is None:
            return {}
        return {c: self.report.columns[c].psi for c in self.report.drifted}

    @property
    def max_psi(self) -> float | None:
        if self.report is None or not self.report.columns:
            return None
        return max(c.psi for c in self.report.columns.values())

    def summary(self) -> dict[str, Any]:
        """What ``modelcycle status``, reports/metrics.json and the cycle's result keep."""
        report = self.report
        return {"window": self.window, "champion_version": self.champion,
                "champion_window": self.champion_window, "target": self.target, "reference": self.reference,
                "threshold": report.threshold if report else None,
                "psi": {c: col.psi for c, col in report.columns.items()} if report else {},
                "drifted": self.drifted, "max_psi": self.max_psi, "error": self.error,
                "seconds": round(self.seconds, 3)}

    def metrics(self) -> dict[str, float]:
        """``drift_psi_<column>`` and ``drift_max_psi`` for the MLflow run (finite figures only)."""
        if self.report is None:
            return {}
        out = {f"drift_psi_{metric_name(c)}": col.psi for c, col in self.report.columns.items()
               if col.psi == col.psi}
        if self.max_psi is not None and self.max_psi == self.max_psi:
            out["drift_max_psi"] = self.max_psi
        out["drift_columns_drifted"] = float(len(self.drifted))
        return out

    def reason(self) -> str | None:
        """The drifted columns in words, for the decision's reasons (None when none drifted)."""
        return reason(self.drifted, self.target)


def metric_name(column: str) -> str:
    """A column's name as MLflow accepts in a metric's (letters, digits, ``_-. /``)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", column)


def reason(drifted: dict[str, float], target: str) -> str | None:
    """``inputs drifted: a (PSI 2.50), b (PSI 0.31); target drifted: y (PSI 0.14)`` and that the
    gate does not use it; None when nothing drifted."""
    if not drifted:
        return None

    def listed(cols: list[str]) -> str:
        shown = ", ".join(f"{c} (PSI {drifted[c]:.2f})" for c in cols[:NAMED])
        return shown + (f" and {len(cols) - NAMED} more" if len(cols) > NAMED else "")

    inputs = [c for c in drifted if c != target]
    parts = ([f"inputs drifted: {listed(inputs)}"] if inputs else []) + (
        [f"target drifted: {listed([target])}"] if target in drifted else [])
    return "; ".join(parts) + " (from the champion's training rows; for information, the gate does not use it)"


def in_cycle(ws: Workspace, source: Source, champion: ModelVersion | None, window: Window,
             raw: pd.DataFrame | None, clean: pd.DataFrame) -> CycleDrift | None:
    """A cycle's drift, never raising: None without a champion or with ``drift.enabled`` off; an
    error is logged and kept in the result. ``raw``: the rows as fetched (the window's are used;
    the cycle passes those alone)."""
    if champion is None or not ws.config.drift.enabled or raw is None:
        return None
    trained = champion_window(champion)
    out = CycleDrift(window=window.label, champion=champion.version, target=ws.config.data.target,
                     champion_window=trained.label if trained else None)
    started = time.perf_counter()
    try:
        reference, out.reference = cycle_reference(ws, source, champion, window, clean)
        # a _Joined reference is read as drift reads a frame: its columns, one at a time
        out.report = measure(ws, cast(pd.DataFrame, reference), window_rows(ws, raw, window))
    except Exception as exc:  # noqa: BLE001 - drift informs: it never fails a cycle
        out.error = exc.message if isinstance(exc, ModelcycleError) else f"{type(exc).__name__}: {exc}"
        log.warning("drift of %s against the champion v%s was not measured: %s", window, champion.version, out.error)
    out.seconds = time.perf_counter() - started
    return out


def record(registry: Registry, run_id: str, ws: Workspace, found: CycleDrift | None) -> None:
    """Log a cycle's drift to its run and write :data:`LATEST` (after the cycle committed); a
    cycle that measured none (no champion, ``drift.enabled`` off) removes it, so that ``status``
    never shows an older cycle's figures as the latest. A failure is logged: it never undoes or
    stops the cycle's bookkeeping."""
    try:
        if found is None:
            ws.path(LATEST).unlink(missing_ok=True)
            return
        write_latest(ws, found.summary())
        if found.report is not None:
            registry.log_metrics(run_id, found.metrics())
            registry.log_dict(run_id, {**found.summary(), "columns": {
                c: {"kind": col.kind, "psi": col.psi, **col.stats, "rows_reference": col.rows_reference,
                    "rows_current": col.rows_current} for c, col in found.report.columns.items()}}, "drift.json")
        if found.error:
            registry.set_tags(run_id, {"modelcycle.drift_error": found.error[:4900]})
    except Exception as exc:  # noqa: BLE001 - drift informs: its bookkeeping never stops the cycle's
        log.warning("the cycle's drift was not recorded: %s", exc)


def write_latest(ws: Workspace, summary: dict[str, Any]) -> None:
    path = ws.path(LATEST)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")


def read_latest(ws: Workspace) -> dict[str, Any] | None:
    """The latest cycle's drift summary; None when no cycle measured one (or the file is unreadable)."""
    path = ws.path(LATEST)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# between cycles: the data watcher -----------------------------------------------------------------

_cache: dict[tuple[str, str], tuple[str, pd.DataFrame]] = {}
_cache_lock = threading.Lock()


def reference_rows(ws: Workspace, source: Source, champion: ModelVersion) -> pd.DataFrame:
    """The watcher's reference: the champion's *newest* training rows, those of the window it was
    trained for (its ``window`` tag), or its whole training range when that window has fewer than
    ``drift.min_rows`` rows. Fetched once per champion version (kept in memory per workspace and
    model: a new champion replaces its predecessor's rows).

    The newest rows rather than the whole range: after a change the champion was retrained on (a
    new fare), its older training rows still hold the old regime, and every month after would
    drift from them until the history forgets it; on the taxi simulator, April 2015 then looked
    like a fare change again (fare PSI 0.27 against the whole range) and the watcher started a
    cycle the clock did not need (scripts/study_live_drift.py)."""
    key = (str(ws.root), champion.name)
    with _cache_lock:
        held = _cache.get(key)
        if held is not None and held[0] == champion.version:
            return held[1]
        rows = fetch_training_rows(ws, source, champion)
        trained = champion_window(champion)
        if trained is not None:
            newest = rows[stamps(rows, ws.config.data.timestamp) >= trained.start]
            if len(newest) >= ws.config.drift.min_rows:
                rows = newest
        _cache[key] = (champion.version, rows)
        return rows


def live_drift(ws: Workspace, source: Source, start: datetime, end: datetime, *,
               registry: Registry | None = None) -> dr.DriftReport | None:
    """The drift of the rows in ``[start, end)`` (those arrived so far of the current period)
    from the champion's newest training rows (:func:`reference_rows`). None when there is no
    champion, ``drift.enabled`` is off, or fewer than ``drift.min_rows`` rows arrived. Cheap to
    call often: the champion's rows are fetched once per champion version. Errors (a source
    that does not answer) raise."""
    cfg = ws.config.drift
    if not cfg.enabled:
        return None
    if registry is None:
        from modelcycle.registry.workspace import open_registry

        registry = open_registry(ws)
    champion = registry.get_alias(ws.config.name, CHAMPION)
    if champion is None:
        return None
    current = source.fetch(start, end)
    if len(current) < cfg.min_rows:
        return None
    reference = reference_rows(ws, source, champion)
    if len(reference) < cfg.min_rows:
        return None
    return measure(ws, reference, current)
