"""Time windows: a month such as ``2015-03``, or an explicit range ``2015-03-01..2015-03-16``.

A window is half-open, ``[start, end)``. Cycles evaluate one window; the challenger also trains
on the ``history_months`` before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from modelcycle.errors import ConfigError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


def _add_months(d: datetime, n: int) -> datetime:
    total = d.year * 12 + (d.month - 1) + n
    return d.replace(year=total // 12, month=total % 12 + 1, day=1)


@dataclass(frozen=True, order=True)
class Window:
    start: datetime
    end: datetime
    label: str

    @classmethod
    def parse(cls, text: str) -> Window:
        text = str(text).strip()
        if m := _MONTH.match(text):
            year, month = int(m.group(1)), int(m.group(2))
            if not 1 <= month <= 12:
                raise ConfigError(f"'{text}' is not a month", "write a window as YYYY-MM, e.g. 2015-03")
            start = datetime(year, month, 1)
            return cls(start, _add_months(start, 1), text)
        if m := _RANGE.match(text):
            try:
                start = datetime.combine(date.fromisoformat(m.group(1)), datetime.min.time())
                end = datetime.combine(date.fromisoformat(m.group(2)), datetime.min.time())
            except ValueError as exc:
                raise ConfigError(f"'{text}' is not a valid date range: {exc}") from exc
            if end <= start:
                raise ConfigError(f"window '{text}' ends before it starts",
                                  "write it as START..END with END after START (END excluded)")
            return cls(start, end, text)
        raise ConfigError(
            f"'{text}' is not a window",
            "write a month as YYYY-MM (2015-03) or a range as YYYY-MM-DD..YYYY-MM-DD (end excluded)",
        )

    @property
    def is_month(self) -> bool:
        return _MONTH.match(self.label) is not None

    def history_start(self, months: int) -> datetime:
        """Start of the ``months`` whole months before this window."""
        first = self.start.replace(day=1)
        return _add_months(first, -months) if months else self.start

    def next(self) -> Window:
        if not self.is_month:
            span = self.end - self.start
            return Window(self.end, self.end + span,
                          f"{self.end:%Y-%m-%d}..{(self.end + span):%Y-%m-%d}")
        return Window.parse(f"{self.end:%Y-%m}")

    def following(self) -> Window:
        """The window a cycle takes after this one: :meth:`next`, except that a range starting on
        the first of a month and ending inside it (a cycle started early, on drift in the rows
        so far) is followed by its whole month, so the monthly cadence resumes."""
        if not self.is_month and self.start.day == 1 and self.start.time() == datetime.min.time():
            month = Window.parse(f"{self.start:%Y-%m}")
            if self.end < month.end:
                return month
        return self.next()

    def __str__(self) -> str:
        return self.label


def month_range(first: str, last: str) -> list[Window]:
    """The months from ``first`` to ``last`` inclusive (both YYYY-MM)."""
    a, b = Window.parse(first), Window.parse(last)
    if not (a.is_month and b.is_month):
        raise ConfigError("a backtest runs over months", "write --from and --to as YYYY-MM")
    if b.start < a.start:
        raise ConfigError(f"--to {last} is before --from {first}", "swap them")
    out = [a]
    while out[-1].start < b.start:
        out.append(out[-1].next())
    return out
