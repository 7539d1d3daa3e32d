"""reports/validation.json read back: ValidationReport.from_dict gives the report to_dict wrote, reads
the reports of older versions (a key they lack takes its default) and says which key is wrong."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from modelcycle.config.models import DataConfig
from modelcycle.steps.validate import ValidationReport, validate

#: What the first version of the report wrote: the four counts and the rows each rule dropped.
FIRST_VERSION = {"rows_in": 10, "rows_out": 7, "window_rows_in": 5, "window_rows_out": 2,
                 "dropped": {"x < 0": 3}, "rows_dropped": 3, "window_invalid_fraction": 0.6}


def _classified() -> ValidationReport:
    """The report of a real classification window with a bad cell, an empty class and an imbalance:
    every field away from its default."""
    ts = pd.date_range("2024-02-25", periods=12, freq="D")
    frame = pd.DataFrame({"ts": ts, "x": ["1.5"] * 11 + ["l.5"], "y": ["a"] * 9 + ["b"] * 3})
    data = DataConfig(timestamp="ts", target="y", task="classification", max_class_ratio=1.5,
                      columns={"ts": "datetime", "x": "float", "y": "category"},
                      rules={"y": {"allowed": ["a", "b", "c"]}})
    _, report = validate(frame, data, window_start=datetime(2024, 3, 1))
    return report


def test_a_report_reads_back_as_it_was_written() -> None:
    report = _classified()
    assert report.examples and report.empty_classes == ["c"] and report.class_imbalance == 2.0
    assert len(report.window_problems) == 2  # the empty class and the imbalance

    again = ValidationReport.from_dict(json.loads(json.dumps(report.to_dict())))

    assert again == report
    assert again.suspect(0.1) == report.suspect(0.1) is not None
    assert again.summary() == report.summary()


def test_a_report_of_the_first_version_reads_with_defaults() -> None:
    report = ValidationReport.from_dict(FIRST_VERSION)

    assert (report.rows_in, report.rows_out, report.window_rows_in, report.window_rows_out) == (10, 7, 5, 2)
    assert report.dropped == {"x < 0": 3} and report.rows_dropped == 3
    assert report.examples == {} and report.window_problems == [] and report.class_imbalance is None
    assert report.suspect(0.1) == "60% of the window's rows failed validation (limit 10%)"


def test_a_report_without_a_newer_key_reads_and_a_key_of_a_newer_version_is_left_aside() -> None:
    written = _classified().to_dict()
    del written["window_problems"], written["max_class_ratio"]
    written["rows_quarantined"] = 4  # what a later version might add

    report = ValidationReport.from_dict(written)

    assert report.window_problems == [] and report.max_class_ratio is None
    assert report.empty_classes == ["c"] and report.class_imbalance == 2.0


def test_the_read_report_holds_containers_of_its_own() -> None:
    written = dict(FIRST_VERSION)
    report = ValidationReport.from_dict(written)
    report.dropped["x > 9"] = 1
    assert written["dropped"] == {"x < 0": 3}


@pytest.mark.parametrize(("change", "said"), [
    ({"window_rows_in": None}, "its window_rows_in is None, not a whole number"),
    ({"rows_out": True}, "its rows_out is True, not a whole number"),
    ({"dropped": ["x < 0"]}, "its dropped is ['x < 0'], not an object of row counts"),
    ({"class_imbalance": "3"}, "its class_imbalance is '3', not a number or null"),
])
def test_a_value_of_the_wrong_kind_is_named(change: dict, said: str) -> None:
    with pytest.raises(ValueError) as caught:
        ValidationReport.from_dict({**FIRST_VERSION, **change})
    assert str(caught.value) == said


def test_a_file_without_the_counts_is_no_report() -> None:
    with pytest.raises(ValueError, match=r"it lacks rows_in, window_rows_out \(a validation report counts"):
        ValidationReport.from_dict({"rows_out": 7, "window_rows_in": 5})
    with pytest.raises(ValueError, match="it holds list, not an object"):
        ValidationReport.from_dict([1, 2])  # type: ignore[arg-type]
