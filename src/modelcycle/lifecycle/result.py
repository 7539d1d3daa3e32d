"""What one cycle did (:class:`CycleResult`) and how long its phases took (:class:`Timer`)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from modelcycle.gate import Decision
from modelcycle.notify import CycleOutcome


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


@dataclass
class CycleResult:
    """What one cycle did, for the CLI, the backtest table and the benchmark."""

    window: str
    outcome: CycleOutcome
    reasons: list[str]
    metric: str
    champion_version: str | None = None     # the champion the cycle started with
    challenger_version: str | None = None   # the version the challenger was registered as
    serving_version: str | None = None      # the champion after the cycle
    champion_score: float | None = None
    challenger_score: float | None = None
    noise_floor: float | None = None
    improvement: float | None = None        # the gate's relative improvement (positive: better)
    ci_low: float | None = None             # its interval, with the bootstrap test
    ci_high: float | None = None
    confidence: float | None = None
    negative_flips: int | None = None       # classifiers: held-out rows the champion got right, the challenger wrong
    positive_flips: int | None = None       # and the reverse
    rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    git_commit: str | None = None
    git_tag: str | None = None
    data_hash: str | None = None
    mlflow_run_id: str | None = None
    flow_run_id: str | None = None
    error: str | None = None
    notify_problems: list[str] = field(default_factory=list)
    approved: bool = False                  # an escalation approved afterwards (backtest option)
    rolled_back: str | None = None          # what a failed or rolled-back cycle put back, in words
    repaired: str | None = None             # what the cycle's start-up recovery repaired
    outside_moves: list[str] = field(default_factory=list)  # alias moves found made outside modelcycle
    drifted: dict[str, float] = field(default_factory=dict)  # columns that drifted from the champion's rows: PSI
    drift_max_psi: float | None = None      # the largest PSI of any column (None: not measured)
    drift_error: str | None = None          # why drift was not measured (it never fails a cycle)
    unpushed: str | None = None             # versioning.push best-effort: the cycles not pushed yet, in words
    candidate: str | None = None            # params.yaml candidates: the one the gate chose
    candidates: list[dict[str, Any]] = field(default_factory=list)  # every candidate's score and verdict

    def decided(self, decision: Decision) -> None:
        """Take the gate's outcome, reasons and evidence (the improvement and its interval, when
        the decision compared two models)."""
        self.outcome, self.reasons = CycleOutcome(decision.outcome), list(decision.reasons)
        d = decision.details
        self.improvement, self.ci_low, self.ci_high, self.confidence = (
            _number(d.get("improvement")), _number(d.get("ci_low")), _number(d.get("ci_high")),
            _number(d.get("confidence")))
        self.negative_flips, self.positive_flips = _count(d.get("negative_flips")), _count(d.get("positive_flips"))
        self.candidate = d.get("candidate") if isinstance(d.get("candidate"), str) else self.candidate
        self.candidates = list(d.get("candidates") or self.candidates)

    @property
    def compute_seconds(self) -> float:
        """Model compute on the cycle's critical path: the challenger's fit (features included)
        or the champion's load and predictions, whichever took longer (they run in parallel),
        then the challenger's predictions."""
        t = self.timings
        champion = t.get("champion_load", 0.0) + t.get("champion_predict", 0.0)
        return max(t.get("fit", 0.0), champion) + t.get("challenger_predict", 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["compute_seconds"] = self.compute_seconds
        return d


class Timer:
    """Laps of a cycle: ``lap(name)`` records the time since the previous lap."""

    def __init__(self) -> None:
        self.started = self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now

    def add(self, name: str, seconds: float) -> None:
        self.laps[name] = seconds

    def total(self) -> float:
        return time.perf_counter() - self.started
