"""The stage outputs' background writes: held until the fit when the cycle asks, in order, and
never lost (a wait or a close writes what is held). A cycle's use of them: test_phases."""

from __future__ import annotations

import threading
import time

import pytest

from modelcycle.lifecycle.stages import BackgroundWrites


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
