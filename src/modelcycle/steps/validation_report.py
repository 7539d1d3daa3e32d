"""What validation found in a window, as the cycle uses it and as ``reports/validation.json`` holds it.

:class:`ValidationReport` counts the rows that came in and went out, the rows each rule dropped,
a few of the values that did not parse, and, for a classification window, its classes and what
is wrong with it as a whole (:mod:`modelcycle.steps.validate` fills it in).
:meth:`ValidationReport.to_dict` gives the file's contents and :meth:`ValidationReport.from_dict`
reads them back, from a report of an older version too: a key it lacks takes its default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: The counts every version of the report holds: without them a file is no validation report.
_COUNTS = ("rows_in", "rows_out", "window_rows_in", "window_rows_out")


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

    @classmethod
    def from_dict(cls, found: Mapping[str, Any]) -> ValidationReport:
        """The report whose :meth:`to_dict` gave ``found`` (``reports/validation.json``'s contents).

        A key that a report of an older version lacks takes its default; a key this version does
        not know, and the derived ``rows_dropped`` and ``window_invalid_fraction``, are left aside.
        ValueError, naming the key, when one of the four row counts is missing or a value is not
        of its kind."""
        if not isinstance(found, Mapping):
            raise ValueError(f"it holds {type(found).__name__}, not an object of keys and values")
        missing = [key for key in _COUNTS if key not in found]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)} (a validation report counts {', '.join(_COUNTS)})")
        known = {f.name for f in fields(cls)}
        return cls(**{key: _read(key, value) for key, value in found.items() if key in known})

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


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _counts(value: Any) -> bool:
    return isinstance(value, dict) and all(map(_count, value.values()))


def _lists(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, list) for v in value.values())


#: Per key of the report: what its value must be (in words, and as a check) and the value as the
#: report holds it (containers copied, so that the report never shares one with ``found``).
_KINDS: dict[str, tuple[str, Callable[[Any], bool], Callable[[Any], Any]]] = {
    **{key: ("a whole number", _count, int) for key in _COUNTS},
    "dropped": ("an object of row counts", _counts, dict),
    "class_counts": ("an object of row counts", _counts, dict),
    "examples": ("an object of lists", _lists, lambda v: {k: [str(s) for s in shown] for k, shown in v.items()}),
    "empty_classes": ("a list", lambda v: isinstance(v, list), lambda v: [str(s) for s in v]),
    "window_problems": ("a list", lambda v: isinstance(v, list), lambda v: [str(s) for s in v]),
    "class_imbalance": ("a number or null", _number, lambda v: None if v is None else float(v)),
    "max_class_ratio": ("a number or null", _number, lambda v: None if v is None else float(v)),
}


def _read(key: str, value: Any) -> Any:
    """``value`` of the report's ``key`` as :class:`ValidationReport` holds it, or ValueError."""
    want, fits, convert = _KINDS[key]
    if not fits(value):
        raise ValueError(f"its {key} is {value!r}, not {want}")
    return convert(value)
