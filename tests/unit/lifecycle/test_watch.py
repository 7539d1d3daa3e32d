"""The data watcher's checks, on a real taxifare warehouse and the in-memory registry and git:
a complete window is announced once, a processed one never, drift in the open window's rows so
far is announced once with those rows as the window; and the window rules themselves."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from modelcycle.config import Window, Workspace
from modelcycle.lifecycle import automation, watch
from modelcycle.lifecycle.services import open_services


def trim(root: Path, end: str, *, break_coordinates_from: str | None = None) -> None:
    """The warehouse as if only the rows before ``end`` had arrived (and, optionally, with the
    coordinates of the rows from a date on broken, as in the simulator's May 2015)."""
    con = duckdb.connect(str(root / ".modelcycle" / "warehouse.duckdb"))
    try:
        con.execute("DELETE FROM rides WHERE pickup_datetime >= CAST(? AS TIMESTAMP)", [end])
        if break_coordinates_from:
            con.execute("UPDATE rides SET pickup_longitude = pickup_latitude, pickup_latitude = pickup_longitude "
                        "WHERE pickup_datetime >= CAST(? AS TIMESTAMP)", [break_coordinates_from])
    finally:
        con.close()


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, ws: Workspace, event: str, window: Window, why: str, **payload: Any) -> None:
        self.events.append((event, window.label, payload))


NOW = datetime(2026, 11, 28, 12, 0)


def test_a_complete_window_is_announced_once(fakes: Any) -> None:
    trim(fakes.root, "2015-02-01")  # 2014-12 processed; 2015-01 arrived whole
    svc, sent = open_services(fakes.root), Sent()
    announced = watch.Announced.load(svc.ws)
    first = watch.check_once(svc, announced, now=NOW, send=sent)
    assert first.announced and first.window == Window.parse("2015-01")
    assert sent.events == [(automation.EVENT_WINDOW, "2015-01", {})]
    again = watch.check_once(svc, watch.Announced.load(svc.ws), now=NOW + timedelta(minutes=1), send=sent)
    assert not again.announced and len(sent.events) == 1  # remembered in watch.json
    later = watch.check_once(svc, announced, now=NOW + watch.REANNOUNCE, send=sent)
    assert later.announced and len(sent.events) == 2  # still not processed: said again


def test_nothing_is_announced_before_the_window_ends_or_once_it_is_processed(fakes: Any) -> None:
    trim(fakes.root, "2015-01-20")
    svc, sent = open_services(fakes.root), Sent()
    found = watch.check_once(svc, watch.Announced.load(svc.ws), now=datetime(2015, 1, 25), send=sent)
    assert found.window is None and "not complete" in found.why and sent.events == []
    svc.ws.path("params.yaml").write_text(svc.ws.path("params.yaml").read_text().replace("window: 2014-12",
                                                                                          "window: 2015-01"))
    found = watch.check_once(svc, watch.Announced.load(svc.ws), now=NOW, send=sent)
    assert found.window is None and "2015-02 has not started" in found.why and sent.events == []


@pytest.mark.parametrize("broken", [False, True])
def test_drift_in_the_rows_so_far_starts_a_cycle_on_them(fakes: Any, broken: bool) -> None:
    trim(fakes.root, "2015-01-15", break_coordinates_from="2015-01-01" if broken else None)
    config = fakes.root / "modelcycle.yaml"  # this workspace simulates 1,000 rides a month
    config.write_text(config.read_text() + "drift:\n  min_rows: 200\n")
    svc, sent = open_services(fakes.root), Sent()
    announced, drift = watch.Announced.load(svc.ws), watch.DriftWatch()
    found = watch.check_once(svc, announced, now=datetime(2015, 1, 15, 6), send=sent, drift=drift)
    assert drift.latest is not None and drift.latest.date() == datetime(2015, 1, 14).date()  # it measured
    if not broken:
        assert sent.events == [] and not found.announced  # a quiet half month: nothing
        return
    assert found.announced and found.window == Window.parse("2015-01-01..2015-01-15")
    [(event, label, payload)] = sent.events
    assert (event, label) == (automation.EVENT_DRIFT, "2015-01-01..2015-01-15")
    assert {"pickup_longitude", "pickup_latitude"} <= set(payload["drifted"])
    watch.check_once(svc, announced, now=datetime(2015, 1, 15, 8), send=sent, drift=drift)
    assert len(sent.events) == 1  # once per open window


def test_after_a_cycle_on_part_of_a_month_comes_the_whole_month() -> None:
    assert Window.parse("2015-05-01..2015-05-15").following() == Window.parse("2015-05")
    assert Window.parse("2015-05").following() == Window.parse("2015-06")
    assert Window.parse("2015-05-10..2015-05-20").following() == Window.parse("2015-05-20..2015-05-30")


def test_when_a_window_is_complete() -> None:
    month, settle = Window.parse("2015-05"), timedelta(minutes=30)
    assert automation.complete(month, datetime(2015, 6, 1, 0, 5), now=datetime(2015, 6, 1), settle=settle)
    assert not automation.complete(month, datetime(2015, 5, 31, 23), now=datetime(2015, 6, 1, 0, 10), settle=settle)
    assert automation.complete(month, datetime(2015, 5, 31, 23), now=datetime(2015, 6, 1, 0, 31), settle=settle)
    assert not automation.complete(month, datetime(2015, 4, 30), now=datetime(2026, 1, 1), settle=settle)
    assert not automation.complete(month, None, now=datetime(2026, 1, 1), settle=settle)
