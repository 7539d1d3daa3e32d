"""What `modelcycle status` says of the latest cycle's drift, and `modelcycle config` of the
drift section."""

from __future__ import annotations

from modelcycle.cli.status import drift_lines

SUMMARY = {"window": "2015-05", "champion_version": "3", "champion_window": "2015-04", "target": "fare_amount",
           "threshold": 0.1, "psi": {"fare_amount": 0.02, "pickup_longitude": 2.51, "pickup_latitude": 0.4},
           "drifted": {"pickup_longitude": 2.51, "pickup_latitude": 0.4}, "max_psi": 2.51, "error": None}


def test_drifted_columns_are_listed_with_their_psi_largest_first():
    lines = drift_lines(SUMMARY)
    assert lines[0] == ("drift  window 2015-05 against v3's training rows (trained to 2015-04): "
                        "2 column(s) drifted (PSI > 0.1)")
    assert [line.split() for line in lines[1:]] == [["pickup_longitude", "PSI", "2.51"],
                                                    ["pickup_latitude", "PSI", "0.40"]]


def test_the_target_is_marked_when_it_drifts():
    lines = drift_lines({**SUMMARY, "drifted": {"fare_amount": 0.31}, "max_psi": 0.31})
    assert lines[1].split() == ["fare_amount", "PSI", "0.31", "(the", "target)"]


def test_a_quiet_window_says_no_drift_and_its_largest_psi():
    assert drift_lines({**SUMMARY, "drifted": {}, "max_psi": 0.031}) == [
        "drift  window 2015-05 against v3's training rows (trained to 2015-04): no drift (max PSI 0.03)"]


def test_a_drift_that_was_not_measured_says_why():
    lines = drift_lines({**SUMMARY, "drifted": {}, "max_psi": None, "error": "the source did not answer"})
    assert lines == ["drift  window 2015-05 against v3's training rows (trained to 2015-04): "
                     "not measured: the source did not answer"]


def test_modelcycle_config_describes_the_drift_section(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    ran = cli("config")
    assert ran.code == 0, ran
    rows = [line for line in ran.out.splitlines() if " drift." in line]
    keys = {line.strip("│ ").split()[0] for line in rows}
    assert {"drift.enabled", "drift.threshold", "drift.columns", "drift.min_rows"} <= keys
    assert any("drift.threshold" in line and "0.1" in line and "PSI" in line for line in rows)
