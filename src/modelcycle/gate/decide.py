"""Decide between the champion and the challenger.

``decide`` is a pure function of the two scores (taken on the same held-out rows), the policy
and the data's health. It returns an outcome and the reasons in plain words:

* the window's data is suspect (too many rows failed validation): never promote; keep or
  escalate as the policy says;
* no champion yet: promote the challenger if it meets the threshold, else escalate;
* the challenger beats the champion by the minimum improvement and meets the threshold: promote;
* the champion no longer meets the threshold but the challenger does: promote;
* otherwise, the champion still meets the threshold: keep;
* neither meets the threshold: escalate to a human.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from modelcycle.steps.evaluate import METRICS, Scores


class Outcome(str, Enum):
    PROMOTE = "promote"
    KEEP = "keep"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class Policy:
    metric: str
    threshold: float
    min_improvement: float = 0.0
    on_bad_data: str = "escalate"

    @property
    def greater_is_better(self) -> bool:
        return METRICS[self.metric].greater_is_better

    def meets(self, value: float) -> bool:
        return value >= self.threshold if self.greater_is_better else value <= self.threshold

    def improvement(self, champion: float, challenger: float) -> float:
        """Relative improvement of the challenger (positive = better), whatever the direction."""
        gain = challenger - champion if self.greater_is_better else champion - challenger
        return gain / max(abs(champion), 1e-12)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reasons: list[str]
    champion: float | None
    challenger: float
    metric: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "reasons": list(self.reasons),
                "champion": self.champion, "challenger": self.challenger, "metric": self.metric,
                **self.details}


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _fmt(policy: Policy, value: float) -> str:
    return f"{METRICS[policy.metric].label or policy.metric} {_number(value)}"


def decide(champion: Scores | None, challenger: Scores, policy: Policy, *,
           data_problem: str | None = None) -> Decision:
    """The gate. ``data_problem`` is a sentence when the window's data is suspect, else None."""
    ch = challenger.value
    bar = ("≥" if policy.greater_is_better else "≤") + f" {_number(policy.threshold)}"
    ch_meets = policy.meets(ch)
    ch_says = f"challenger {_fmt(policy, ch)} {'meets' if ch_meets else 'misses'} the threshold ({bar})"

    def out(outcome: Outcome, *reasons: str, **details: Any) -> Decision:
        return Decision(outcome, list(reasons), champion.value if champion else None, ch,
                        policy.metric, details)

    if champion is not None and champion.rows != challenger.rows:
        raise ValueError("champion and challenger must be scored on the same held-out rows")

    if data_problem:
        outcome = Outcome.ESCALATE if (policy.on_bad_data == "escalate" or champion is None) else Outcome.KEEP
        keep = "champion kept" if champion is not None else "no champion to keep"
        return out(outcome, f"data suspect: {data_problem}; no promotion on suspect data ({keep})", ch_says)

    if champion is None:
        if ch_meets:
            return out(Outcome.PROMOTE, "no champion yet", ch_says)
        return out(Outcome.ESCALATE, "no champion yet", ch_says + ": a human must decide")

    cv = champion.value
    cv_meets = policy.meets(cv)
    gain = policy.improvement(cv, ch)
    cmp = (f"challenger {_fmt(policy, ch)} vs champion {_fmt(policy, cv)} on the same "
           f"{challenger.rows} held-out rows ({gain:+.1%})")
    details = {"improvement": gain}
    if ch_meets and gain > 0 and gain >= policy.min_improvement:
        margin = f" (needed {policy.min_improvement:.1%})" if policy.min_improvement else ""
        return out(Outcome.PROMOTE, cmp + f": challenger better{margin}", ch_says, **details)
    if ch_meets and not cv_meets:
        return out(Outcome.PROMOTE, cmp,
                   f"champion {_fmt(policy, cv)} no longer meets the threshold ({bar})", ch_says, **details)
    if cv_meets:
        why = ("challenger not better" if gain <= 0 else
               f"improvement below the required {policy.min_improvement:.1%}" if ch_meets else
               "challenger misses the threshold")
        return out(Outcome.KEEP, cmp + f": {why}", f"champion meets the threshold ({bar})", **details)
    return out(Outcome.ESCALATE, cmp,
               f"neither meets the threshold ({bar}): a human must approve the challenger or keep the champion",
               **details)
