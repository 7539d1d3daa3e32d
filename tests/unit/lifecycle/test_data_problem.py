"""`modelcycle step train` judges the window's data from reports/validation.json as a cycle judges its
report: too many dropped rows or a window problem make it suspect, a report of an older version
still reads, and a damaged file is named with what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelcycle.config import Workspace
from modelcycle.errors import WorkspaceError
from modelcycle.lifecycle import stages
from modelcycle.lifecycle.fanout import _data_problem
from tests.unit.minimal import CONFIG, no_backend_variables


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    no_backend_variables(monkeypatch)
    (tmp_path / "modelcycle.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "reports").mkdir()
    return Workspace.load(tmp_path)


def _write(ws: Workspace, found: object) -> None:
    ws.path(stages.VALIDATION).write_text(json.dumps(found), encoding="utf-8")


def test_no_report_no_problem(ws: Workspace) -> None:
    assert _data_problem(ws) is None


def test_a_window_problem_in_the_report_makes_the_data_suspect(ws: Workspace) -> None:
    _write(ws, {"rows_in": 100, "rows_out": 100, "window_rows_in": 40, "window_rows_out": 40,
                "window_problems": ["no valid rows of class c in the window"], "rows_dropped": 0})
    assert _data_problem(ws) == "no valid rows of class c in the window"


def test_a_report_of_an_older_version_is_judged_on_its_counts(ws: Workspace) -> None:
    _write(ws, {"rows_in": 100, "rows_out": 70, "window_rows_in": 40, "window_rows_out": 10,
                "dropped": {"x < 0": 30}})
    assert _data_problem(ws) == "75% of the window's rows failed validation (limit 10%)"


@pytest.mark.parametrize(("text", "said"), [
    ('{"rows_in": 100, "rows_out"', "cannot be read as a validation report: Expecting"),
    ('{"rows_out": 7}', "cannot be read as a validation report: it lacks rows_in, window_rows_in"),
    ('{"rows_in": 1, "rows_out": 1, "window_rows_in": 1, "window_rows_out": 1, "dropped": []}',
     "cannot be read as a validation report: its dropped is [], not an object of row counts"),
])
def test_a_damaged_report_is_named_with_what_to_do(ws: Workspace, text: str, said: str) -> None:
    ws.path(stages.VALIDATION).write_text(text, encoding="utf-8")
    with pytest.raises(WorkspaceError) as caught:
        _data_problem(ws)
    assert str(ws.path(stages.VALIDATION)) in caught.value.message and said in caught.value.message
    assert "modelcycle step validate" in (caught.value.hint or "")
