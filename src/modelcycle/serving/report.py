"""The shadow report: both models scored on the same live requests, once their labels arrive.

The prediction log (:mod:`modelcycle.serving.shadow`) holds, for every served request row, the
champion's and the challenger's predictions and the request's key columns (``serve.key_columns``).
The labels arrive later in the workspace's source, as rows with the same key. This module reads
the log (all of it, or the days since a date), fetches rows from the source over the time the log
covers, joins them on the key columns and, for each (champion version, challenger version) pair
that served, scores both models with the workspace's metric and computes the paired interval of
the challenger's improvement: the same metric functions (:mod:`modelcycle.steps.evaluate`) and the
same paired bootstrap (:func:`modelcycle.gate.stats.improvement_interval`) the gate decides with.

Only rows with a label and both predictions are compared; rows whose label has not arrived are
counted and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.config import ProjectConfig, Window, Workspace
from modelcycle.errors import ConfigError, WorkspaceError
from modelcycle.gate.stats import Interval, improvement_interval
from modelcycle.serving.shadow import INPUT_PREFIX, LOG_COLUMNS, harmonise, predictions_dir, read_files
from modelcycle.sources import Source, build_source
from modelcycle.steps.evaluate import METRICS, Scores, metric_value

#: How to turn shadow scoring on (the hint of a report without a log).
ENABLE_HINT = ("turn shadow scoring on in modelcycle.yaml (`serve: {shadow: true, key_columns: [YOUR_ID_COLUMN]}`), "
               "give the registered model a challenger, and run `modelcycle serve`: each request it answers is "
               "then logged with both models' predictions")

_MARGIN = timedelta(days=1)   # read labels this long before the first and after the last request


@dataclass(frozen=True)
class ShadowSettings:
    """What the report reads of modelcycle.yaml's ``serve:`` section."""

    shadow: bool = False
    key_columns: tuple[str, ...] = ()
    label_column: str | None = None


def shadow_settings(config: ProjectConfig) -> ShadowSettings:
    """``serve.shadow``, ``serve.key_columns`` and ``serve.label_column`` (defaults without a
    ``serve:`` section)."""
    serve = getattr(config, "serve", None)
    if serve is None:
        return ShadowSettings()
    return ShadowSettings(shadow=bool(getattr(serve, "shadow", False)),
                          key_columns=tuple(getattr(serve, "key_columns", None) or ()),
                          label_column=getattr(serve, "label_column", None))


@dataclass
class PairReport:
    """One (champion version, challenger version) pair of the log, scored on its labelled rows."""

    champion_version: str
    challenger_version: str | None
    requests: int
    rows: int
    labelled: int
    compared: int
    first: str
    last: str
    champion: float | None = None
    challenger: float | None = None
    interval: Interval | None = None
    reading: str = ""

    @property
    def difference(self) -> float | None:
        """The challenger's metric minus the champion's."""
        if self.champion is None or self.challenger is None:
            return None
        return self.challenger - self.champion

    def to_dict(self) -> dict[str, Any]:
        return {"champion_version": self.champion_version, "challenger_version": self.challenger_version,
                "requests": self.requests, "rows": self.rows, "labelled": self.labelled,
                "compared": self.compared, "first": self.first, "last": self.last,
                "champion": _finite(self.champion), "challenger": _finite(self.challenger),
                "difference": _finite(self.difference),
                "interval": _clean(self.interval.to_dict()) if self.interval else None, "reading": self.reading}


@dataclass
class ShadowReport:
    model: str
    metric: str
    label: str
    keys: list[str]
    source: str
    labels_from: datetime
    labels_to: datetime
    since: date | None
    files: int
    rows: int
    labelled: int
    pairs: list[PairReport]
    notes: list[str] = field(default_factory=list)

    @property
    def unlabelled(self) -> int:
        return self.rows - self.labelled

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "metric": self.metric, "label": self.label, "keys": self.keys,
                "source": self.source, "labels_from": self.labels_from.isoformat(),
                "labels_to": self.labels_to.isoformat(),
                "since": self.since.isoformat() if self.since else None, "files": self.files, "rows": self.rows,
                "labelled": self.labelled, "unlabelled": self.unlabelled,
                "pairs": [p.to_dict() for p in self.pairs], "notes": list(self.notes)}


