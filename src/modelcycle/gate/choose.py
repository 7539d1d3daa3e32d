"""Choose among several challengers (params.yaml ``candidates:``), corrected for multiple comparisons.

Each candidate is compared with the champion on the same held-out rows by :func:`decide`. With
``k`` candidates, each comparison's interval is taken at ``1 - (1 - confidence) / k``
(Bonferroni): the chance that *any* candidate no better than the champion clears the bar stays
at most what it is for one challenger, however many are tried. Without it, that chance grows
with ``k`` (about ``1 - (1 - a)^k`` for independent candidates; ``scripts/study_gate.py
--candidates`` measures it). Bonferroni rather than Holm: the gate's evidence is an interval
per candidate, and with Bonferroni each candidate's reason is one interval at one stated level
("98.3% interval"), the same for every candidate whatever the others scored; Holm's step-down
levels depend on the rank of each p-value, which an interval does not give, for little gain when
at most one candidate is promoted.

Among the candidates the gate would promote, the best point estimate wins (the largest
improvement over the champion; without a champion, the best score). When none would be
promoted, the decision is the one of the candidate with the best score (keep, or escalate to a
human who sees every candidate's line).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from modelcycle.gate.decide import Decision, Outcome, Policy, _fmt, _rel, decide
from modelcycle.steps.evaluate import Scores


def corrected(policy: Policy, k: int) -> Policy:
    """``policy`` with its confidence corrected for ``k`` comparisons (Bonferroni)."""
    if k <= 1:
        return policy
    return replace(policy, confidence=1.0 - (1.0 - policy.confidence) / k)


@dataclass(frozen=True)
class Candidate:
    """One candidate's verdict: its score, its decision against the champion (at the corrected level)."""

    name: str
    scores: Scores
    decision: Decision

    @property
    def improvement(self) -> float | None:
        value = self.decision.details.get("improvement")
        return float(value) if value is not None else None

    def line(self, policy: Policy) -> str:
        d = self.decision.details
        said = f"'{self.name}': {_fmt(policy, self.scores.value)}"
        if "ci_low" in d and d["ci_low"] != d["ci_high"]:
            said += (f", {_rel(d['improvement'])} ({d['confidence']:.1%} interval: "
                     f"{_rel(d['ci_low'])} to {_rel(d['ci_high'])})")
        elif "improvement" in d:
            said += f", {_rel(d['improvement'])}"
        return f"{said}: {self.decision.outcome.value}"

    def to_dict(self) -> dict[str, Any]:
        d = self.decision.details
        return {"name": self.name, "value": self.scores.value, "outcome": self.decision.outcome.value,
                **{k: d[k] for k in ("improvement", "ci_low", "ci_high", "confidence") if k in d}}


@dataclass(frozen=True)
class Choice:
    """The chosen candidate, the decision about it, and every candidate's verdict."""

    name: str
    decision: Decision
    candidates: list[Candidate]

    @property
    def scores(self) -> Scores:
        return next(c.scores for c in self.candidates if c.name == self.name)


def _rank_key(c: Candidate, policy: Policy) -> float:
    """Larger is better: the improvement over the champion, else the score in the metric's direction."""
    if c.improvement is not None:
        return c.improvement
    return c.scores.value if policy.greater_is_better else -c.scores.value


def choose(champion: Scores | None, candidates: dict[str, Scores], policy: Policy, *,
           data_problem: str | None = None, champion_problem: str | None = None,
           correct: bool = True) -> Choice:
    """Decide about each candidate against ``champion`` at the corrected level, then pick one (see
    the module doc). ``correct=False`` uses the uncorrected level (for studies only)."""
    if not candidates:
        raise ValueError("choose needs at least one candidate")
    k = len(candidates)
    level = corrected(policy, k) if correct else policy
    verdicts = [Candidate(name, scores, decide(champion, scores, level, data_problem=data_problem,
                                               champion_problem=champion_problem))
                for name, scores in candidates.items()]
    promoted = [c for c in verdicts if c.decision.outcome is Outcome.PROMOTE]
    pool = promoted or verdicts
    best = max(pool, key=lambda c: _rank_key(c, policy))  # max keeps the first of equals: the listed order
    if k == 1:
        return Choice(best.name, _named(best.decision, best.name, [best]), verdicts)
    compared = champion is not None and not champion_problem and not data_problem
    if compared and policy.test == "bootstrap":
        how = (f"each compared with the champion at {level.confidence:.1%} "
               f"(1 - {1 - policy.confidence:.2g}/{k}, corrected for {k} comparisons)" if correct
               else f"each compared with the champion at {level.confidence:.1%} (no correction)")
    elif compared:
        how = "each compared with the champion on single numbers (gate.test: none, no correction)"
    else:
        how = "none compared with a champion"
    verb = "promoted" if best.decision.outcome is Outcome.PROMOTE else "the best"
    head = (f"best of {k} candidates: '{best.name}' ({verb}; "
            f"{len(promoted)} of {k} would be promoted); {how}")
    lines = [f"candidate {c.line(policy)}" for c in verdicts]
    decision = replace(best.decision, reasons=[head, *best.decision.reasons, *lines])
    return Choice(best.name, _named(decision, best.name, verdicts), verdicts)


def _named(decision: Decision, name: str, verdicts: list[Candidate]) -> Decision:
    return replace(decision, details={**decision.details, "candidate": name,
                                      "candidates": [c.to_dict() for c in verdicts]})
