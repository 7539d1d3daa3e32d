"""Drift of what the server sees: a prediction log written by the real ShadowLog on the taxifare
workspace after its first cycle (v1, trained on 2014-12), compared with the champion's training
rows; and the data watcher announcing it once, on the source's rows of the open month so far."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.config import Window, Workspace
from modelcycle.lifecycle import automation, served, watch
from modelcycle.lifecycle.services import open_services
from modelcycle.registry.base import CHAMPION
from modelcycle.serving.shadow import ShadowLog, predictions_dir
from tests.unit.lifecycle.test_watch import Sent, trim

NOW = datetime(2015, 1, 20, 12, 0)   # the watcher's clock: naive UTC
SERVED_AT = datetime(2015, 1, 20, 9, 0, tzinfo=UTC)


def log_requests(ws: Workspace, rows: pd.DataFrame, predictions: np.ndarray, *, version: str = "1",
                 at: datetime = SERVED_AT, per_request: int = 50) -> None:
    """Serve ``rows`` through the real prediction log, ``per_request`` rows a request, as the
    server hands them over (the model's input columns and the champion's answers)."""
    data = ws.config.data
    inputs = [c for c in data.columns if c != data.target]
    log = ShadowLog(predictions_dir(ws.root), challenger=lambda: None, key_columns=[], input_columns=inputs,
                    clock=lambda: at)
    for n, start in enumerate(range(0, len(rows), per_request)):
        part = rows.iloc[start:start + per_request][inputs].reset_index(drop=True)
        assert log.submit(f"req-{n}", part, predictions[start:start + per_request], version)
    log.close()


def champion_predictions(svc: Any, rows: pd.DataFrame) -> np.ndarray:
    model = svc.registry.load_alias(svc.ws.config.name, CHAMPION)
    return np.asarray(model.predict(rows))


def january(svc: Any) -> pd.DataFrame:
    return svc.source.fetch(datetime(2015, 1, 1), datetime(2015, 1, 20))


def test_quiet_requests_answered_by_the_champion_do_not_drift(fakes: Any) -> None:
    svc = open_services(fakes.root)
    rows = january(svc)
    log_requests(svc.ws, rows, champion_predictions(svc, rows))
    report = served.served_drift(svc.ws, svc.source, NOW - timedelta(days=1), registry=svc.registry)
    assert report is not None
    assert set(report.columns) == {"pickup_longitude", "pickup_latitude", "dropoff_longitude",
                                   "dropoff_latitude", "passenger_count", served.PREDICTION}
    assert report.columns[served.PREDICTION].rows_current == len(rows)
    assert report.drifted == [], report.summary()


def test_broken_coordinates_in_the_requests_are_named(fakes: Any) -> None:
    svc = open_services(fakes.root)
    rows = january(svc)
    predictions = champion_predictions(svc, rows)
    rows[["pickup_longitude", "pickup_latitude"]] = rows[["pickup_latitude", "pickup_longitude"]].to_numpy()
    log_requests(svc.ws, rows, predictions)
    report = served.served_drift(svc.ws, svc.source, NOW - timedelta(days=1), registry=svc.registry)
    assert report is not None
    assert report.drifted[:2] == ["pickup_longitude", "pickup_latitude"] or \
        report.drifted[:2] == ["pickup_latitude", "pickup_longitude"]
    assert served.PREDICTION not in report.drifted


def test_predictions_far_from_the_training_target_drift(fakes: Any) -> None:
    svc = open_services(fakes.root)
    rows = january(svc)
    log_requests(svc.ws, rows, champion_predictions(svc, rows) * 1.6)
    report = served.served_drift(svc.ws, svc.source, NOW - timedelta(days=1), registry=svc.registry)
    assert report is not None and report.drifted == [served.PREDICTION]


def test_too_few_rows_another_champion_or_an_older_day_give_no_figure(fakes: Any) -> None:
    svc = open_services(fakes.root)
    rows = january(svc)
    since = NOW - timedelta(days=1)
    assert served.served_drift(svc.ws, svc.source, since, registry=svc.registry) is None   # no log at all
    log_requests(svc.ws, rows.iloc[:400], champion_predictions(svc, rows.iloc[:400]))
    assert served.served_drift(svc.ws, svc.source, since, registry=svc.registry) is None   # 400 < min_rows 500
    broken = rows.copy()
    broken["pickup_longitude"] = 0.0
    log_requests(svc.ws, broken, np.zeros(len(broken)), version="7")          # another version's requests
    log_requests(svc.ws, broken, np.zeros(len(broken)), at=SERVED_AT - timedelta(days=3))  # days before since
    assert served.served_drift(svc.ws, svc.source, since, registry=svc.registry) is None
    assert len(served.log_files(svc.ws, since)) == 2   # the older day's folder is not even read


def test_the_watcher_announces_served_drift_once_on_the_source_rows_so_far(fakes: Any) -> None:
    trim(fakes.root, "2015-01-20")   # the source's January so far is quiet: its own drift says nothing
    svc, sent = open_services(fakes.root), Sent()
    rows = january(svc)
    predictions = champion_predictions(svc, rows)
    rows[["pickup_longitude", "pickup_latitude"]] = rows[["pickup_latitude", "pickup_longitude"]].to_numpy()
    log_requests(svc.ws, rows, predictions)
    announced, drift = watch.Announced.load(svc.ws), watch.DriftWatch()
    found = watch.check_once(svc, announced, now=NOW, send=sent, drift=drift)
    assert found.announced and found.window == Window.parse("2015-01-01..2015-01-20")
    [(event, label, payload)] = sent.events
    assert (event, label) == (automation.EVENT_DRIFT, "2015-01-01..2015-01-20")
    assert payload["source"] == "prediction log"
    assert {"pickup_longitude", "pickup_latitude"} <= set(payload["drifted"])
    # more requests later: measured again, not announced again (remembered in watch.json)
    log_requests(svc.ws, rows, predictions, at=SERVED_AT + timedelta(hours=1))
    again = watch.check_once(svc, watch.Announced.load(svc.ws), now=NOW + watch.DRIFT_EVERY, send=sent,
                             drift=drift)
    assert not again.announced and len(sent.events) == 1


def test_one_early_cycle_per_month_whichever_drift_saw_it_first(fakes: Any) -> None:
    trim(fakes.root, "2015-01-20")
    svc, sent = open_services(fakes.root), Sent()
    rows = january(svc)
    predictions = champion_predictions(svc, rows)
    rows[["pickup_longitude", "pickup_latitude"]] = rows[["pickup_latitude", "pickup_longitude"]].to_numpy()
    log_requests(svc.ws, rows, predictions)
    announced = watch.Announced.load(svc.ws)
    announced.note(automation.EVENT_DRIFT, "2015-01", NOW)  # the source's rows drifted first
    found = watch.check_once(svc, announced, now=NOW, send=sent, drift=watch.DriftWatch())
    assert not found.announced and sent.events == []


def test_the_watcher_looks_again_only_when_rows_were_logged(fakes: Any) -> None:
    trim(fakes.root, "2015-01-20")
    svc, sent = open_services(fakes.root), Sent()
    rows = january(svc)
    log_requests(svc.ws, rows, champion_predictions(svc, rows))   # quiet
    drift = watch.DriftWatch()
    watch.check_once(svc, watch.Announced.load(svc.ws), now=NOW, send=sent, drift=drift)
    assert drift.served_at == NOW and sent.events == []
    watch.check_once(svc, watch.Announced.load(svc.ws), now=NOW + timedelta(hours=1), send=sent, drift=drift)
    assert drift.served_at == NOW   # nothing new in the log: not measured again


def test_no_cycle_is_announced_while_the_source_has_too_few_rows_of_the_month(fakes: Any) -> None:
    svc = open_services(fakes.root)
    rows = january(svc)
    predictions = champion_predictions(svc, rows)
    end = pd.to_datetime(rows[svc.ws.config.data.timestamp]).sort_values().iloc[300]
    trim(fakes.root, f"{end:%Y-%m-%d}")
    rows[["pickup_longitude", "pickup_latitude"]] = rows[["pickup_latitude", "pickup_longitude"]].to_numpy()
    log_requests(svc.ws, rows, predictions)
    sent = Sent()
    found = watch.check_once(svc, watch.Announced.load(svc.ws), now=NOW, send=sent, drift=watch.DriftWatch())
    assert sent.events == [] and not found.announced
    assert "pickup_l" in found.why and "fewer than drift.min_rows (500): no cycle yet" in found.why


def test_status_shows_the_served_drift_of_the_last_day(fakes: Any, capsys: Any) -> None:
    from modelcycle.cli import status

    svc = open_services(fakes.root)
    champion = svc.registry.get_alias(svc.ws.config.name, CHAMPION)
    status._served(svc.ws, champion)
    assert capsys.readouterr().out == ""   # no logged request: no line
    rows = january(svc)
    predictions = champion_predictions(svc, rows)
    rows[["pickup_longitude", "pickup_latitude"]] = rows[["pickup_latitude", "pickup_longitude"]].to_numpy()
    log_requests(svc.ws, rows, predictions, at=datetime.now(UTC) - timedelta(hours=1))
    damaged = next(predictions_dir(fakes.root).glob("date=*"))
    (damaged / "part-0-damaged.parquet").write_bytes(b"not parquet")   # left out, the rest is read
    status._served(svc.ws, champion)
    out = capsys.readouterr().out
    assert "served requests of the last day to v1, against its training rows: 2 column(s) drifted (PSI > 0.1)" in out
    assert "pickup_longitude  PSI" in out and "pickup_latitude" in out


def test_status_says_no_served_drift_with_its_largest_psi_and_mutes_a_failure(fakes: Any, capsys: Any,
                                                                               monkeypatch: Any) -> None:
    from modelcycle.cli import status

    svc = open_services(fakes.root)
    champion = svc.registry.get_alias(svc.ws.config.name, CHAMPION)
    rows = january(svc)
    log_requests(svc.ws, rows, champion_predictions(svc, rows), at=datetime.now(UTC) - timedelta(hours=1))
    status._served(svc.ws, champion)
    out = capsys.readouterr().out
    assert "served requests of the last day to v1, against its training rows: no drift (max PSI 0.0" in out

    def unreachable(*_a: Any, **_k: Any) -> Any:
        raise ConnectionError("the warehouse did not answer")

    monkeypatch.setattr(served, "reference_rows", unreachable)
    status._served(svc.ws, champion)
    assert "served requests: drift not measured: ConnectionError: the warehouse did not answer" in \
        capsys.readouterr().out
