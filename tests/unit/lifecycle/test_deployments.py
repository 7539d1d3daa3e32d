"""A deployment's schedule options, read and refused before anything connects."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelcycle.errors import ConfigError
from modelcycle.lifecycle import deployments


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1.5h", 5400), ("1d", 86400)])
def test_intervals(text: str, seconds: float) -> None:
    assert deployments.parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("cron", "interval", "tz", "said"), [
    ("0 3 1 * *", "5m", None, "not both"),
    (None, "5x", None, "not a time span"),
    (None, "0s", None, "not a time span"),
    (None, None, "Mars/Base", "not a time zone"),
    ("nonsense", None, None, "not a cron expression"),
])
def test_bad_schedules_are_refused_with_what_to_write(cron, interval, tz, said) -> None:
    with pytest.raises(ConfigError, match=said) as refused:
        deployments.check_schedule(cron, interval, tz)
    assert refused.value.hint


def test_a_cron_with_five_fields_is_checked_by_prefects_own_parser() -> None:
    deployments.check_schedule("0 3 1 * *", None, "Europe/Paris")
    deployments.check_cron("0 3 1 * *")
    with pytest.raises(ConfigError, match="not a cron expression"):
        deployments.check_cron("61 3 1 * *")
