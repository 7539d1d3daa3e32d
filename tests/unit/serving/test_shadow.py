"""The prediction log of shadow scoring: what it writes, where, and that it never holds up or
breaks the request path."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.registry.base import ModelVersion
from modelcycle.serving.shadow import LOG_COLUMNS, ShadowLog, harmonise


class Tripler:
    """A challenger: three times x (or whatever ``predict`` is set to)."""

    def __init__(self, version: str = "3") -> None:
        self.version = ModelVersion("rides", version, f"memory://v{version}")
        self.calls = 0

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        return frame["x"].to_numpy() * 3


class Failing(Tripler):
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        raise RuntimeError("the challenger's feature builder broke")


class Gated(Tripler):
    """A challenger that predicts only once ``go`` is set (to fill the queue behind it)."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.started = threading.Event()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.started.set()
        self.go.wait(10)
        return super().predict(frame)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def request(*ids: int) -> pd.DataFrame:
    return pd.DataFrame({"trip_id": list(ids), "x": [float(i) for i in ids], "city": ["nyc"] * len(ids)})


def read_log(root: Path) -> pd.DataFrame:
    files = sorted(root.rglob("part-*.parquet"))
    assert files, f"no log file under {root}"
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_each_request_row_is_logged_with_both_predictions_versions_and_keys(tmp_path):
    challenger = Tripler("3")
    clock = Clock(datetime(2025, 3, 4, 10, 30, tzinfo=UTC))
    shadow = ShadowLog(tmp_path, challenger=lambda: challenger, key_columns=["trip_id"], clock=clock)
    shadow.start()
    frame = request(11, 12)
    assert shadow.submit("req-1", frame, frame["x"].to_numpy() * 2, "2") is True
    frame = request(13)
    assert shadow.submit("req-2", frame, np.array([[26.0]]), "2") is True   # a column of predictions
    shadow.close()

    files = list(tmp_path.glob("date=2025-03-04/part-*.parquet"))
    assert len(files) == 1
    logged = pd.read_parquet(files[0])
    assert list(logged.columns) == ["request_id", "time", "row", "trip_id", *LOG_COLUMNS[3:]]
    assert logged["request_id"].tolist() == ["req-1", "req-1", "req-2"]
    assert logged["row"].tolist() == [0, 1, 0]
    assert logged["trip_id"].tolist() == [11, 12, 13]
    assert str(logged["trip_id"].dtype) == "int64"       # the key keeps its type
    assert logged["champion_version"].tolist() == ["2", "2", "2"]
    assert logged["champion_prediction"].tolist() == [22.0, 24.0, 26.0]
    assert logged["challenger_version"].tolist() == ["3", "3", "3"]
    assert logged["challenger_prediction"].tolist() == [33.0, 36.0, 39.0]
    assert (logged["time"] == pd.Timestamp("2025-03-04 10:30", tz="UTC")).all()
    assert shadow.counters() == {"submitted": 2, "dropped": 0, "written_rows": 3, "written_files": 1,
                                     "errors": 0, "queued": 0, "buffered_rows": 0}


def test_without_a_challenger_its_columns_are_null(tmp_path):
    shadow = ShadowLog(tmp_path, challenger=lambda: None, key_columns=["trip_id", "missing"])
    frame = request(1, 2)
    shadow.submit("r", frame, np.array([1.0, 2.0]), "2")
    shadow.close()   # never started: closing scores what is queued and writes it
    logged = read_log(tmp_path)
    assert logged["challenger_version"].isna().all()
    assert logged["challenger_prediction"].isna().all()
    assert logged["missing"].isna().all()                # a key the request lacks is null
    assert logged["champion_prediction"].tolist() == [1.0, 2.0]


