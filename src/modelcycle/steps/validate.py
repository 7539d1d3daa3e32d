"""Validate a frame against the workspace's data contract.

Three kinds of problems, treated differently:

* **schema** (a column missing, or a column none of whose values is of the declared type: it is
  really another column or another type): the cycle stops with a
  :class:`~modelcycle.errors.SchemaError` naming the column, the declared type, example values
  and the fix;
* **cells** (a value that does not parse as its column's declared type: ``'1O.5'`` in a float
  column, ``2.5`` in an int column, ``'yesterday'`` in a datetime column): the row is dropped and
  counted under ``"<column> is not a float"`` (``an int``, ``a datetime``, ``a bool``), with a
  few example values in the report;
* **values** (a row outside ``min``/``max``, not in ``allowed``, empty where ``not_null``, or an
  exact copy of an earlier row in every declared column, ``"duplicate row"``): the row is
  dropped, and every rule reports how many rows it dropped;
* **images** (image columns, :mod:`modelcycle.steps.imagecheck`): an empty cell (unless not_null is
  false), a missing, unreadable or cut-short file, bytes equal to an earlier row's, or a broken
  size/min_size/max_size/modes rule: the row is dropped and counted per rule, with a few file names.

A classification window is checked as a whole too: a class that ``rules.<target>.allowed`` lists
and the window's valid rows lack (``empty_classes``), or a largest class more than
``data.max_class_ratio`` times the smallest (``class_imbalance``; 10 by default with an image
column, no limit for tables), is a problem of the window, reported in ``window_problems``;
:meth:`ValidationReport.suspect` then says the window is suspect, as when too many of its rows
were dropped (``data.max_invalid_fraction``), and the gate never promotes on it.

Empty cells are not of a wrong type: besides a missing value, text that only says "nothing here"
(``''``, ``'NA'``, ``'N/A'``, ``'null'``, ``'NaN'``, ... -- what ``pandas.read_csv`` reads as
missing) counts as empty, and ``not_null`` decides about the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.config.models import DataConfig, RuleConfig
from modelcycle.errors import EmptyWindowError, SchemaError
from modelcycle.steps import frames, imagecheck, repeats
from modelcycle.steps.validation_report import ValidationReport as ValidationReport  # validate()'s report

_EXAMPLES = 3

#: The label of the rule that drops exact copies of an earlier row (every declared column equal).
DUPLICATE_ROW = "duplicate row"
#: ``frame.attrs`` key a source sets for rows it read but could not place in time:
#: ``{timestamp column: (rows, [a few of their values])}``; validation counts them as dropped.
UNPLACED = "modelcycle_unplaced"

#: Text that means "no value" (pandas.read_csv's default missing markers), compared stripped.
_MISSING_TEXT = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})

_ARTICLE = {"int": "an"}


def type_label(name: str, kind: str) -> str:
    """The label under which rows whose ``name`` cell is not a ``kind`` are counted."""
    return f"{name} is not {_ARTICLE.get(kind, 'a')} {kind}"


def _example_list(values: pd.Series) -> list[str]:
    """A few distinct values as the user would write them ('1O.5', 2.5), not numpy's reprs."""
    return [repr(v.item() if isinstance(v, np.generic) else v) for v in values.dropna().unique()[:_EXAMPLES]]


def _examples(values: pd.Series) -> str:
    return ", ".join(_example_list(values)) or "(empty)"


def _is_text(col: pd.Series) -> bool:
    return col.dtype == object or pd.api.types.is_string_dtype(col)


def _empty(col: pd.Series) -> pd.Series:
    """Cells without a value: missing, or text that only says so ('', 'NA', 'null', ...)."""
    empty = col.isna()
    if _is_text(col) and (~empty).any():
        text = col[~empty].astype(str).str.strip()
        empty = empty.copy()
        empty[~empty] = text.isin(_MISSING_TEXT).to_numpy()
    return empty.astype(bool)


@dataclass
class _Parsed:
    """A column parsed as its declared type: ``values`` (empty where the cell is empty or bad),
    ``bad`` (a non-empty cell that is not of the type) and ``empty`` (no value at all)."""

    values: pd.Series
    bad: pd.Series
    empty: pd.Series
    numeric: pd.Series | None = None  # int columns: the numbers before whole-number checking


