"""A request body to checked columns: what ``POST /predict`` reads, and every client mistake
as an :class:`InputError` with an HTTP status, a code and the field (and row) it is about.

Bodies MLflow clients send are understood as they are: ``{"records": [...]}`` (modelcycle's own
form), ``{"dataframe_records": [...]}``, ``{"dataframe_split": {"columns": [...], "data":
[[...]]}}``, and CSV with ``Content-Type: text/csv``; any of the JSON forms may carry
``"params"`` (``{"output": "proba"}`` for class probabilities).

The hot path works column by column: JSON is parsed with orjson, each of the model's input
columns is gathered into one list, its value types are read with one ``set(map(type, ...))``
and the list becomes one NumPy array. Nothing is done per row in Python beyond gathering the
values, and pandas is not touched until the batch (several requests) is one frame. Only when a
column holds a wrong value is it searched for the first bad row, to name it.
"""

from __future__ import annotations

import io
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

#: The JSON value types each column kind takes (``None`` is JSON's null).
_NONE = type(None)
#: A column's values: a list or tuple from JSON, an object array from CSV.
Values = Any
_ALLOWED: dict[str, frozenset[type]] = {
    "float": frozenset({float, int, _NONE}),
    "int": frozenset({int, float, _NONE}),  # a float only when whole (3.0); null like `predict`
    "bool": frozenset({bool}),
    "str": frozenset({str, _NONE}),
    "datetime": frozenset({str, _NONE}),
    "bytes": frozenset({str}),
    "image": frozenset({str}),  # an image file's path, its base64 text or a data:image/...;base64, URI
}
_WORDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "text",
          "datetime": "a date and time (ISO 8601 text)", "bytes": "text",
          "image": "an image: a file path or base64 text", "any": "a value"}
_JSON_TYPES = {float: "a number", int: "a number", bool: "a boolean", str: "text", _NONE: "null",
               dict: "an object", list: "a list"}


