"""Decide between the champion and the challenger, on evidence.

``decide`` is a pure function of the two models' scores on the same held-out rows, the policy
and the data's health. It touches nothing and returns an outcome with its reasons in plain words.

With the default test (``bootstrap``), "the challenger is better" means: the paired resampled
interval of its relative improvement (:mod:`modelcycle.gate.stats`) lies above the minimum
effect. A difference of two single numbers is not enough, because on a few thousand rows two
equally good models differ by chance. The outcomes:

* the champion cannot be compared with (its version was deleted, its alias removed): escalate;
* the window's data is suspect (too many rows failed validation): never promote; keep or
  escalate as the policy says;
* no champion yet: promote the challenger if it meets the threshold, else escalate;
* the challenger is better by at least the minimum effect and meets the threshold: promote;
* otherwise, the champion still meets the threshold: keep;
* the champion misses the threshold and the challenger is not shown to be better, or neither
  meets the threshold: escalate to a human.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from modelcycle.gate import confusion
from modelcycle.gate.stats import improvement_interval
from modelcycle.steps import evaluate as ev
from modelcycle.steps.evaluate import METRICS, Scores


class Outcome(StrEnum):
    PROMOTE = "promote"
    KEEP = "keep"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class Policy:
    """The gate's settings (modelcycle.yaml ``gate:``)."""

    metric: str
    threshold: float
    min_effect: float = 0.01
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    test: str = "bootstrap"          # "bootstrap", or "none": compare the two numbers only
    method: str = "double-or-nothing"
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


def _rel(x: float) -> str:
    """0.031 -> '3.1% better', -0.004 -> '0.4% worse'."""
    if abs(x) < 0.0005:
        return "no different"
    return f"{abs(x):.1%} {'better' if x > 0 else 'worse'}"


def _pct(level: float) -> str:
    """0.95 -> '95%', 0.98333 -> '98.3%' (a corrected level, see :mod:`modelcycle.gate.choose`)."""
    return f"{level:.0%}" if abs(level * 100 - round(level * 100)) < 1e-9 else f"{level:.1%}"


def _clears(gain: float, policy: Policy) -> bool:
    """``gain`` (a relative improvement, or an interval's lower end) is an improvement of at
    least the minimum effect."""
    return gain > 0 and gain >= policy.min_effect


def _averaging(champion: Scores | None, challenger: Scores) -> tuple[str, dict[str, Any]]:
    """How F1 or ROC AUC averages over the classes, in words and as details: " (macro over 3
    classes)", " (class 'dog' positive)"; nothing for the other metrics."""
    metric = challenger.metric
    if metric not in ("f1", "roc_auc") or not len(challenger.y_true):
        return "", {}
    labels = ev.sorted_labels(*(x for s in (champion, challenger) if s is not None
                                for x in (s.y_true, s.y_pred, s.classes)))
    targets, average = (ev.f1_targets if metric == "f1" else ev.auc_targets)(labels)
    if average == "binary":
        positive = confusion.plain(targets[0])
        return f" (class {positive!r} positive)", {"average": average, "positive_class": positive}
    return f" ({average} over {len(targets)} classes)", {"average": average}


def decide(champion: Scores | None, challenger: Scores, policy: Policy, *,
           data_problem: str | None = None, champion_problem: str | None = None) -> Decision:
    """The gate. ``data_problem`` is a sentence when the window's data is suspect, else None;
    ``champion_problem`` one when the champion cannot be compared with (its version is gone from
    the registry, its alias was removed): a human decides then."""
    ch = challenger.value
    bar = ("≥" if policy.greater_is_better else "≤") + f" {_number(policy.threshold)}"
    ch_meets = policy.meets(ch)
    if champion is not None and champion.rows != challenger.rows:
        raise ValueError("champion and challenger must be scored on the same held-out rows")
    note, averaging = _averaging(champion, challenger)
    ch_says = f"challenger {_fmt(policy, ch)}{note} {'meets' if ch_meets else 'misses'} the threshold ({bar})"
    # classifiers: both confusion matrices on the same rows and the flips, beside the metric
    compared = confusion.compare(None if champion_problem else champion, challenger)
    flips = compared.sentence() if compared is not None else None
    beside: dict[str, Any] = dict(averaging)
    if compared is not None:
        beside["confusion"] = compared.to_dict()
        if compared.negative_flips is not None:
            beside.update(negative_flips=compared.negative_flips, positive_flips=compared.positive_flips)

    def out(outcome: Outcome, *reasons: str, **details: Any) -> Decision:
        said = [*reasons, flips] if flips else list(reasons)
        return Decision(outcome, said, champion.value if champion else None, ch,
                        policy.metric, {**beside, **details})

    if champion_problem:
        return out(Outcome.ESCALATE, f"champion unavailable: {champion_problem}", ch_says,
                   "no comparison is possible, so a human must decide: promote the challenger "
                   "or point the champion alias at another version")

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
    need = f"at least {policy.min_effect:.1%} better" if policy.min_effect > 0 else "better"
    head = (f"challenger {_fmt(policy, ch)} vs champion {_fmt(policy, cv)}{note} on the same "
            f"{challenger.rows} held-out rows")
    details: dict[str, Any] = {"improvement": policy.improvement(cv, ch)}
    if policy.test == "bootstrap":
        iv = improvement_interval(champion, challenger, confidence=policy.confidence,
                                  resamples=policy.resamples, seed=policy.seed, method=policy.method)
        details.update(iv.to_dict())
        better = _clears(iv.low, policy)
        if iv.low == iv.high:  # e.g. two classifiers wrong on the very same rows: nothing to resample
            evidence = (f"{head}: {_rel(iv.estimate)} (the same on every resample: the two models' "
                        "errors do not differ on these rows)")
        else:
            evidence = (f"{head}: {_rel(iv.estimate)} ({_pct(iv.confidence)} interval: {_rel(iv.low)} "
                        f"to {_rel(iv.high)})")
        verdict = (f"the interval shows the challenger {need}" if better else
                   f"the interval does not show the challenger {need}")
    else:
        gain = details["improvement"]
        better = _clears(gain, policy)
        evidence = f"{head}: {_rel(gain)} (single numbers, no test)"
        verdict = f"the challenger is {need}" if better else f"the challenger is not {need}"

    champ_says = (f"champion {'meets' if cv_meets else 'misses'} the threshold ({bar})")
    if ch_meets and better:
        return out(Outcome.PROMOTE, f"{evidence}: {verdict}", ch_says, **details)
    if cv_meets:
        why = verdict if ch_meets else ch_says
        return out(Outcome.KEEP, f"{evidence}: {why}", champ_says, **details)
    if ch_meets:
        return out(Outcome.ESCALATE, f"{evidence}: {verdict}", champ_says,
                   "the champion misses the threshold and the challenger is not shown to be better: "
                   "a human must decide", **details)
    return out(Outcome.ESCALATE, evidence,
               f"neither meets the threshold ({bar}): a human must approve the challenger or keep the champion",
               **details)
