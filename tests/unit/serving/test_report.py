"""The shadow report on a prediction log of known errors joined with labels from a real (CSV)
source: the numbers, the readings, and the mistakes a user can make."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from modelcycle.config import Window, Workspace
from modelcycle.errors import ConfigError, SourceError, WorkspaceError
from modelcycle.gate.stats import improvement_interval
from modelcycle.serving import report
from modelcycle.steps.evaluate import Scores

from tests.unit.serving.shadowdata import (CONFIG, DAY, Lookup, chunks, label, make_workspace, off_by, serve,
                                           with_serve, write_log)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    root = make_workspace(tmp_path / "ws")
    write_log(root)
    return with_serve(Workspace.load(root))


def by_pair(done: report.ShadowReport) -> dict[tuple[str, str | None], report.PairReport]:
    return {(p.champion_version, p.challenger_version): p for p in done.pairs}


def test_each_version_pair_is_scored_on_its_labelled_rows(ws):
    done = report.shadow_report(ws)
    assert [(p.champion_version, p.challenger_version) for p in done.pairs] == [
        ("1", "2"), ("2", "3"), ("3", "4"), ("4", None)]        # in the order they served
    pairs = by_pair(done)

    better = pairs["1", "2"]
    assert (better.requests, better.rows, better.labelled, better.compared) == (5, 50, 40, 40)
    assert better.champion == pytest.approx(1.5) and better.challenger == pytest.approx(0.5)
    assert better.difference == pytest.approx(-1.0)
    assert better.interval.estimate == pytest.approx(2 / 3)
    assert better.interval.low > 0 and better.interval.rows == 40
    assert better.reading == "the challenger is better on 40 live rows"

    worse = pairs["2", "3"]
    assert worse.champion == pytest.approx(0.5) and worse.challenger == pytest.approx(1.5)
    assert worse.interval.estimate == pytest.approx(-2.0) and worse.interval.high < 0
    assert worse.reading == "the challenger is worse on 40 live rows"

    even = pairs["3", "4"]
    assert even.champion == pytest.approx(1.5) and even.challenger == pytest.approx(1.5)
    assert even.interval.estimate == pytest.approx(0.0)
    assert even.interval.low < 0 < even.interval.high
    assert even.reading == "no clear difference on 40 live rows"

    alone = pairs["4", None]
    assert (alone.rows, alone.labelled, alone.compared) == (5, 5, 0)
    assert alone.champion is None and alone.interval is None
    assert alone.reading == "no challenger was scored on these requests"

    assert (done.rows, done.labelled, done.unlabelled) == (135, 125, 10)
    assert done.metric == "mae" and done.label == "y" and done.keys == ["trip_id"]


def test_the_interval_is_the_gates_own_paired_bootstrap_with_the_gates_settings(ws):
    pair = by_pair(report.shadow_report(ws))["1", "2"]
    ids = np.arange(0, 40)
    y = label(ids)
    champion = Scores("mae", 1.5, 40, y_true=y, y_pred=off_by(ids, 1, 2))
    challenger = Scores("mae", 0.5, 40, y_true=y, y_pred=y - 0.5)
    gate = ws.config.gate
    expected = improvement_interval(champion, challenger, confidence=gate.confidence, resamples=gate.resamples,
                                    seed=gate.seed, method=gate.method)
    assert pair.interval == expected
    assert pair.interval.resamples == 500                      # gate.resamples of the workspace


def test_the_report_as_json_names_every_number(ws):
    out = report.shadow_report(ws).to_dict()
    first = out["pairs"][0]
    assert first["champion"] == pytest.approx(1.5) and first["difference"] == pytest.approx(-1.0)
    assert first["interval"]["improvement"] == pytest.approx(2 / 3)
    assert out["pairs"][-1]["interval"] is None and out["unlabelled"] == 10
    import json

    json.dumps(out)                                            # plain JSON, no NaN or numpy values


def test_since_reads_only_the_days_from_that_date_on(tmp_path):
    root = make_workspace(tmp_path / "ws")
    write_log(root)
    late = DAY + timedelta(days=1)
    serve(root, "5", Lookup("6", {i: 10.0 + i for i in range(0, 40)}), chunks(range(0, 40)),
          lambda r: label(r) + 1, late)
    ws = with_serve(Workspace.load(root))
    done = report.shadow_report(ws, since=late.date())
    assert [(p.champion_version, p.challenger_version) for p in done.pairs] == [("5", "6")]
    assert done.files == 1
    # these rows are stamped a day before the requests: found within the day's margin
    assert done.pairs[0].labelled == 40 and done.pairs[0].challenger == pytest.approx(0.0)
    assert len(report.shadow_report(ws).pairs) == 5


def test_a_challenger_that_failed_on_some_requests_is_compared_on_the_others(tmp_path):
    root = make_workspace(tmp_path / "ws")

    class Flaky(Lookup):
        def predict(self, frame):
            if frame["trip_id"].iloc[0] >= 20:
                raise RuntimeError("broken")
            return super().predict(frame)

    serve(root, "1", Flaky("2", {i: 10.0 + i for i in range(40)}), chunks(range(0, 40)),
          lambda r: label(r) + 1, DAY, errors=2)
    pair = report.shadow_report(with_serve(Workspace.load(root))).pairs[0]
    assert (pair.labelled, pair.compared) == (40, 20)
    assert pair.champion == pytest.approx(1.0) and pair.challenger == pytest.approx(0.0)


def test_the_timestamp_as_a_key_reads_the_labels_of_the_logged_times(tmp_path):
    """Requests about rides of 2015 served in 2025: the logged timestamps say which rows to read."""
    root = make_workspace(tmp_path / "ws")
    rides = pd.read_csv(root / "data" / "rides.csv")
    rides["ts"] = pd.to_datetime(rides["ts"]) - pd.DateOffset(years=10)
    rides.to_csv(root / "data" / "rides.csv", index=False)
    first = rides.set_index("trip_id").loc[list(range(40)), "ts"]
    serve(root, "1", Lookup("2", {i: 10.0 + i for i in range(40)}), [range(0, 40)], lambda r: label(r) + 2, DAY,
          key_columns=("trip_id", "ts"), extra={"ts": first.dt.strftime("%Y-%m-%d %H:%M:%S").tolist()})
    ws = with_serve(Workspace.load(root), key_columns=["trip_id", "ts"])
    done = report.shadow_report(ws)
    assert done.labels_from.year == 2015
    assert done.pairs[0].labelled == 40 and done.pairs[0].champion == pytest.approx(2.0)

    # without the timestamp among the keys, rows of another time need --labels-window
    ws = with_serve(Workspace.load(root), key_columns=["trip_id"])
    assert report.shadow_report(ws).labelled == 0
    done = report.shadow_report(ws, labels_window=Window.parse("2015-03"))
    assert done.labelled == 40


def test_the_label_column_can_be_another_than_the_target(tmp_path):
    root = make_workspace(tmp_path / "ws")
    rides = pd.read_csv(root / "data" / "rides.csv")
    rides["y_final"] = rides["y"] + 1
    rides.to_csv(root / "data" / "rides.csv", index=False)
    serve(root, "1", Lookup("2", {i: 11.0 + i for i in range(40)}), [range(0, 40)], label, DAY)
    done = report.shadow_report(with_serve(Workspace.load(root), label_column="y_final"))
    assert done.label == "y_final"
    assert done.pairs[0].champion == pytest.approx(1.0) and done.pairs[0].challenger == pytest.approx(0.0)


def test_a_classifier_is_scored_on_its_labels(tmp_path):
    config = CONFIG.replace("y: float", "y: str").replace("metric: mae", "metric: accuracy").replace(
        "timestamp: ts", "timestamp: ts\n  task: classification").replace("threshold: 2.5", "threshold: 0.5")
    root = make_workspace(tmp_path / "ws", config)
    rides = pd.read_csv(root / "data" / "rides.csv")
    rides["y"] = np.where(rides["trip_id"] % 2 == 0, "short", "long")
    rides.to_csv(root / "data" / "rides.csv", index=False)
    truth = {i: ("short" if i % 2 == 0 else "long") for i in range(40)}
    serve(root, "1", Lookup("2", truth), [range(0, 40)], lambda r: np.array(["short"] * len(r), dtype=object), DAY)
    pair = report.shadow_report(with_serve(Workspace.load(root))).pairs[0]
    assert pair.champion == pytest.approx(0.5) and pair.challenger == pytest.approx(1.0)
    assert pair.reading == "the challenger is better on 40 live rows"


def test_keys_of_another_type_in_the_source_still_join():
    log = pd.DataFrame({"k": [1, 2, 3], "t": pd.to_datetime(["2025-01-01 10:00"] * 3).tz_localize("UTC")})
    labels = pd.DataFrame({"k": ["1", "2", "9"], "t": ["2025-01-01 10:00:00"] * 3, "y": [1.0, 2.0, 9.0]})
    joined = report.join(log, labels, ["k", "t"], "y")
    assert joined["__label"].tolist()[:2] == [1.0, 2.0] and pd.isna(joined["__label"].iloc[2])
    text = pd.DataFrame({"k": ["a", "b"]})
    assert report.join(text, pd.DataFrame({"k": ["b"], "y": [5.0]}), ["k"], "y")["__label"].tolist()[1] == 5.0


# what a user can get wrong ---------------------------------------------------------------------


def test_no_key_columns_is_a_config_error_naming_the_setting(tmp_path):
    root = make_workspace(tmp_path / "ws")
    write_log(root)
    for ws in (Workspace.load(root), with_serve(Workspace.load(root), key_columns=[])):
        with pytest.raises(ConfigError) as err:
            report.shadow_report(ws)
        assert "serve.key_columns" in err.value.message and "modelcycle.yaml" in err.value.message
        assert "key_columns: [trip_id]" in err.value.hint


def test_no_log_yet_says_how_to_turn_shadow_scoring_on(tmp_path):
    ws = with_serve(Workspace.load(make_workspace(tmp_path / "ws")))
    with pytest.raises(WorkspaceError) as err:
        report.shadow_report(ws)
    assert "no prediction log yet" in err.value.message and ".modelcycle/predictions" in err.value.message
    assert "shadow: true" in err.value.hint and "modelcycle serve" in err.value.hint


def test_since_after_the_last_request_says_so(ws):
    with pytest.raises(WorkspaceError) as err:
        report.shadow_report(ws, since=date(2025, 3, 5))
    assert "no request on or after 2025-03-05" in err.value.message and "--since" in err.value.hint


def test_a_key_the_source_lacks_names_it_and_the_columns_it_has(tmp_path):
    root = make_workspace(tmp_path / "ws")
    serve(root, "1", None, [range(0, 3)], label, DAY, key_columns=("trip_id", "ride_ref"),
          extra={"ride_ref": ["a", "b", "c"]})
    with pytest.raises(ConfigError) as err:
        report.shadow_report(with_serve(Workspace.load(root), key_columns=["trip_id", "ride_ref"]))
    assert "ride_ref" in err.value.message and "serve.key_columns" in err.value.message
    assert "it has: trip_id, ts, x, y" in err.value.message


def test_a_key_the_log_lacks_says_the_log_was_written_with_other_keys(ws):
    with pytest.raises(ConfigError) as err:
        report.shadow_report(with_serve(ws, key_columns=["x"]))
    assert "the prediction log has no column x" in err.value.message


def test_a_source_that_cannot_be_read_is_a_source_error(ws):
    for f in (ws.root / "data").iterdir():
        f.unlink()
    with pytest.raises(SourceError) as err:
        report.shadow_report(ws)
    assert "no file matches" in err.value.message


def test_settings_without_a_serve_section_are_the_defaults(ws):
    assert report.shadow_settings(Workspace.load(ws.root).config) == report.ShadowSettings()
    assert report.shadow_settings(ws.config) == report.ShadowSettings(True, ("trip_id",), None)
