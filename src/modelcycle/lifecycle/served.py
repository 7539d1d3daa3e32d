"""Served drift: do the requests the server answers look like the rows the champion was trained on?

With ``serve.shadow`` on, the prediction log (:mod:`modelcycle.serving.shadow`) holds, for every
request row, the model inputs the request sent (``input.<column>``) and the champion's prediction.
:func:`served_drift` compares the rows the current champion answered since a moment with the
champion's newest training rows (:func:`~modelcycle.lifecycle.driftcheck.reference_rows`, the
reference of the data watcher), with the same test and threshold as the source's drift
(``drift:`` in modelcycle.yaml):

* each input column of ``drift.columns`` (the target left out: a request has none) that the log
  holds, logged value against training value;
* the **outputs**: the champion's predictions against the target column of its training rows,
  reported as the column :data:`PREDICTION`. A model whose predictions moved away from the labels
  it learnt from is seeing something its training did not show it, even when no single input
  moved enough to say so.

Rows another champion version answered are left out: after a promotion the figures are the new
champion's alone. Only the log's folders of the days asked for are read.

This module imports neither Prefect nor MLflow: the data watcher calls it in a plain thread.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from modelcycle.config import Workspace
from modelcycle.lifecycle.driftcheck import reference_rows
from modelcycle.registry.base import CHAMPION, ModelVersion
from modelcycle.serving.shadow import INPUT_PREFIX, harmonise, predictions_dir, read_files
from modelcycle.sources import Source
from modelcycle.steps import drift as dr

if TYPE_CHECKING:
    from modelcycle.registry.base import Registry

log = logging.getLogger(__name__)

#: The name the champion's predictions are reported under (``champion_prediction`` when a
#: declared column already has this name).
PREDICTION = "prediction"
#: What a payload or a line says the figures come from.
SOURCE_NAME = "prediction log"


def _utc(moment: datetime) -> pd.Timestamp:
    """``moment`` as a UTC timestamp (a naive one is taken as UTC, as sources give theirs)."""
    return pd.Timestamp(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC))


def log_files(ws: Workspace, since: datetime) -> list[Path]:
    """The prediction log's files of the UTC days from ``since``'s on (none without a log)."""
    day = f"date={_utc(since):%Y-%m-%d}"
    root = predictions_dir(ws.root)
    try:
        folders = [f for f in root.iterdir() if f.name.startswith("date=") and f.name >= day]
    except OSError:
        return []
    return sorted(p for f in folders for p in f.glob("part-*.parquet"))


def fingerprint(files: list[Path]) -> tuple[int, str]:
    """What changes when rows are logged: how many files, and the newest one's name (a file is
    never rewritten: a flush adds one)."""
    return len(files), max((f.name for f in files), default="")


def logged_rows(ws: Workspace, since: datetime, version: str, files: list[Path] | None = None) -> pd.DataFrame:
    """The log's rows from ``since`` on answered by champion ``version`` (an empty frame when
    there are none); a file that cannot be read is left out and logged."""
    frames, notes = read_files(files if files is not None else log_files(ws, since))
    for note in notes:
        log.warning("the prediction log: %s", note)
    frames = [f for f in frames if {"time", "champion_version"} <= set(f.columns)]
    if not frames:
        return pd.DataFrame()
    rows = harmonise(frames)
    at = pd.to_datetime(rows["time"], utc=True)
    return rows[(at >= _utc(since)) & (rows["champion_version"].astype(str) == str(version))].reset_index(drop=True)


def prediction_name(ws: Workspace) -> str:
    return PREDICTION if PREDICTION not in ws.config.data.columns else "champion_prediction"


def compare(ws: Workspace, reference: pd.DataFrame, logged: pd.DataFrame) -> dr.DriftReport:
    """The drift of ``logged`` (the log's rows) from ``reference`` (training rows): the logged
    inputs column by column and the champion's predictions against the target."""
    target = ws.config.data.target
    inputs = {c: kind for c, kind in ws.config.drift_columns().items()
              if c != target and INPUT_PREFIX + c in logged.columns and c in reference.columns}
    name = prediction_name(ws)
    current = pd.DataFrame({c: logged[INPUT_PREFIX + c] for c in inputs})
    current[name] = logged["champion_prediction"].to_numpy()
    ref = reference[list(inputs)].copy()
    ref[name] = reference[target].to_numpy()
    kinds = {**inputs, name: ws.config.data.columns[target]}
    return dr.drift_report(ref, current, kinds, threshold=ws.config.drift.threshold)


def served_drift(ws: Workspace, source: Source, since: datetime, *, registry: Registry | None = None,
                 champion: ModelVersion | None = None, files: list[Path] | None = None) -> dr.DriftReport | None:
    """The drift of the requests the current champion answered since ``since`` (see the module).
    None when ``drift.enabled`` is off, there is no champion or no log, or the log holds fewer
    than ``drift.min_rows`` of its rows since then. The champion's training rows are fetched
    once per champion version. Errors (a source that does not answer) raise."""
    cfg = ws.config.drift
    if not cfg.enabled:
        return None
    if champion is None:
        if registry is None:
            from modelcycle.registry.workspace import open_registry

            registry = open_registry(ws)
        champion = registry.get_alias(ws.config.name, CHAMPION)
    if champion is None:
        return None
    logged = logged_rows(ws, since, champion.version, files)
    if len(logged) < cfg.min_rows:
        return None
    reference = reference_rows(ws, source, champion)
    if len(reference) < cfg.min_rows:
        return None
    return compare(ws, reference, logged)

