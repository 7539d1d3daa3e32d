"""What validation found in a window, as the cycle uses it and as ``reports/validation.json`` holds it.

:class:`ValidationReport` counts the rows that came in and went out, the rows each rule dropped,
a few of the values that did not parse, and, for a classification window, its classes and what
is wrong with it as a whole (:mod:`modelcycle.steps.validate` fills it in).
:meth:`ValidationReport.to_dict` gives the file's contents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ValidationReport:
    """How many rows came in and went out, which rule dropped how many, and for the rules that
    are about a cell's type, a few of the values that did not parse."""

    rows_in: int
    rows_out: int
    window_rows_in: int
    window_rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: classification: the window's valid rows per class (as text), largest first
    class_counts: dict[str, int] = field(default_factory=dict)
    #: classes rules.<target>.allowed lists that have no valid row in the window
    empty_classes: list[str] = field(default_factory=list)
    #: the window's largest class count / its smallest (classes with rows); None when not classification
    class_imbalance: float | None = None
    #: the imbalance limit in force (data.max_class_ratio or its default); None: no limit
    max_class_ratio: float | None = None
    #: what is wrong with the window as a whole (empty classes, imbalance), in words
    window_problems: list[str] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        return self.rows_in - self.rows_out

    @property
    def window_invalid_fraction(self) -> float:
        return 0.0 if not self.window_rows_in else 1 - self.window_rows_out / self.window_rows_in

    def suspect(self, max_invalid_fraction: float) -> str | None:
        """Why the window's data is suspect (too many rows dropped, an empty class, an imbalance
        beyond the limit), in words; None when it is not."""
        reasons = list(self.window_problems)
        if self.window_invalid_fraction > max_invalid_fraction:
            reasons.insert(0, f"{self.window_invalid_fraction:.0%} of the window's rows failed validation "
                              f"(limit {max_invalid_fraction:.0%})")
        return "; ".join(reasons) or None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_dropped"] = self.rows_dropped
        d["window_invalid_fraction"] = round(self.window_invalid_fraction, 6)
        return d

    def _rule(self, rule: str, n: int) -> str:
        shown = self.examples.get(rule)
        return f"{rule}: {n}" + (f" (e.g. {', '.join(shown)})" if shown else "")

    def summary(self) -> str:
        problems = "".join(f"; {p}" for p in self.window_problems)
        if not self.dropped:
            return f"{self.rows_in} rows, all valid{problems}"
        parts = ", ".join(self._rule(rule, n) for rule, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]))
        return (f"{self.rows_dropped} of {self.rows_in} rows dropped ({parts}); "
                f"window: {self.window_invalid_fraction:.1%} invalid{problems}")

