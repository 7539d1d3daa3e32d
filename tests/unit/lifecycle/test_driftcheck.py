"""Drift between cycles (live_drift, for a data watcher) and the cycle's choice of the
champion's training rows: the reference fetched once per champion version, too few rows give
no figure, the cycle's own history rows are used when they are the champion's."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.config import Window, Workspace
from modelcycle.lifecycle import driftcheck
from modelcycle.registry.base import CHAMPION
from modelcycle.registry.memory import MemoryRegistry

CONFIG = """
name: rides
source: {kind: files, url: "data/*.csv"}
data:
  timestamp: ts
  target: y
  columns: {ts: datetime, y: float, x: float}
metric: mae
gate: {threshold: 2.5}
drift: {min_rows: 300}
"""


class CountingSource:
    """Rows every hour from 2024-01 on: ``x`` shifted by ``shift`` from ``shift_from``."""

    def __init__(self, shift: float = 0.0, shift_from: datetime = datetime(2100, 1, 1)) -> None:
        self.calls: list[tuple[datetime, datetime]] = []
        self.shift, self.shift_from = shift, shift_from

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        self.calls.append((start, end))
        ts = pd.date_range(start, end, freq="h", inclusive="left")
        rng = np.random.default_rng(int(start.timestamp()))
        x = rng.normal(0, 1, len(ts)) + np.where(ts >= self.shift_from, self.shift, 0.0)
        return pd.DataFrame({"ts": ts, "y": rng.normal(10, 2, len(ts)), "x": x})

    def describe(self) -> str:
        return "counting source"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "modelcycle.yaml").write_text(CONFIG)
    (tmp_path / "params.yaml").write_text("data: {history_months: 2}\n")
    return Workspace.load(tmp_path)


@pytest.fixture(autouse=True)
def _empty_cache():
    driftcheck._cache.clear()
    yield
    driftcheck._cache.clear()


def champion(registry: MemoryRegistry, window: str) -> str:
    mv = registry.register("rides", "models:/whatever", None, tags={"window": window})
    registry.set_alias("rides", CHAMPION, mv.version)
    return mv.version


def test_no_champion_gives_no_figure(ws):
    source = CountingSource()
    assert driftcheck.live_drift(ws, source, datetime(2024, 5, 1), datetime(2024, 5, 20),
                                 registry=MemoryRegistry()) is None
    assert source.calls == []


def test_the_reference_is_fetched_once_per_champion_version(ws):
    registry, source = MemoryRegistry(), CountingSource(shift=3.0, shift_from=datetime(2024, 5, 1))
    champion(registry, "2024-04")
    first = driftcheck.live_drift(ws, source, datetime(2024, 5, 1), datetime(2024, 5, 15), registry=registry)
    assert first is not None and first.drifted == ["x"]
    # its training range: the two history months and its window
    assert (datetime(2024, 2, 1), datetime(2024, 5, 1)) in source.calls
    again = driftcheck.live_drift(ws, source, datetime(2024, 5, 1), datetime(2024, 5, 20), registry=registry)
    assert again is not None and again.drifted == ["x"]
    assert source.calls.count((datetime(2024, 2, 1), datetime(2024, 5, 1))) == 1  # cached

    champion(registry, "2024-05")  # a new champion: its own rows, a third of which hold the shift
    later = driftcheck.live_drift(ws, source, datetime(2024, 6, 1), datetime(2024, 6, 20), registry=registry)
    assert (datetime(2024, 3, 1), datetime(2024, 6, 1)) in source.calls
    assert later is not None and later.columns["x"].psi < first.columns["x"].psi / 2


def test_too_few_rows_give_no_figure(ws):
    registry, source = MemoryRegistry(), CountingSource()
    champion(registry, "2024-04")
    # 299 hours arrived, min_rows is 300
    start = datetime(2024, 5, 1)
    end = (pd.Timestamp(start) + pd.Timedelta(hours=299)).to_pydatetime()
    assert driftcheck.live_drift(ws, source, start, end, registry=registry) is None
    assert driftcheck.live_drift(ws, source, start, end + pd.Timedelta(hours=1), registry=registry) is not None


def test_a_cycle_after_the_champions_month_uses_its_own_history_rows(ws):
    source = CountingSource()
    rows = source.fetch(datetime(2024, 3, 1), datetime(2024, 6, 1))
    registry = MemoryRegistry()
    champion(registry, "2024-04")
    mv = registry.get_alias("rides", CHAMPION)
    assert mv is not None
    source.calls.clear()
    reference, said = driftcheck.cycle_reference(ws, source, mv, Window.parse("2024-05"), rows)
    assert source.calls == [] and "history rows" in said
    assert reference["ts"].max() < datetime(2024, 5, 1) <= reference["ts"].min() + pd.Timedelta(days=62)
    # a champion kept since an older month: its own range is fetched
    reference, said = driftcheck.cycle_reference(ws, source, mv, Window.parse("2024-07"), rows)
    assert source.calls == [(datetime(2024, 2, 1), datetime(2024, 5, 1))] and "fetched" in said


def test_a_cycle_never_fails_on_drift(ws):
    registry = MemoryRegistry()
    champion(registry, "not a window")
    mv = registry.get_alias("rides", CHAMPION)
    assert mv is not None
    rows = CountingSource().fetch(datetime(2024, 3, 1), datetime(2024, 6, 1))
    found = driftcheck.in_cycle(ws, CountingSource(), mv, Window.parse("2024-05"), rows, rows)
    assert found is not None and found.report is None
    assert "has no `window` tag" in (found.error or "")
    assert found.metrics() == {} and found.reason() is None


def test_the_reason_names_inputs_and_target_apart():
    said = driftcheck.reason({"pickup_longitude": 2.5, "fare_amount": 0.31}, "fare_amount")
    assert said is not None
    assert said.startswith("inputs drifted: pickup_longitude (PSI 2.50); target drifted: fare_amount (PSI 0.31)")
    assert "the gate does not use it" in said
    assert driftcheck.reason({}, "fare_amount") is None


def test_the_module_does_not_import_prefect():
    code = "import sys, modelcycle.lifecycle.driftcheck; print('prefect' in sys.modules, 'mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_a_cycle_that_measured_no_drift_leaves_no_older_figures_for_status(ws):
    driftcheck.write_latest(ws, {"window": "2024-04", "drifted": {"x": 1.0}})
    assert driftcheck.read_latest(ws) == {"window": "2024-04", "drifted": {"x": 1.0}}
    registry = MemoryRegistry()
    run = registry.start_run(experiment="rides", run_name="cycle 2024-05")
    driftcheck.record(registry, run, ws, None)
    assert driftcheck.read_latest(ws) is None


class TableSource(CountingSource):
    """One fixed table of hourly rows (a range's rows are the same whatever else is asked)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = CountingSource().fetch(datetime(2024, 1, 1), datetime(2024, 12, 1))

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        self.calls.append((start, end))
        return self.table[(self.table["ts"] >= start) & (self.table["ts"] < end)].reset_index(drop=True)


def test_a_champion_kept_since_an_older_month_takes_the_rows_the_cycle_holds_and_fetches_the_rest(ws):
    from modelcycle.steps import validate as va

    source = TableSource()
    cycle = Window.parse("2024-06")
    rows, _ = va.validate(source.fetch(datetime(2024, 4, 1), datetime(2024, 7, 1)), ws.config.data,
                          window_start=cycle.start)   # the cycle's clean rows: 2 history months + the window
    registry = MemoryRegistry()
    champion(registry, "2024-04")   # trained on 2024-02..2024-05: 2024-04 is among the cycle's rows
    mv = registry.get_alias("rides", CHAMPION)
    assert mv is not None
    source.calls.clear()
    reference, said = driftcheck.cycle_reference(ws, source, mv, cycle, rows)
    assert source.calls == [(datetime(2024, 2, 1), datetime(2024, 4, 1))]   # only the months the cycle lacks
    assert "this cycle's rows of 2024-04-01..2024-05-01 and fetched 2024-02-01..2024-04-01" in said
    whole = driftcheck.fetch_training_rows(ws, source, mv)   # what was fetched before: the whole range
    assert len(reference) == len(whole)
    for column in ("ts", "y", "x"):
        pd.testing.assert_series_equal(reference[column], whole[column], check_names=False)
    assert np.shares_memory(reference.parts[1]["x"].to_numpy(), rows["x"].to_numpy())   # held, not copied
