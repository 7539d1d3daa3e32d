"""Validate a frame against the workspace's data contract.

Two kinds of problems, treated differently:

* **schema** (a column missing, or of a type that cannot be the declared one): the cycle stops
  with a :class:`~modelcycle.errors.SchemaError` naming the column and the rule;
* **values** (a row outside ``min``/``max``, not in ``allowed``, empty where ``not_null``): the
  row is dropped, and every rule reports how many rows it dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.config.models import DataConfig, RuleConfig
from modelcycle.errors import EmptyWindowError, SchemaError

_EXAMPLES = 3


def _examples(values: pd.Series) -> str:
    shown = [repr(v) for v in values.dropna().unique()[:_EXAMPLES]]
    return ", ".join(shown) if shown else "(empty)"


def _coerce(frame: pd.DataFrame, name: str, kind: str, where: str) -> pd.Series:
    col = frame[name]
    if kind in ("float", "int"):
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            numeric = pd.to_numeric(col, errors="coerce")
            bad = numeric.isna() & col.notna()
            if bad.any():
                raise SchemaError(
                    f"column '{name}' {where} should be {kind} but holds {col.dtype} values "
                    f"such as {_examples(col[bad])}",
                    f"fix the column's type in the source, or declare it as "
                    f"`{name}: str` in modelcycle.yaml data.columns",
                    column=name, rule=f"type {kind}")
            col = numeric
        if kind == "int":
            finite = col.dropna()
            if len(finite) and not np.all(np.mod(finite.to_numpy(dtype="float64"), 1) == 0):
                raise SchemaError(
                    f"column '{name}' {where} should be int but holds fractions such as "
                    f"{_examples(finite[np.mod(finite.to_numpy(dtype='float64'), 1) != 0])}",
                    f"declare it as `{name}: float` in modelcycle.yaml data.columns",
                    column=name, rule="type int")
            return col.astype("Int64").astype("float64") if col.isna().any() else col.astype("int64")
        return col.astype("float64")
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(col):
            ts = col
        else:
            ts = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
            bad = ts.isna() & col.notna()
            if bad.any():
                raise SchemaError(
                    f"column '{name}' {where} should be datetime but holds values such as "
                    f"{_examples(col[bad])}",
                    "write timestamps as ISO 8601 (2015-03-01 08:30:00), or fix the declared type",
                    column=name, rule="type datetime")
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        return ts.astype("datetime64[ns]")
    if kind == "bool":
        if pd.api.types.is_bool_dtype(col):
            return col
        mapped = col.map({True: True, False: False, 1: True, 0: False, "true": True,
                          "false": False, "1": True, "0": False})
        bad = mapped.isna() & col.notna()
        if bad.any():
            raise SchemaError(f"column '{name}' {where} should be bool but holds {_examples(col[bad])}",
                              column=name, rule="type bool")
        return mapped
    # str / category: anything can be text
    return col.astype("string") if kind == "str" else col.astype("category")


def check_schema(frame: pd.DataFrame, columns: Mapping[str, str], *, where: str = "") -> pd.DataFrame:
    """Return the declared columns (name -> type) with their declared types, or raise SchemaError."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:12])) + (" ..." if len(frame.columns) > 12 else "")
        raise SchemaError(
            f"column '{missing[0]}' {where} is missing"
            + (f" (and {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + f"; the source gives: {have}",
            "rename the column in the source (or its query), or fix data.columns in modelcycle.yaml",
            column=missing[0], rule="required")
    out = pd.DataFrame(index=frame.index)
    for name, kind in columns.items():
        out[name] = _coerce(frame, name, kind, where)
    return out


@dataclass
class ValidationReport:
    """How many rows came in and went out, and which rule dropped how many."""

    rows_in: int
    rows_out: int
    window_rows_in: int
    window_rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rows_dropped(self) -> int:
        return self.rows_in - self.rows_out

    @property
    def window_invalid_fraction(self) -> float:
        return 0.0 if not self.window_rows_in else 1 - self.window_rows_out / self.window_rows_in

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_dropped"] = self.rows_dropped
        d["window_invalid_fraction"] = round(self.window_invalid_fraction, 6)
        return d

    def summary(self) -> str:
        if not self.dropped:
            return f"{self.rows_in} rows, all valid"
        parts = ", ".join(f"{rule}: {n}" for rule, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]))
        return (f"{self.rows_dropped} of {self.rows_in} rows dropped ({parts}); "
                f"window: {self.window_invalid_fraction:.1%} invalid")


def _rule_masks(col: pd.Series, name: str, rule: RuleConfig) -> list[tuple[str, pd.Series]]:
    masks: list[tuple[str, pd.Series]] = []
    if rule.not_null:
        masks.append((f"{name} is empty", col.isna()))
    if rule.min is not None:
        masks.append((f"{name} < {rule.min:g}", col < rule.min))
    if rule.max is not None:
        masks.append((f"{name} > {rule.max:g}", col > rule.max))
    if rule.allowed is not None:
        masks.append((f"{name} not in {rule.allowed}", ~col.isin(rule.allowed) & col.notna()))
    return masks


def validate(frame: pd.DataFrame, data: DataConfig, *, window_start: datetime | None = None,
             where: str = "") -> tuple[pd.DataFrame, ValidationReport]:
    """Check the schema, drop rows that break a value rule, and report the counts.

    Rows at or after ``window_start`` are the window's; the rest are history. The target and
    the timestamp must never be empty. Rows are returned sorted by the timestamp.
    """
    typed = check_schema(frame, data.columns, where=where)
    keep = pd.Series(True, index=typed.index)
    dropped: dict[str, int] = {}
    rules = dict(data.rules)
    for must in (data.target, data.timestamp):
        rules.setdefault(must, RuleConfig())
    for name, rule in rules.items():
        for label, mask in _rule_masks(typed[name], name, rule):
            mask = mask.fillna(False).astype(bool)
            newly = int((mask & keep).sum())
            if newly:
                dropped[label] = dropped.get(label, 0) + newly
            keep &= ~mask
    ts = typed[data.timestamp]
    in_window = (ts >= pd.Timestamp(window_start)) if window_start is not None else pd.Series(True, index=typed.index)
    clean = typed[keep].sort_values(data.timestamp, kind="stable").reset_index(drop=True)
    report = ValidationReport(
        rows_in=len(typed), rows_out=len(clean),
        window_rows_in=int(in_window.sum()), window_rows_out=int((in_window & keep).sum()),
        dropped=dropped)
    if report.window_rows_in and not report.window_rows_out:
        worst = max(dropped.items(), key=lambda kv: kv[1])[0] if dropped else "?"
        raise EmptyWindowError(
            f"every one of the {report.window_rows_in} rows {where} failed validation "
            f"(most often: {worst})",
            "look at the source for this window, or relax data.rules in modelcycle.yaml")
    return clean, report