def test_the_model_inputs_a_request_holds_are_logged_under_their_prefixed_names(tmp_path):
    shadow = ShadowLog(tmp_path, challenger=lambda: None, key_columns=["trip_id"],
                       input_columns=["trip_id", "x", "city", "absent"])
    frame = request(7, 8)
    shadow.submit("r", frame, np.array([1.0, 2.0]), "2")
    shadow.close()
    logged = read_log(tmp_path)
    assert list(logged.columns) == ["request_id", "time", "row", "trip_id", *LOG_COLUMNS[3:],
                                    "input.trip_id", "input.x", "input.city"]   # one the request lacks: none
    assert logged["input.x"].tolist() == [7.0, 8.0] and logged["input.city"].tolist() == ["nyc", "nyc"]
    assert logged["input.trip_id"].tolist() == logged["trip_id"].tolist() == [7, 8]   # a key and an input


def test_a_full_queue_drops_the_request_at_once_and_counts_it(tmp_path):
    challenger = Gated()
    shadow = ShadowLog(tmp_path, challenger=lambda: challenger, key_columns=["trip_id"], queue_size=2)
    shadow.start()
    frame = request(1)
    preds = np.array([2.0])
    assert shadow.submit("busy", frame, preds, "2")
    assert challenger.started.wait(5)                    # the worker is stuck on the first request
    assert shadow.submit("q1", frame, preds, "2") and shadow.submit("q2", frame, preds, "2")

    took = []
    for i in range(200):
        started = time.perf_counter()
        accepted = shadow.submit(f"drop-{i}", frame, preds, "2")
        took.append(time.perf_counter() - started)
        assert accepted is False
    assert max(took) < 0.01, f"submit on a full queue took up to {max(took) * 1000:.1f} ms"
    assert shadow.counters()["dropped"] == 200

    challenger.go.set()
    shadow.close()
    assert read_log(tmp_path)["request_id"].tolist() == ["busy", "q1", "q2"]
    assert shadow.counters()["written_rows"] == 3


