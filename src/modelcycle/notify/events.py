"""What the lifecycle announces: one :class:`Event` per decision (a cycle's, or a human's
answer to an escalation, a rollback), written as one JSON line to the decision log and sent to every
configured channel."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class CycleOutcome(StrEnum):
    """How a cycle ended: the gate's three outcomes, a challenger not promoted and rolled back
    (``act.keep_rejected: false``), or a failure (rolled back)."""

    PROMOTE = "promote"
    KEEP = "keep"
    ESCALATE = "escalate"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"  # not promoted, and with act.keep_rejected false nothing of it was kept
    SKIPPED = "skipped"  # a deployed run with nothing to do (its window processed, or not complete yet)


class EventKind(StrEnum):
    DECISION = "decision"   # a cycle decided (or failed)
    APPROVAL = "approval"   # a human moved an alias (`modelcycle promote`)
    ROLLBACK = "rollback"   # a human moved the champion back (`modelcycle rollback`)
    OUTSIDE = "outside"     # an alias was moved outside modelcycle (the MLflow UI or API), found later
    PENDING = "pending"     # a deployed cycle escalated and waits for a human's answer


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Event:
    """One announcement. ``version`` is the challenger's version (or the version a human
    promoted), ``champion`` the version serving after the decision. Fields added later default
    to None, so older lines of the decision log read back."""

    model: str
    window: str
    outcome: CycleOutcome
    reasons: tuple[str, ...] = ()
    kind: EventKind = EventKind.DECISION
    version: str | None = None
    champion: str | None = None
    metric: str | None = None
    champion_score: float | None = None
    challenger_score: float | None = None
    git_commit: str | None = None
    time: str = field(default_factory=_now)
    # the gate's bar and evidence (None when the decision had none: no champion, no test)
    threshold: float | None = None
    min_effect: float | None = None
    improvement: float | None = None        # relative; positive: the challenger is better
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    # where to look: the ids always, the UI pages when the backends have one (notify.links)
    run_id: str | None = None               # the MLflow run of the cycle
    run_url: str | None = None
    version_url: str | None = None          # the registered version (``version``)
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    flow_run_url: str | None = None
    unpushed: str | None = None             # cycles whose data and model are not on the DVC remote yet

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to the decision log (enums as their values)."""
        d = asdict(self)
        d["outcome"], d["kind"], d["reasons"] = str(self.outcome), str(self.kind), list(self.reasons)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """An event read back from the decision log; unknown keys (a newer writer) are ignored,
        missing ones take their defaults, an unknown outcome or kind is kept as its text."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("model", "?")
        values.setdefault("window", "?")
        values["outcome"] = _member(CycleOutcome, values.get("outcome", "?"))
        values["kind"] = _member(EventKind, values.get("kind", EventKind.DECISION))
        values["reasons"] = tuple(str(r) for r in values.get("reasons") or ())
        return cls(**values)


def _member(enum: type[StrEnum], value: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        return str(value)