class InputError(Exception):
    """A client's mistake: the HTTP ``status``, a short ``code``, the message, and the field
    (and first row) it is about when there is one."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 row: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.row = status, code, message, field, row

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        if self.row is not None:
            error["row"] = self.row
        return {"error": error}


def _bad_body(message: str) -> InputError:
    return InputError(400, "bad_body", message)


@dataclass
class Request:
    """A parsed body: values per column (lists from JSON, a frame's columns from CSV), the
    number of rows, and the params."""

    columns: Mapping[str, Values]
    rows: int
    params: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # every column the body has, in its order


FORMS = ("records", "dataframe_records", "dataframe_split")


def parse(body: bytes, content_type: str | None) -> Request:
    """Read a body by its content type (JSON unless it says CSV)."""
    kind = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if kind in ("text/csv", "application/csv"):
        return parse_csv(body)
    if kind in ("application/json", "text/json", "") or kind.endswith("+json"):
        return parse_json(body)
    raise InputError(415, "unsupported_media_type",
                     f"cannot read a body of type {kind}: send application/json (records, dataframe_records "
                     f"or dataframe_split) or text/csv")


def parse_json(body: bytes) -> Request:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "64-bit" not in str(exc):
            raise _bad_body(f"the body is not valid JSON: {exc}") from None
        import json  # a number beyond 64 bits: valid JSON, which the column check names

        doc = json.loads(body)
    if isinstance(doc, list):  # a bare list of records
        return _records(doc, "the body", {})
    if not isinstance(doc, dict):
        got = _JSON_TYPES.get(type(doc), type(doc).__name__)
        raise _bad_body(f"the body must be a JSON object with one of {', '.join(FORMS)}; got {got}")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(422, "invalid_params", "`params` must be an object, such as {\"output\": \"proba\"}",
                         field="params")
    given = [k for k in FORMS if k in doc]
    if len(given) != 1:
        what = "none of" if not given else "more than one of"
        raise InputError(422, "invalid_body", f"the body has {what} {', '.join(FORMS)}: give exactly one "
                         "(e.g. {\"records\": [{\"column\": value, ...}, ...]})")
    key = given[0]
    if key == "dataframe_split":
        return _split(doc[key], params)
    return _records(doc[key], f"`{key}`", params)


def _records(records: Any, where: str, params: dict[str, Any]) -> Request:
    if not isinstance(records, list):
        raise InputError(422, "invalid_body", f"{where} must be a list of records (objects)", field=where.strip("`"))
    if not records:
        raise InputError(422, "no_records", f"{where} holds no records: send at least one")
    if set(map(type, records)) != {dict}:
        row = next(i for i, r in enumerate(records) if type(r) is not dict)
        raise InputError(422, "invalid_record", f"record {row} of {where} is not an object of column values",
                         row=row)
    names = list(records[0])
    return Request(_RecordColumns(records), len(records), params, names)


class _RecordColumns(Mapping[str, Sequence[Any]]):
    """The columns of a list of records, gathered one column at a time when asked for."""

    _MISSING = object()

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def __getitem__(self, name: str) -> list[Any]:
        try:
            return list(map(operator.itemgetter(name), self.records))
        except KeyError:
            pass
        missing = self._MISSING
        values = [r.get(name, missing) for r in self.records]
        try:
            row = values.index(missing)
        except ValueError:
            return values
        if row == 0 and all(v is missing for v in values):
            raise KeyError(name)
        raise InputError(422, "missing_field", f"record {row} has no '{name}': every record needs it",
                         field=name, row=row)

    def __iter__(self) -> Any:
        return iter(self.records[0])

    def __len__(self) -> int:
        return len(self.records[0])


def _split(split: Any, params: dict[str, Any]) -> Request:
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
            or not isinstance(split.get("data"), list):
        raise InputError(422, "invalid_body", "`dataframe_split` must be an object with `columns` (a list of "
                         "names) and `data` (a list of rows, each a list of values)", field="dataframe_split")
    names, data = split["columns"], split["data"]
    if not data:
        raise InputError(422, "no_records", "`dataframe_split.data` holds no rows: send at least one")
    if set(map(type, data)) != {list}:
        row = next(i for i, r in enumerate(data) if type(r) is not list)
        raise InputError(422, "invalid_record", f"row {row} of `dataframe_split.data` is not a list of values",
                         row=row)
    widths = set(map(len, data))
    if widths != {len(names)}:
        row = next(i for i, r in enumerate(data) if len(r) != len(names))
        raise InputError(422, "invalid_record", f"row {row} of `dataframe_split.data` has {len(data[row])} "
                         f"values for {len(names)} columns", row=row)
    transposed = list(zip(*data, strict=True))
    return Request({str(n): transposed[i] for i, n in enumerate(names)}, len(data), params,
                   [str(n) for n in names])


def parse_csv(body: bytes) -> Request:
    """A CSV body with a header row; every value is read as text here and typed by the column
    check, as JSON's are."""
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _bad_body(f"the body is not readable CSV with a header row: {exc}") from None
    if frame.empty:
        raise InputError(422, "no_records", "the CSV body holds no rows: send a header row and at least one row")
    columns = {str(c): frame[c].to_numpy(dtype=object) for c in frame.columns}
    return _CsvRequest(columns, len(frame), {}, list(columns))


@dataclass
class _CsvRequest(Request):
    """CSV's values are text: numbers and booleans are read from it by the column check."""


def _first_bad(values: Values, allowed: frozenset[type]) -> int:
    return next(i for i, v in enumerate(values) if type(v) not in allowed)


def _type_error(name: str, kind: str, values: Values, row: int, what: str | None = None) -> InputError:
    value = values[row]
    shown = "null" if value is None else orjson.dumps(value, default=str).decode()[:60]
    got = what or _JSON_TYPES.get(type(value), type(value).__name__)
    return InputError(422, "invalid_type", f"'{name}' must be {_WORDS.get(kind, kind)}, but record {row} holds "
                      f"{got} ({shown})", field=name, row=row)


def _from_text(name: str, kind: str, values: np.ndarray) -> np.ndarray:
    """A CSV column (text, NaN for empty cells) as the kind's values."""
    if kind in ("float", "int"):
        numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
        empty = pd.isna(values)
        bad = np.isnan(numbers) & ~empty
        if bad.any():
            row = int(np.argmax(bad))
            raise _type_error(name, kind, values, row, "text")
        return numbers
    if kind == "bool":
        lowered = np.char.lower(values.astype(str))
        ok = np.isin(lowered, ["true", "false", "1", "0"])
        if not ok.all():
            row = int(np.argmax(~ok))
            raise _type_error(name, kind, values, row, "text")
        return np.isin(lowered, ["true", "1"])
    return values


def _image_bytes(name: str, values: Values) -> np.ndarray:
    """An image column's texts as the images' bytes, read without looking at the disk: a file
    path is a 422 naming its row (``serve.image_paths`` is false), as is text that is no base64.
    The model then gets bytes and reads no file whatever a client sent."""
    from modelcycle.steps import images

    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):
        try:
            out[row] = images.cell_bytes(value, row=row, column=name, paths=False)
        except images.CellError as exc:
            if exc.problem != images.REFUSED:
                raise InputError(422, "invalid_value", exc.message, field=name, row=row) from None
            text = str(value).strip()
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise InputError(422, "image_path_refused",
                             f"record {row} of '{name}' is a file path ({shown!r}), and this server reads no file "
                             f"a client names (serve.image_paths is false): {images.PATHS_REFUSED_HINT}",
                             field=name, row=row) from None
    return out


