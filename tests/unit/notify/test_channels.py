"""A failing channel is retried with a doubling wait, logged without its secrets, and never
holds back the other channels or raises."""

from __future__ import annotations

import logging
import threading

from modelcycle.notify import CycleOutcome, Event, Notifier
from modelcycle.notify.channels import AppriseChannel, channel_label, deliver

EVENT = Event(model="m", window="2015-03", outcome=CycleOutcome.PROMOTE, version="2", reasons=("better",),
              run_id="r1", run_url="http://ml:5000/#/runs/r1")


class FakeChannel:
    def __init__(self, label: str, fail_times: int = 0, raises: bool = False) -> None:
        self.label, self.fail_times, self.raises = label, fail_times, raises
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def send(self, title: str, body: str, kind: str) -> bool:
        with self._lock:
            self.calls.append((title, body, kind))
            failing = len(self.calls) <= self.fail_times
        if failing and self.raises:
            raise ConnectionError("refused by https://bob:hunter2@hooks.example.com")
        return not failing


def test_a_channel_that_recovers_is_tried_with_doubling_waits() -> None:
    waits: list[float] = []
    flaky = FakeChannel("json://127.0.0.1:9", fail_times=2)
    assert deliver(flaky, "t", "b", retries=3, backoff_seconds=0.5, sleep=waits.append) is None
    assert len(flaky.calls) == 3 and waits == [0.5, 1.0]


def test_a_dead_channel_is_tried_retries_plus_one_times_then_reported(caplog) -> None:
    waits: list[float] = []
    dead = FakeChannel("jsons://hooks.example.com", fail_times=99, raises=True)
    with caplog.at_level(logging.WARNING, logger="modelcycle.notify"):
        problem = deliver(dead, "t", "b", retries=3, backoff_seconds=0.5, sleep=waits.append)
    assert len(dead.calls) == 4 and waits == [0.5, 1.0, 2.0]
    assert problem is not None and "jsons://hooks.example.com" in problem and "after 4 attempts" in problem
    failures = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(failures) == 4 and "giving up" in failures[-1]
    assert all("hunter2" not in m for m in [*failures, problem])


def test_no_retries_means_one_attempt_and_no_wait() -> None:
    waits: list[float] = []
    dead = FakeChannel("x://h", fail_times=99)
    assert deliver(dead, "t", "b", retries=0, sleep=waits.append) is not None
    assert len(dead.calls) == 1 and waits == []


def test_channels_are_independent_and_a_failure_never_raises() -> None:
    waits: list[float] = []
    dead, good = FakeChannel("json://down", fail_times=99, raises=True), FakeChannel("json://up")
    n = Notifier(channels=[dead, good], retries=2, backoff_seconds=0.25, sleep=waits.append)
    problems = n.send(EVENT)
    assert len(problems) == 1 and "json://down" in problems[0]
    assert len(dead.calls) == 3 and sorted(waits) == [0.25, 0.5]
    assert len(good.calls) == 1
    title, body, kind = good.calls[0]
    assert title == "modelcycle: [m] 2015-03: PROMOTE (v2 is the champion)" and kind == "success"
    assert "http://ml:5000/#/runs/r1" in body and "  - better" in body


def test_a_channel_is_named_by_scheme_and_host_only() -> None:
    assert channel_label("jsons://bob:hunter2@hooks.example.com:8443/path?token=x") == "jsons://hooks.example.com:8443"
    slack = AppriseChannel("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F")
    assert slack.label.startswith("slack://") and "T1JJ3T3L2" not in slack.label and "TIiajk" not in slack.label
    assert AppriseChannel("json://bob:hunter2@127.0.0.1:9/x").label == "json://127.0.0.1:9"