def _none(col: pd.Series) -> pd.Series:
    return pd.Series(False, index=col.index)


def _all_numbers(col: pd.Series) -> pd.Series:
    """The column as floats, or ValueError if a cell is not a number (nor empty)."""
    if isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        # Arrow's cast parses text about 8x faster than pandas (CSV columns arrive as text)
        floats = pc.cast(pa.array(col), pa.float64()).to_numpy(zero_copy_only=False)
        return pd.Series(floats, index=col.index, name=col.name)
    return col.astype("float64")


def _parse_number(col: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(col):
        col = col.astype("float64")
    if pd.api.types.is_numeric_dtype(col):
        numeric = col.astype("float64")
        return numeric, _none(col), numeric.isna()
    try:  # every cell a number or empty (the common case): fast
        numeric = _all_numbers(col)
        return numeric, _none(col), numeric.isna()
    except (TypeError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        pass
    numeric = pd.to_numeric(col, errors="coerce").astype("float64")
    empty = _empty(col)
    return numeric, numeric.isna() & ~empty, empty


def _plain_ints(col: pd.Series) -> bool:
    """A numpy integer column whose values a float64 holds exactly (what the float path gives)."""
    if not (isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu") or col.dtype == np.uint64:
        return False
    return col.dtype.itemsize <= 4 or not len(col) or (int(col.min()) >= -(2**53) and int(col.max()) <= 2**53)


def _parse(col: pd.Series, kind: str) -> _Parsed:
    if kind == "float":
        numeric, bad, empty = _parse_number(col)
        return _Parsed(numeric, bad, empty)
    if kind == "int":
        if _plain_ints(col):  # already whole numbers without gaps: the column as it is, not a copy
            return _Parsed(col.astype("int64"), _none(col), _none(col))
        numeric, bad, empty = _parse_number(col)
        values = numeric.to_numpy()
        with np.errstate(invalid="ignore"):
            not_whole = ~np.isnan(values) & ~(np.isfinite(values) & (np.mod(values, 1) == 0))
        bad = bad | pd.Series(not_whole, index=col.index)
        return _Parsed(numeric.mask(bad), bad, empty, numeric=numeric)
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(col):
            ts, bad, empty = col, _none(col), col.isna()
        else:
            ts = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
            empty = _empty(col) if ts.isna().any() else col.isna()
            bad = ts.isna() & ~empty
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        return _Parsed(ts.astype("datetime64[ns]"), bad, empty)
    if kind == "bool":
        if pd.api.types.is_bool_dtype(col):
            return _Parsed(col, _none(col), col.isna())
        def to_bool(v: Any) -> Any:
            if isinstance(v, (bool, np.bool_)):
                return bool(v)
            if isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
                return bool(v)
            text = str(v).strip().lower()
            return True if text in _TRUE else False if text in _FALSE else None
        empty = _empty(col)
        mapped = col.where(~empty).map(to_bool, na_action="ignore")
        bad = mapped.isna() & ~empty
        return _Parsed(mapped, bad, empty)
    if kind == "image":  # a path, bytes or base64 text: taken as it is (the image checks open it)
        if col.dtype == object:  # duplicate rows are found by hash: a bytearray or a Pillow image has none
            col = col.map(_hashable_image)
        return _Parsed(col, _none(col), col.isna())
    # str / category: anything can be text
    text: pd.Series = col.astype("string") if kind == "str" else col.astype("category")
    return _Parsed(text, _none(col), col.isna())


def _hashable_image(cell: Any) -> Any:
    """An image cell as a value that hashes: a bytearray as bytes, a Pillow image as its PNG's bytes."""
    if isinstance(cell, (bytearray, memoryview)):
        return bytes(cell)
    if type(cell).__module__.startswith("PIL."):
        from modelcycle.steps import images

        return images.cell_bytes(cell)
    return cell


def _final(parsed: _Parsed, kind: str) -> pd.Series:
    """The declared type's pandas dtype, once the rows with bad cells are set aside."""
    values = parsed.values
    if kind == "int":
        return values.astype("Int64").astype("float64") if values.isna().any() else values.astype("int64")
    if kind == "bool" and not values.isna().any():
        return values.astype(bool)
    return values


def _wrong_column(frame: pd.DataFrame, name: str, kind: str, parsed: _Parsed, where: str) -> SchemaError:
    """The error for a column that has no value of its declared type at all."""
    col = frame[name]
    at = f" {where}" if where else ""
    shown = _examples(col[parsed.bad])
    n = int(parsed.bad.sum())
    if kind == "int" and parsed.numeric is not None and parsed.numeric[parsed.bad].notna().any():
        return SchemaError(
            f"column '{name}'{at} should be int, but none of its {n} values is a whole number "
            f"(it holds fractions such as {_examples(parsed.numeric[parsed.bad])})",
            f"declare it as `{name}: float` in modelcycle.yaml data.columns",
            column=name, rule="type int")
    hints = {
        "datetime": "is it the right column? Write timestamps as ISO 8601 (2015-03-01 08:30:00), "
                    f"or declare it as `{name}: str` in modelcycle.yaml data.columns",
        "bool": f"is it the right column? Write true/false (or 1/0, yes/no), or declare it as "
                f"`{name}: str` in modelcycle.yaml data.columns",
    }
    return SchemaError(
        f"column '{name}'{at} should be {kind}, but none of its {n} values is "
        f"{_ARTICLE.get(kind, 'a')} {kind}, e.g. {shown}",
        hints.get(kind, f"is it the right column? Fix the column's type in the source, or declare "
                        f"it as `{name}: str` in modelcycle.yaml data.columns"),
        column=name, rule=f"type {kind}")


def missing_columns(missing: list[str], have: list[Any], where: str = "", *, source: str = "",
                    gives: str = "the source gives",
                    hint: str = "rename the column in the source (or its query), or fix data.columns in "
                                "modelcycle.yaml") -> SchemaError:
    """The error for declared columns a frame (``where``: "(window 2015-03)") or a source
    (``source``: "from CSV files ...") lacks: the first one named, the rest listed, and up to
    twelve of the columns there are."""
    at = f" {where}" if where else ""
    shown = ", ".join(map(str, have[:12])) + (" ..." if len(have) > 12 else "")
    return SchemaError(
        f"column '{missing[0]}'{at} is missing{' ' + source if source else ''}"
        + (f" (and {', '.join(missing[1:])})" if len(missing) > 1 else "")
        + f"; {gives}: {shown}", hint, column=missing[0], rule="required")


def _require(frame: pd.DataFrame, columns: Mapping[str, str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise missing_columns(missing, list(frame.columns), where)


def check_schema(frame: pd.DataFrame, columns: Mapping[str, str], *, where: str = "") -> pd.DataFrame:
    """Return the declared columns (name -> type) with their declared types, or raise SchemaError
    at the first cell that is not of its column's type (records to predict: every one counts)."""
    _require(frame, columns, where)
    at = f" {where}" if where else ""
    out = pd.DataFrame(index=frame.index)
    for name, kind in columns.items():
        parsed = _parse(frame[name], kind)
        if parsed.bad.any():
            col = frame[name]
            text_bad = parsed.bad if parsed.numeric is None else parsed.bad & parsed.numeric.isna()
            if kind == "int" and parsed.numeric is not None and not text_bad.any():
                raise SchemaError(
                    f"column '{name}'{at} should be int but holds fractions such as "
                    f"{_examples(parsed.numeric[parsed.bad])}",
                    f"declare it as `{name}: float` in modelcycle.yaml data.columns",
                    column=name, rule="type int")
            raise SchemaError(
                f"column '{name}'{at} should be {kind} but holds {col.dtype} values "
                f"such as {_examples(col[text_bad])}",
                f"fix the column's type in the source, or declare it as "
                f"`{name}: str` in modelcycle.yaml data.columns",
                column=name, rule=f"type {kind}")
        out[name] = _final(parsed, kind)
    return out


def _typed(frame: pd.DataFrame, columns: Mapping[str, str], where: str
           ) -> tuple[pd.DataFrame, list[tuple[str, pd.Series, list[str]]]]:
    """The declared columns with their declared types, and per column whose cells do not all
    parse: (label, rows with a bad cell, example values). A column with no value of its type
    at all raises SchemaError."""
    _require(frame, columns, where)
    out = pd.DataFrame(index=frame.index)
    failures: list[tuple[str, pd.Series, list[str]]] = []
    for name, kind in columns.items():
        parsed = _parse(frame[name], kind)
        if parsed.bad.any():
            if not (~parsed.bad & ~parsed.empty).any():
                raise _wrong_column(frame, name, kind, parsed, where)
            failures.append((type_label(name, kind), parsed.bad, _example_list(frame[name][parsed.bad])))
        out[name] = _final(parsed, kind)
    return out, failures


def _allowed(col: pd.Series, kind: str, allowed: list[Any]) -> pd.Series:
    """Cells among ``allowed``: text and category cells compared as text (a class folder '3' is
    the 3 of ``allowed: [3]``)."""
    if kind in ("str", "category"):
        return col.astype(object).map(str, na_action="ignore").isin({str(a) for a in allowed})
    return col.isin(allowed)


def _rule_masks(col: pd.Series, name: str, rule: RuleConfig, kind: str) -> list[tuple[str, pd.Series]]:
    masks: list[tuple[str, pd.Series]] = []
    if rule.not_null:
        masks.append((f"{name} is empty", col.isna()))
    if rule.min is not None:
        masks.append((f"{name} < {rule.min:g}", col < rule.min))
    if rule.max is not None:
        masks.append((f"{name} > {rule.max:g}", col > rule.max))
    if rule.allowed is not None:
        masks.append((f"{name} not in {rule.allowed}", ~_allowed(col, kind, rule.allowed) & col.notna()))
    return masks


def validate(frame: pd.DataFrame, data: DataConfig, *, window_start: datetime | None = None,
             where: str = "") -> tuple[pd.DataFrame, ValidationReport]:
    """:func:`validate_rows` without the kept rows' mask."""
    return validate_rows(frame, data, window_start=window_start, where=where)[:2]


def validate_rows(frame: pd.DataFrame, data: DataConfig, *, window_start: datetime | None = None,
                  where: str = "") -> tuple[pd.DataFrame, ValidationReport, np.ndarray]:
    """Check the schema, drop rows whose cells are not of their declared type, that break a
    value rule or that repeat an earlier row, and report the counts.

    Rows at or after ``window_start`` are the window's; the rest are history. The target and
    the timestamp must never be empty. Rows are returned sorted by the timestamp, with a boolean
    mask of ``frame``'s rows, by position, true for the rows kept.
    """
    typed, keep, report = row_mask(frame, data, window_start=window_start, where=where)
    return kept_rows(typed, keep, data), report, keep.to_numpy(dtype=bool)


def kept_rows(typed: pd.DataFrame, keep: pd.Series, data: DataConfig) -> pd.DataFrame:
    """The rows ``keep`` marks, sorted by the timestamp (stable), indexed from 0: one copy of the
    kept rows at most (none when every row is kept; run by run when few are dropped), and no
    sort when they arrive in order (a source that reads in time order)."""
    rows = typed if bool(keep.all()) else frames.kept(typed, keep.to_numpy(dtype=bool))
    if not rows[data.timestamp].is_monotonic_increasing:
        rows = rows.sort_values(data.timestamp, kind="stable")
    clean = rows.reset_index(drop=True)
    for name, kind in data.columns.items():  # ints whose bad cells were set aside are whole again
        if kind == "int" and clean[name].dtype == "float64" and not clean[name].isna().any():
            clean[name] = clean[name].astype("int64")
    return clean


def row_mask(frame: pd.DataFrame, data: DataConfig, *, window_start: datetime | None = None,
             where: str = "") -> tuple[pd.DataFrame, pd.Series, ValidationReport]:
    """The checks of :func:`validate` without taking the rows: the declared columns with their
    declared types (columns already of their type are the frame's own, not copies), the mask of
    the rows to keep (on ``frame``'s index) and the report. Each rule is a vectorised mask."""
    typed, failures = _typed(frame, data.columns, where)
    keep = pd.Series(True, index=typed.index)
    dropped: dict[str, int] = {}
    examples: dict[str, list[str]] = {}

    def drop(label: str, mask: pd.Series) -> None:
        nonlocal keep
        mask = mask.fillna(False).astype(bool)
        newly = int((mask & keep).sum())
        if newly:
            dropped[label] = dropped.get(label, 0) + newly
        keep &= ~mask

    for label, bad, shown in failures:
        drop(label, bad)
        if label in dropped:
            examples[label] = shown
    rules = dict(data.rules)
    image_columns = [n for n, kind in data.columns.items() if kind == "image"]  # an empty image is no image
    for must in (data.target, data.timestamp, *image_columns):
        rules.setdefault(must, RuleConfig())
    for name, rule in rules.items():
        for label, mask in _rule_masks(typed[name], name, rule, data.columns[name]):
            drop(label, mask)
    for name in (n for n, kind in data.columns.items() if kind == "image"):
        live = keep & typed[name].notna()
        if not live.any():
            continue
        order = typed.loc[live, data.timestamp].sort_values(kind="stable").index
        for label, mask, shown in imagecheck.rule_masks(typed.loc[order, name], name, data.rules.get(name)):
            drop(label, mask.reindex(typed.index, fill_value=False))
            if label in dropped:
                examples.setdefault(label, shown)
    if keep.any():  # among the kept rows (no copy of them)
        again = repeats.repeated(typed, keep.to_numpy(), order_by=data.timestamp)
        drop(DUPLICATE_ROW, pd.Series(again, index=typed.index))
    ts = typed[data.timestamp]
    in_window = (ts >= pd.Timestamp(window_start)) if window_start is not None else pd.Series(True, index=typed.index)
    rows_out = int(keep.sum())
    # rows the source read but could place in no window (their timestamp is not one): counted
    unplaced = dict(frame.attrs.get(UNPLACED) or {})
    for name, (rows, shown) in unplaced.items():
        label = type_label(name, "datetime")
        dropped[label] = dropped.get(label, 0) + int(rows)
        examples.setdefault(label, list(shown))
    report = ValidationReport(
        rows_in=len(typed) + sum(int(rows) for rows, _ in unplaced.values()), rows_out=rows_out,
        window_rows_in=int(in_window.sum()), window_rows_out=int((in_window & keep).sum()),
        dropped=dropped, examples=examples)
    if data.task == "classification" and report.window_rows_out:
        _check_classes(report, typed.loc[in_window & keep, data.target], data)
    if report.window_rows_in and not report.window_rows_out:
        worst = max(dropped.items(), key=lambda kv: kv[1])[0] if dropped else "?"
        raise EmptyWindowError(
            f"every one of the {report.window_rows_in} rows {where} failed validation "
            f"(most often: {worst})",
            "look at the source for this window, or relax data.rules in modelcycle.yaml")
    return typed, keep, report


def _check_classes(report: ValidationReport, labels: pd.Series, data: DataConfig) -> None:
    """The window-level checks of a classification window's valid ``labels`` (see the module)."""
    counts = labels.astype(object).map(str).value_counts()
    report.class_counts = {str(k): int(v) for k, v in counts.items()}
    target = data.target
    allowed = (data.rules.get(target) or RuleConfig()).allowed
    report.empty_classes = [str(a) for a in allowed or [] if str(a) not in report.class_counts]
    if report.empty_classes:
        n = len(report.empty_classes)
        report.window_problems.append(
            f"no valid rows of {'class' if n == 1 else 'classes'} {', '.join(report.empty_classes)} in the "
            f"window (data.rules.{target}.allowed lists {'it' if n == 1 else 'them'})")
    largest, smallest = str(counts.index[0]), str(counts.index[-1])
    report.class_imbalance = round(float(counts.iloc[0] / counts.iloc[-1]), 6)
    report.max_class_ratio = limit = data.class_ratio_limit()
    if limit is not None and report.class_imbalance > limit:
        report.window_problems.append(
            f"class imbalance: {counts.iloc[0]} valid rows of {target} '{largest}' vs {counts.iloc[-1]} of "
            f"'{smallest}' in the window ({report.class_imbalance:.1f} to 1, limit data.max_class_ratio "
            f"{limit:g})")