def column(name: str, kind: str, values: Values, *, text: bool = False,
           zone: str | None = None, image_paths: bool = True) -> Any:
    """One column's values checked against its kind, as an array (a DatetimeIndex for dates);
    an InputError naming the field and the first bad row otherwise. With ``image_paths`` False an
    image column becomes the images' bytes, and a file path in it is such an error."""
    if kind == "image" and not image_paths:
        if not text and not set(map(type, values)) <= _ALLOWED["image"]:
            raise _type_error(name, kind, values, _first_bad(values, _ALLOWED["image"]))
        return _image_bytes(name, values)
    if text and kind in ("float", "int", "bool"):
        values = _from_text(name, kind, np.asarray(values, dtype=object))
        if kind == "bool":
            return values
        return _int_or_float(name, values, values) if kind == "int" else values
    if kind == "any" or (text and kind in ("str", "bytes", "image")):
        return np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    allowed = _ALLOWED.get(kind, frozenset())
    types = set(map(type, values))
    if not types <= allowed:
        raise _type_error(name, kind, values, _first_bad(values, allowed))
    if kind == "float":
        return np.array(values, dtype=np.float64)
    if kind == "int":
        if types == {int}:
            try:
                return np.array(values, dtype=np.int64)
            except OverflowError:
                row = next(i for i, v in enumerate(values) if abs(v) >= 2**63)
                raise _type_error(name, kind, values, row, "a number too large") from None
        return _int_or_float(name, np.array(values, dtype=np.float64), values)
    if kind == "bool":
        return np.array(values, dtype=bool)
    if kind == "datetime":
        return dates(name, values, zone)
    return np.array(values, dtype=object)


def _int_or_float(name: str, numbers: np.ndarray, values: Values) -> np.ndarray:
    """Whole numbers (as int64; with nulls as float64 with NaN, as `modelcycle predict` reads
    them); a fraction is a mistake."""
    present = ~np.isnan(numbers)
    huge = np.abs(numbers) >= 2.0**63
    if huge.any():
        raise _type_error(name, "int", values, int(np.argmax(huge)), "a number too large")
    fraction = present & (np.floor(numbers) != numbers)
    if fraction.any():
        raise _type_error(name, "int", values, int(np.argmax(fraction)), "a fraction")
    return numbers.astype(np.int64) if present.all() else numbers




def dates(name: str, values: Values, zone: str | None) -> Any:
    """ISO 8601 texts as dates, in the time zone the model was trained in (naive times when it
    was trained on naive ones: an aware time is converted to UTC first)."""
    if zone is None and all(type(v) is str for v in values[:1]):
        try:
            joined = "\x00".join(values)  # only texts (a null or a number fails here)
        except TypeError:
            joined = "Z"
        # no time zone anywhere (no Z, no +hh:mm, no dash but the date's two): NumPy parses it
        if "Z" not in joined and "z" not in joined and "+" not in joined and joined.count("-") == 2 * len(values):
            try:
                return np.array(values, dtype="datetime64[ns]")
            except ValueError:
                pass  # pandas reads more forms, and finds the bad row
    try:
        parsed = pd.to_datetime(list(values), format="ISO8601")
    except (ValueError, TypeError):
        try:
            parsed = pd.to_datetime(list(values), format="ISO8601", utc=True)  # mixed offsets
        except (ValueError, TypeError):
            row = _first_bad_date(values)
            raise _type_error(name, "datetime", values, row, "text that is not a date and time") from None
    current = parsed.tz
    if zone is None and current is not None:
        parsed = parsed.tz_convert("UTC").tz_localize(None)
    elif zone is not None:
        parsed = parsed.tz_localize(zone) if current is None else parsed.tz_convert(zone)
    return parsed


def _first_bad_date(values: Values) -> int:
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        try:
            pd.to_datetime(v, format="ISO8601")
        except (ValueError, TypeError):
            return i
    return 0


def check(request: Request, kinds: Mapping[str, str], zones: Mapping[str, str | None] | None = None,
          extra: Sequence[str] = (), *, image_paths: bool = True) -> dict[str, Any]:
    """The model's input columns of ``request``, checked against their kinds (``{}``: a model
    without a signature takes the body's columns as they are), plus the ``extra`` columns the
    body has (key columns for the prediction log), unchecked. ``image_paths`` False refuses a
    file path in an image column (``serve.image_paths``)."""
    text = isinstance(request, _CsvRequest)
    zones = zones or {}
    out: dict[str, Any] = {}
    wanted = dict(kinds) if kinds else {n: "any" for n in request.names}
    for name, kind in wanted.items():
        try:
            values = request.columns[name]
        except KeyError:
            raise InputError(422, "missing_field", f"the records have no '{name}', which the model needs "
                             f"(it takes {', '.join(wanted)})", field=name) from None
        out[name] = column(name, kind, values, text=text, zone=zones.get(name), image_paths=image_paths)
    for name in extra:
        if name not in out and name in request.names:
            try:
                out[name] = np.asarray(request.columns[name], dtype=object)
            except (KeyError, InputError):
                continue  # a key column some records lack is simply not logged
    return out