def test_rows_go_to_the_folder_of_their_utc_day(tmp_path):
    clock = Clock(datetime(2025, 3, 4, 23, 59, 30, tzinfo=UTC))
    shadow = ShadowLog(tmp_path, challenger=lambda: Tripler(), key_columns=["trip_id"], clock=clock)
    shadow.submit("late", request(1), np.array([2.0]), "2")
    clock.now += timedelta(seconds=45)                   # past midnight, UTC
    shadow.submit("early", request(2), np.array([4.0]), "2")
    # a clock of another zone: 01:00 in UTC+2 is 23:00 UTC the day before
    clock.now = datetime(2025, 3, 6, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    shadow.submit("zoned", request(3), np.array([6.0]), "2")
    shadow.close()
    days = {p.parent.name: pd.read_parquet(p)["request_id"].tolist() for p in tmp_path.rglob("part-*.parquet")}
    assert days == {"date=2025-03-04": ["late"], "date=2025-03-05": ["early", "zoned"]}
    assert not list(tmp_path.rglob("*.tmp"))             # files are written whole, then renamed


def test_a_failing_challenger_gives_null_predictions_and_the_worker_lives_on(tmp_path, caplog):
    failing = Failing("4")
    current: list[Tripler] = [failing]
    shadow = ShadowLog(tmp_path, challenger=lambda: current[0], key_columns=["trip_id"])
    shadow.start()
    caplog.set_level(logging.WARNING, logger="modelcycle.serving.shadow")
    for i in range(5):
        shadow.submit(f"bad-{i}", request(i), np.array([1.0]), "2")
    _wait(lambda: failing.calls == 5)
    current[0] = Tripler("5")                            # the challenger is replaced: the log goes on
    shadow.submit("good", request(7), np.array([14.0]), "2")
    shadow.close()

    logged = read_log(tmp_path).set_index("request_id")
    assert logged.loc["bad-0", "challenger_version"] == "4"
    assert pd.isna(logged.loc["bad-0", "challenger_prediction"])
    assert logged.loc["good", "challenger_prediction"] == 21.0
    assert shadow.counters()["errors"] == 5
    warnings = [r for r in caplog.records if "failed to predict" in r.getMessage()]
    assert len(warnings) == 1                            # rate-limited: one warning, not five
    assert "challenger v4" in warnings[0].getMessage() and "feature builder broke" in warnings[0].getMessage()


def test_a_challenger_of_the_wrong_length_counts_as_a_failure(tmp_path):
    class Short(Tripler):
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.array([1.0])

    shadow = ShadowLog(tmp_path, challenger=lambda: Short(), key_columns=[])
    shadow.submit("r", request(1, 2), np.array([1.0, 2.0]), "2")
    shadow.close()
    assert read_log(tmp_path)["challenger_prediction"].isna().all()
    assert shadow.counters()["errors"] == 1


def test_the_buffer_is_written_when_it_reaches_its_size_and_after_its_interval(tmp_path):
    shadow = ShadowLog(tmp_path, challenger=lambda: None, key_columns=[], flush_rows=4, flush_seconds=0.3)
    shadow.start()
    shadow.submit("a", request(1, 2, 3, 4), np.zeros(4), "2")
    _wait(lambda: shadow.counters()["written_rows"] == 4)    # size reached
    shadow.submit("b", request(5), np.zeros(1), "2")
    _wait(lambda: shadow.counters()["written_rows"] == 5)    # the interval passed, nothing closed
    assert len(list(tmp_path.rglob("part-*.parquet"))) == 2
    shadow.close()


def test_close_writes_what_is_buffered_and_later_requests_are_dropped(tmp_path):
    shadow = ShadowLog(tmp_path, challenger=lambda: Tripler(), key_columns=["trip_id"], flush_seconds=3600)
    shadow.start()
    for i in range(10):
        shadow.submit(f"r{i}", request(i), np.array([0.0]), "2")
    shadow.close()
    assert len(read_log(tmp_path)) == 10
    assert shadow.submit("after", request(1), np.array([0.0]), "2") is False
    assert shadow.counters()["dropped"] == 1


def test_a_key_of_different_types_in_different_requests_is_written_as_text(tmp_path):
    shadow = ShadowLog(tmp_path, challenger=lambda: None, key_columns=["trip_id"])
    shadow.submit("number", request(1), np.array([0.0]), "2")
    shadow.submit("text", pd.DataFrame({"trip_id": ["T-2"], "x": [2.0]}), np.array([0.0]), "2")
    shadow.close()
    assert read_log(tmp_path)["trip_id"].tolist() == ["1", "T-2"]


def test_harmonise_keeps_a_column_of_one_type_as_it_is():
    frames = [pd.DataFrame({"k": [1, 2], "p": [None, None]}), pd.DataFrame({"k": [3], "p": [0.5]})]
    out = harmonise(frames)
    assert out["k"].tolist() == [1, 2, 3] and str(out["k"].dtype) == "int64"
    assert out["p"].tolist()[2] == 0.5


def test_submit_never_raises_even_on_a_broken_clock(tmp_path):
    def broken() -> datetime:
        raise OSError("clock")

    shadow = ShadowLog(tmp_path, challenger=lambda: None, key_columns=[], clock=broken)
    assert shadow.submit("r", request(1), np.array([0.0]), "2") is False
    assert shadow.counters()["errors"] == 1


def test_a_disk_that_refuses_the_file_loses_rows_not_the_worker(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the log's folder should be")
    shadow = ShadowLog(blocked, challenger=lambda: None, key_columns=[], flush_rows=1)
    shadow.start()
    shadow.submit("r1", request(1), np.array([0.0]), "2")
    _wait(lambda: shadow.counters()["errors"] == 1)
    blocked.unlink()                                     # the disk is usable again
    shadow.submit("r2", request(2), np.array([0.0]), "2")
    _wait(lambda: shadow.counters()["written_rows"] == 1)
    shadow.close()
    assert read_log(blocked)["request_id"].tolist() == ["r2"]


def _wait(done, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.01)


def test_champion_predictions_of_the_wrong_length_lose_that_request_only(tmp_path):
    shadow = ShadowLog(tmp_path, challenger=lambda: None, key_columns=[])
    shadow.start()
    shadow.submit("bad", request(1, 2), np.array([1.0]), "2")
    shadow.submit("good", request(3), np.array([3.0]), "2")
    shadow.close()
    assert read_log(tmp_path)["request_id"].tolist() == ["good"]
    assert shadow.counters()["errors"] == 1
