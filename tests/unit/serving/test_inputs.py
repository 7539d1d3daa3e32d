"""What /predict reads from a body: the forms MLflow clients send, CSV, and every client mistake
as an error that names the field and the first bad record."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pandas as pd
import pytest

from modelcycle.serving import inputs
from modelcycle.serving.batcher import frame_of
from modelcycle.serving.inputs import InputError

KINDS = {"when": "datetime", "distance": "float", "passengers": "int", "night": "bool", "zone": "str"}
RECORDS = [
    {"when": "2015-01-02T10:00:00", "distance": 1.5, "passengers": 1, "night": False, "zone": "a", "ride": "r1"},
    {"when": "2015-01-02 23:30:00", "distance": 3, "passengers": 2, "night": True, "zone": None, "ride": "r2"},
]


def _checked(body: bytes, content_type: str = "application/json", kinds: dict[str, str] = KINDS,
             extra: tuple[str, ...] = ()) -> pd.DataFrame:
    return frame_of([inputs.check(inputs.parse(body, content_type), kinds, {}, extra)])


def _error(body: bytes, content_type: str = "application/json", kinds: dict[str, str] = KINDS) -> InputError:
    with pytest.raises(InputError) as caught:
        _checked(body, content_type, kinds)
    return caught.value


def _csv() -> bytes:
    return (b"when,distance,passengers,night,zone,ride\n"
            b"2015-01-02T10:00:00,1.5,1,false,a,r1\n"
            b"2015-01-02 23:30:00,3,2,true,,r2\n")


def test_every_body_form_gives_the_same_typed_columns() -> None:
    names = list(RECORDS[0])
    bodies = [
        (orjson.dumps({"records": RECORDS}), "application/json"),
        (orjson.dumps({"dataframe_records": RECORDS}), "application/json; charset=utf-8"),
        (orjson.dumps({"dataframe_split": {"columns": names, "data": [[r[n] for n in names] for r in RECORDS]}}),
         "application/json"),
        (orjson.dumps(RECORDS), "application/json"),
        (_csv(), "text/csv"),
    ]
    frames = [_checked(body, kind) for body, kind in bodies]
    for frame in frames:
        assert list(frame.columns) == list(KINDS)  # the model's columns, in its order; `ride` is not one
        assert frame["when"].tolist() == [pd.Timestamp("2015-01-02 10:00"), pd.Timestamp("2015-01-02 23:30")]
        assert frame["distance"].dtype == np.float64 and frame["distance"].tolist() == [1.5, 3.0]
        assert frame["passengers"].dtype == np.int64 and frame["passengers"].tolist() == [1, 2]
        assert frame["night"].dtype == bool and frame["night"].tolist() == [False, True]
        assert frame["zone"].iloc[0] == "a" and pd.isna(frame["zone"].iloc[1])


def test_key_columns_are_carried_unchecked_when_asked_for() -> None:
    frame = _checked(orjson.dumps({"records": RECORDS}), extra=("ride", "absent"))
    assert frame["ride"].tolist() == ["r1", "r2"] and "absent" not in frame


def test_a_missing_field_names_it_and_the_first_record_without_it() -> None:
    records = [dict(RECORDS[0]), {k: v for k, v in RECORDS[1].items() if k != "distance"}]
    err = _error(orjson.dumps({"records": records}))
    assert (err.status, err.code, err.field, err.row) == (422, "missing_field", "distance", 1)
    everywhere = [{k: v for k, v in r.items() if k != "passengers"} for r in RECORDS]
    err = _error(orjson.dumps({"dataframe_records": everywhere}))
    assert (err.status, err.field, err.row) == (422, "passengers", None)
    assert "passengers" in err.message and err.body()["error"]["field"] == "passengers"
    err = _error(_csv().replace(b",zone,", b",zzz,"), "text/csv")
    assert err.field == "zone"


@pytest.mark.parametrize(("field", "value", "words"), [
    ("distance", "far", "'distance' must be a number, but record 1 holds text (\"far\")"),
    ("distance", True, "'distance' must be a number, but record 1 holds a boolean"),
    ("passengers", 2.5, "'passengers' must be a whole number, but record 1 holds a fraction (2.5)"),
    ("passengers", "2", "'passengers' must be a whole number, but record 1 holds text"),
    ("passengers", 2**70, "a number too large"),
    ("night", 1, "'night' must be true or false"),
    ("zone", 7, "'zone' must be text, but record 1 holds a number (7)"),
    ("when", "yesterday", "'when' must be a date and time (ISO 8601 text), but record 1 holds text that is not"),
    ("when", 5, "'when' must be a date and time"),
    ("distance", {"km": 1}, "holds an object"),
])
def test_a_value_of_the_wrong_type_names_the_field_and_the_record(field: str, value: object, words: str) -> None:
    records = [dict(RECORDS[0]), {**RECORDS[1], field: value}]
    body = orjson.dumps({"records": records}) if field != "passengers" or value != 2**70 else \
        json.dumps({"records": records}).encode()
    err = _error(body)
    assert (err.status, err.code, err.field, err.row) == (422, "invalid_type", field, 1)
    assert words in err.message


def test_csv_values_that_are_not_numbers_are_named() -> None:
    err = _error(_csv().replace(b"3,2,true", b"3,two,true"), "text/csv")
    assert (err.status, err.field, err.row) == (422, "passengers", 1)
    err = _error(_csv().replace(b"1.5,1,false", b"1.5,1,maybe"), "text/csv")
    assert (err.field, err.row) == ("night", 0)


def test_whole_floats_and_nulls_in_an_int_column_read_as_modelcycle_predict_reads_them() -> None:
    records = [{**RECORDS[0], "passengers": 3.0}, {**RECORDS[1], "passengers": None}]
    frame = _checked(orjson.dumps({"records": records}))
    assert frame["passengers"].dtype == np.float64
    assert frame["passengers"].iloc[0] == 3.0 and np.isnan(frame["passengers"].iloc[1])
    whole = _checked(orjson.dumps({"records": [{**RECORDS[0], "passengers": 3.0}]}))
    assert whole["passengers"].dtype == np.int64


def test_times_with_a_zone_are_read_in_the_zone_the_model_was_trained_in() -> None:
    aware = ["2015-01-02T10:00:00Z", "2015-01-02T12:00:00+02:00", "2015-01-02T05:00:00-05:00"]
    naive = inputs.dates("when", aware, None)
    assert list(pd.DatetimeIndex(naive)) == [pd.Timestamp("2015-01-02 10:00")] * 3
    zoned = inputs.dates("when", ["2015-01-02T10:00:00"], "America/New_York")
    assert str(zoned.tz) == "America/New_York" and zoned[0].hour == 10
    fast = inputs.dates("when", ["2015-01-02T10:00:00", "2015-01-02 11:00"], None)
    assert list(pd.DatetimeIndex(fast)) == [pd.Timestamp("2015-01-02 10:00"), pd.Timestamp("2015-01-02 11:00")]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b'{"records": [', "application/json", 400, "bad_body"),
    (b"\xff\xfe", "application/json", 400, "bad_body"),
    (b'"just text"', "application/json", 400, "bad_body"),
    (b"<rides/>", "application/xml", 415, "unsupported_media_type"),
    (b'{"rows": []}', "application/json", 422, "invalid_body"),
    (b'{"records": [], "dataframe_records": []}', "application/json", 422, "invalid_body"),
    (b'{"records": []}', "application/json", 422, "no_records"),
    (b'{"records": {"a": 1}}', "application/json", 422, "invalid_body"),
    (b'{"records": [{"a": 1}, 2]}', "application/json", 422, "invalid_record"),
    (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}}', "application/json", 422,
     "invalid_record"),
    (b'{"dataframe_split": {"data": [[1]]}}', "application/json", 422, "invalid_body"),
    (b'{"records": [{"a": 1}], "params": [1]}', "application/json", 422, "invalid_params"),
    (b"", "text/csv", 400, "bad_body"),
    (b"a,b\n", "text/csv", 422, "no_records"),
    (b'a\n"1', "text/csv", 400, "bad_body"),
])
def test_bodies_that_cannot_be_read_are_client_errors(body: bytes, content_type: str, status: int, code: str) -> None:
    err = _error(body, content_type, kinds={"a": "float"})
    assert (err.status, err.code) == (status, code), err.message
    assert err.body()["error"]["message"]


def test_a_model_without_a_signature_takes_the_body_columns_as_they_are() -> None:
    frame = _checked(orjson.dumps({"records": [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]}), kinds={})
    assert list(frame.columns) == ["x", "y"] and frame["x"].tolist() == [1, 2]


def test_requests_batched_together_keep_their_rows_in_order() -> None:
    one = inputs.check(inputs.parse(orjson.dumps({"records": RECORDS[:1]}), None), KINDS, {})
    two = inputs.check(inputs.parse(orjson.dumps({"records": [{**RECORDS[1], "passengers": None}]}), None), KINDS, {})
    frame = frame_of([one, two])
    assert frame["distance"].tolist() == [1.5, 3.0]
    assert frame["passengers"].iloc[0] == 1 and np.isnan(frame["passengers"].iloc[1])
    assert frame["when"].tolist() == [pd.Timestamp("2015-01-02 10:00"), pd.Timestamp("2015-01-02 23:30")]
