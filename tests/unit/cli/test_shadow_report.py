"""`modelcycle shadow-report` on a workspace with a CSV source and a prediction log of known
errors (tests/unit/serving/shadowdata.py), as a user runs it."""

from __future__ import annotations

import json

import pytest

from tests.unit.serving.shadowdata import CONFIG, make_workspace, write_log

from .conftest import one_paragraph

SERVE = "serve:\n  shadow: true\n  key_columns: [trip_id]\n"


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A workspace whose modelcycle.yaml has a `serve:` section (key column trip_id) and whose
    server logged the requests of shadowdata.py."""
    return _workspace(tmp_path, monkeypatch, key_columns=["trip_id"])


def _workspace(tmp_path, monkeypatch, **serve):
    root = make_workspace(tmp_path / "ws")
    write_log(root)
    keys = ", ".join(serve.get("key_columns", []))
    (root / "modelcycle.yaml").write_text(CONFIG + f"serve:\n  shadow: true\n  key_columns: [{keys}]\n")
    return root


def test_the_report_shows_each_version_pair_with_its_reading(cli, served):
    ran = cli("-w", served, "shadow-report")
    assert ran.code == 0, ran
    said = ran.said
    assert "rides shadow scoring: 135 logged rows in 4 file(s); labels 'y' from CSV files" in said
    assert "joined on trip_id" in said
    assert ("versions requests logged labelled compared champion MAE challenger MAE improvement 95% interval"
            in said)
    assert "v1 → v2 5 50 40 40 1.5 0.5 +66.7% +" in said
    assert "v2 → v3 4 40 40 40 0.5 1.5 -200.0% -" in said
    assert "v4 → no challenger 1 5 5 0 — — — —" in said
    assert "v1 → v2: the challenger is better on 40 live rows" in said
    assert "v2 → v3: the challenger is worse on 40 live rows" in said
    assert "v3 → v4: no clear difference on 40 live rows" in said
    assert "v4 → no challenger: no challenger was scored on these requests" in said
    assert "10 of 135 logged rows have no label in the source yet: left out" in said


def test_json_gives_scripts_every_number(cli, served):
    ran = cli("-w", served, "shadow-report", "--json")
    assert ran.code == 0, ran
    out = json.loads(ran.out)
    assert [(p["champion_version"], p["challenger_version"]) for p in out["pairs"]] == [
        ("1", "2"), ("2", "3"), ("3", "4"), ("4", None)]
    first = out["pairs"][0]
    assert first["champion"] == pytest.approx(1.5) and first["challenger"] == pytest.approx(0.5)
    assert first["interval"]["improvement"] == pytest.approx(2 / 3) and first["interval"]["ci_low"] > 0
    assert out["unlabelled"] == 10 and out["metric"] == "mae"


def test_since_leaves_out_the_days_before(cli, served):
    ran = cli("-w", served, "shadow-report", "--since", "2025-03-05")
    one_paragraph(ran, 2, "no request on or after 2025-03-05", "--since")
    ran = cli("-w", served, "shadow-report", "--since", "2025-03-04", "--json")
    assert ran.code == 0 and len(json.loads(ran.out)["pairs"]) == 4


def test_a_since_that_is_no_date_is_one_paragraph(cli, served):
    one_paragraph(cli("-w", served, "shadow-report", "--since", "last week"), 2,
                  "--since 'last week' is not a date", "YYYY-MM-DD")


def test_a_labels_window_that_is_no_window_is_one_paragraph(cli, served):
    one_paragraph(cli("-w", served, "shadow-report", "--labels-window", "March"), 2, "'March' is not a window")


def test_no_log_yet_says_how_to_turn_shadow_scoring_on(cli, tmp_path, monkeypatch):
    root = _workspace(tmp_path, monkeypatch, key_columns=["trip_id"])
    import shutil

    shutil.rmtree(root / ".modelcycle" / "predictions")
    one_paragraph(cli("-w", root, "shadow-report"), 2, "no prediction log yet", "shadow: true",
                  "modelcycle serve")


def test_no_key_columns_names_the_setting(cli, tmp_path, monkeypatch):
    root = _workspace(tmp_path, monkeypatch, key_columns=[])
    one_paragraph(cli("-w", root, "shadow-report"), 2, "modelcycle.yaml's `serve.key_columns` is empty",
                  "key_columns: [trip_id]")


def test_an_unreachable_source_is_one_paragraph(cli, served):
    (served / "data" / "rides.csv").unlink()
    one_paragraph(cli("-w", served, "shadow-report"), 3, "no file matches", "source.url")


def test_help_says_what_it_is_for_and_lists_its_options(cli):
    ran = cli("shadow-report", "--help")
    assert ran.code == 0
    assert "Score the champion and the challenger on the same live requests" in ran.said
    for option in ("--since", "--labels-window", "--json", "--help"):
        assert option in ran.said
    assert "shadow-report" in cli("--help").said
