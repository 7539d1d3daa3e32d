"""The stage outputs' background writes: held until the fit when the cycle asks, in order, and
never lost (a wait or a close writes what is held)."""

from __future__ import annotations

import threading
import time

import pytest

from modelcycle.lifecycle import flows, services, stages
from modelcycle.lifecycle.stages import BackgroundWrites
from modelcycle.versioning import partitions as parts
from tests.unit.lifecycle.conftest import Fakes


def test_held_writes_start_only_when_released_and_in_the_order_they_came() -> None:
    done: list[int] = []
    writes = BackgroundWrites(hold=True)
    try:
        for i in range(3):
            writes.submit(lambda i=i: done.append(i))
        time.sleep(0.2)
        assert done == []  # held
        writes.release()
        writes.submit(lambda: done.append(3))  # after the release: at once, after the held ones
        writes.wait()
        assert done == [0, 1, 2, 3]
    finally:
        writes.close()


def test_wait_and_close_write_what_is_held_and_a_failed_write_is_raised() -> None:
    done: list[str] = []
    writes = BackgroundWrites(hold=True)
    writes.submit(lambda: done.append("a"))
    writes.submit(lambda: (_ for _ in ()).throw(OSError(28, "No space left on device", "data/raw/2015-01.parquet")))
    writes.submit(lambda: done.append("c"))
    with pytest.raises(OSError, match="No space left"):
        writes.wait()
    assert done == ["a", "c"]  # the others still written

    closing = BackgroundWrites(hold=True)
    closing.submit(lambda: done.append("d"))
    closing.close()
    assert done == ["a", "c", "d"]


def test_writes_without_hold_start_at_once() -> None:
    started = threading.Event()
    writes = BackgroundWrites()
    try:
        writes.submit(started.set)
        assert started.wait(5)
    finally:
        writes.close()


@pytest.mark.usefixtures("prefect_server")
def test_a_cycle_writes_its_rows_files_while_it_trains_not_while_it_validates(
        fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    validate, write, train = stages.va.validate_rows, parts.write, stages.train

    def validating(*args, **kwargs):
        got = validate(*args, **kwargs)
        time.sleep(0.3)  # time enough for a write started beside it to show
        events.append("validated")
        return got

    def writing(*args, **kwargs):
        events.append("write partitions")
        return write(*args, **kwargs)

    def training(*args, **kwargs):
        events.append("train")
        return train(*args, **kwargs)

    monkeypatch.setattr(stages.va, "validate_rows", validating)
    monkeypatch.setattr(parts, "write", writing)
    monkeypatch.setattr(stages, "train", training)
    with services.using(factory=fakes):
        result = flows.run(fakes.root, "2015-01")
    assert result.outcome != "failed", result.reasons
    assert events.index("validated") < events.index("write partitions")
    assert "train" in events and events.count("write partitions") == 1
    assert sorted(p.name for p in (fakes.root / "data" / "raw").glob("*.parquet"))  # written all the same
    assert (fakes.root / "data" / "train.json").is_file()