# the log ------------------------------------------------------------------------------------------


def read_log(root: Path, since: date | None = None) -> tuple[pd.DataFrame, int, list[str]]:
    """The prediction log under ``root`` (rows of the days from ``since`` on), the number of files
    read, and notes on files that could not be read. WorkspaceError when there is no log."""
    files = sorted(root.glob("date=*/part-*.parquet"))
    if not files:
        raise WorkspaceError(f"no prediction log yet: {root} holds no logged request", ENABLE_HINT)
    if since is not None:
        files = [f for f in files if f.parent.name.removeprefix("date=") >= since.isoformat()]
    frames, notes = read_files(files)
    if not frames:
        after = f" on or after {since.isoformat()}" if since else ""
        raise WorkspaceError(f"the prediction log {root} holds no request{after}",
                             "give an earlier --since, or leave it out to read the whole log" if since
                             else ENABLE_HINT)
    log = harmonise(frames)
    log["time"] = pd.to_datetime(log["time"], utc=True)
    if since is not None:
        log = log[log["time"] >= pd.Timestamp(since, tz="UTC")].reset_index(drop=True)
    return log, len(frames), notes


# labels -------------------------------------------------------------------------------------------


def label_range(log: pd.DataFrame, config: ProjectConfig, keys: list[str]) -> tuple[datetime, datetime]:
    """The time range of source rows that may hold the log's labels: the logged timestamps' range
    when the timestamp column is a key, else the requests' days with a day's margin each side."""
    ts = config.data.timestamp
    if ts in keys:
        stamps = _datetimes(log[ts]).dropna()
        if len(stamps):
            return stamps.min().to_pydatetime(), stamps.max().to_pydatetime() + timedelta(seconds=1)
    times = log["time"].dt.tz_convert("UTC").dt.tz_localize(None)
    return times.min().to_pydatetime() - _MARGIN, times.max().to_pydatetime() + _MARGIN


def fetch_labels(source: Source, start: datetime, end: datetime, *, keys: list[str],
                 label: str) -> tuple[pd.DataFrame, list[str]]:
    """The source's rows of [start, end) reduced to the key columns and the label, one row per
    key (the last one, when a key comes more than once: noted), rows without a label left out."""
    rows = source.fetch(start, end)
    missing = [c for c in keys if c not in rows.columns]
    if missing:
        raise ConfigError(f"the key column(s) {', '.join(missing)} of modelcycle.yaml's `serve.key_columns` are "
                          f"not in {source.describe()} (it has: {', '.join(map(str, rows.columns))})",
                          "name columns that both the requests and the source's labelled rows hold")
    if label not in rows.columns:
        raise ConfigError(f"the label column '{label}' is not in {source.describe()} "
                          f"(it has: {', '.join(map(str, rows.columns))})",
                          "set `serve.label_column` in modelcycle.yaml (it defaults to `data.target`)")
    labels = rows[[*keys, label]].dropna(subset=[*keys, label])
    notes = []
    repeated = labels.duplicated(subset=keys, keep="last")
    if repeated.any():
        notes.append(f"{int(repeated.sum())} labelled row(s) of the source repeat a key: the last one's label "
                     "is used")
        labels = labels[~repeated]
    return labels.reset_index(drop=True), notes


def _datetimes(values: pd.Series) -> pd.Series:
    out = pd.to_datetime(values, errors="coerce", utc=True)
    return out.dt.tz_localize(None)


def _comparable(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The key column of the log (``a``) and of the source (``b``) as values that compare equal
    when they mean the same key: times as UTC times, numbers as numbers (a CSV source reads text),
    anything else as text."""
    dt = pd.api.types.is_datetime64_any_dtype

    def num(s: pd.Series) -> bool:
        return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)

    if dt(a) or dt(b):
        if not (num(a) or num(b)):
            return _datetimes(a), _datetimes(b)
    elif num(a) or num(b):
        x, y = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
        if x.isna().sum() == a.isna().sum() and y.isna().sum() == b.isna().sum():
            if pd.api.types.is_integer_dtype(x) and pd.api.types.is_integer_dtype(y):
                return x, y
            return x.astype("float64"), y.astype("float64")
    return _text(a), _text(b)


def _text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                      ).astype(object)


def join(log: pd.DataFrame, labels: pd.DataFrame, keys: list[str], label: str) -> pd.DataFrame:
    """The log with a ``__label`` column: the source's label of each row's key, null when it has
    not arrived."""
    left, right = pd.DataFrame(index=log.index), pd.DataFrame(index=labels.index)
    for i, key in enumerate(keys):
        left[f"__k{i}"], right[f"__k{i}"] = _comparable(log[key], labels[key])
    right["__label"] = labels[label].to_numpy()
    on = [f"__k{i}" for i in range(len(keys))]
    # keys that differ in the source but mean the same ("7" and "7.0" in a CSV) keep the last label
    right = right.dropna(subset=on).drop_duplicates(subset=on, keep="last")
    merged = left.merge(right, on=on, how="left")   # the log's rows, in order, one each
    out = log.copy()
    out["__label"] = merged["__label"].to_numpy()
    return out


# scoring --------------------------------------------------------------------------------------


def _values(series: pd.Series, regression: bool) -> np.ndarray:
    if regression:
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
    return series.to_numpy()


def _classes(*arrays: np.ndarray) -> list[Any]:
    values = pd.unique(np.concatenate([np.asarray(a, dtype=object) for a in arrays]))
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def _same_kind(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class labels that compare: numbers when all three read as numbers, else text."""
    try:
        y2, a2, b2 = (pd.to_numeric(pd.Series(v), errors="raise").to_numpy() for v in (y, a, b))
    except (ValueError, TypeError):
        y2, a2, b2 = (np.array([str(x) for x in v], dtype=object) for v in (y, a, b))
    return y2, a2, b2


def _reading(pair: PairReport) -> str:
    n = pair.compared
    if pair.challenger_version is None:
        return "no challenger was scored on these requests"
    if not pair.labelled:
        return f"no label has arrived yet for these {pair.rows} rows"
    if n == 0:
        return "the challenger predicted none of the labelled rows"
    if pair.interval is None or not (math.isfinite(pair.interval.low) and math.isfinite(pair.interval.high)):
        return f"too few rows for an interval ({n} live row{'s' if n != 1 else ''})"
    if pair.interval.low > 0:
        return f"the challenger is better on {n} live rows"
    if pair.interval.high < 0:
        return f"the challenger is worse on {n} live rows"
    return f"no clear difference on {n} live rows"


def score_pair(group: pd.DataFrame, config: ProjectConfig, versions: tuple[str, str | None]) -> PairReport:
    """Both models' metric and the paired interval of the improvement, on the group's rows that
    have a label and both predictions."""
    metric = config.metric
    labelled = group["__label"].notna()
    both = labelled & group["champion_prediction"].notna() & group["challenger_prediction"].notna()
    times = group["time"]
    pair = PairReport(champion_version=versions[0], challenger_version=versions[1],
                      requests=int(group["request_id"].nunique()), rows=len(group), labelled=int(labelled.sum()),
                      compared=int(both.sum()), first=times.min().isoformat(), last=times.max().isoformat())
    rows = group[both]
    if len(rows) and versions[1] is not None and not METRICS[metric].needs_proba:
        regression = config.data.task == "regression"
        y, a, b = (_values(rows[c], regression) for c in ("__label", "champion_prediction", "challenger_prediction"))
        if regression:
            ok = np.isfinite(y) & np.isfinite(a) & np.isfinite(b)
            y, a, b = y[ok], a[ok], b[ok]
            pair.compared = len(y)
        else:
            y, a, b = _same_kind(y, a, b)
        classes = None if regression else _classes(y, a, b)
        if len(y):
            with np.errstate(all="ignore"):
                champion = Scores(metric, metric_value(metric, y, a, None, classes), len(y), y_true=y, y_pred=a,
                                  classes=classes)
                challenger = Scores(metric, metric_value(metric, y, b, None, classes), len(y), y_true=y, y_pred=b,
                                    classes=classes)
            pair.champion, pair.challenger = champion.value, challenger.value
            if len(y) >= 2:
                gate = config.gate
                with np.errstate(all="ignore"):
                    pair.interval = improvement_interval(champion, challenger, confidence=gate.confidence,
                                                         resamples=gate.resamples, seed=gate.seed, method=gate.method)
    pair.reading = _reading(pair)
    return pair


def compare(joined: pd.DataFrame, config: ProjectConfig) -> list[PairReport]:
    """One report per (champion version, challenger version) pair, in the order they served."""
    pairs = []
    keyed = joined.assign(__champ=joined["champion_version"].map(_version),
                          __chall=joined["challenger_version"].map(_version))
    for (champ, chall), group in keyed.groupby(["__champ", "__chall"], dropna=False, sort=False):
        pairs.append(score_pair(group, config, (str(champ), None if _absent(chall) else str(chall))))
    return sorted(pairs, key=lambda p: p.first)


def _version(value: Any) -> Any:
    return None if _absent(value) else str(value)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# the whole report ---------------------------------------------------------------------------------


def shadow_report(ws: Workspace, *, since: date | None = None, labels_window: Window | None = None,
                  source: Source | None = None) -> ShadowReport:
    """Read the workspace's prediction log, fetch the labels from its source, and score both models
    on the labelled rows of each version pair."""
    config = ws.config
    settings = shadow_settings(config)
    keys = list(settings.key_columns)
    if not keys:
        raise ConfigError(
            "modelcycle.yaml's `serve.key_columns` is empty: the shadow report joins the prediction log with the "
            "labels in the source on those columns",
            "list the request columns that identify a row in the source, e.g. `serve: {key_columns: [trip_id]}` "
            "(the server copies them into the log from then on)")
    label = settings.label_column or config.data.target
    log, files, notes = read_log(predictions_dir(ws.root), since)
    absent = [k for k in keys if k not in log.columns]
    if absent:
        raise ConfigError(f"the prediction log has no column {', '.join(absent)} of modelcycle.yaml's "
                          f"`serve.key_columns` (it has: {', '.join(_keys_of(log))})",
                          "the log was written with other key columns: set `serve.key_columns` back, or restart "
                          "`modelcycle serve` and report on the days logged since (--since)")
    if labels_window is not None:
        start, end = labels_window.start, labels_window.end
    else:
        start, end = label_range(log, config, keys)
    source = source or build_source(config, ws.root)
    labels, more = fetch_labels(source, start, end, keys=keys, label=label)
    joined = join(log, labels, keys, label)
    pairs = compare(joined, config)
    if METRICS[config.metric].needs_proba:
        notes.append(f"the log holds predicted labels, not class probabilities: {config.metric} cannot be "
                     "computed from it")
    return ShadowReport(model=config.name, metric=config.metric, label=label, keys=keys, source=source.describe(),
                        labels_from=start, labels_to=end, since=since, files=files, rows=len(log),
                        labelled=int(joined["__label"].notna().sum()), pairs=pairs, notes=notes + more)


def _keys_of(log: pd.DataFrame) -> list[str]:
    """The key columns the log was written with (neither its own columns nor logged inputs)."""
    return [c for c in log.columns if c not in LOG_COLUMNS and not str(c).startswith(INPUT_PREFIX)]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in values.items()}
