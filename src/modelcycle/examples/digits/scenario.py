"""The digits example's ground truth, given to modelcycle through its ``reference`` seam.

The example's modelcycle.yaml names :class:`DigitsReference` as its reference::

    reference:
      factory: modelcycle.examples.digits.scenario:DigitsReference
      params: {seed: 4}

so that a backtest (and ``modelcycle demo DIR --example digits``) prints, beside each cycle's
decision, what happened to the batch and the decision a correct gate makes there
(:data:`modelcycle.examples.digits.release.EVENTS`). There is no noise floor: the best accuracy
possible on handwritten digits is not known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelcycle.examples.digits import release
from modelcycle.lifecycle.reference import DECISIONS, Truth

if TYPE_CHECKING:
    import pandas as pd

    from modelcycle.config import ProjectConfig

#: The import path the example's modelcycle.yaml gives as ``reference.factory``.
FACTORY = "modelcycle.examples.digits.scenario:DigitsReference"
#: Events that mark their window on the timeline.
QUIET = ("history", "quiet")


def keeps_rejected(config: Any) -> bool:
    """``act.keep_rejected`` of a workspace's configuration (true when it has no ``act`` section)."""
    return bool(getattr(getattr(config, "act", None), "keep_rejected", True))


class DigitsReference:
    """The digits release plan's truth (see the module docstring)."""

    label = "the digits example's release plan"

    def __init__(self, seed: int = release.SEED) -> None:
        self.seed = int(seed)
        self.events = {e["window"]: e for e in release.EVENTS}

    def __repr__(self) -> str:
        return f"DigitsReference(seed={self.seed})"

    def noise_floor(self, rows: pd.DataFrame, metric: str) -> float | None:
        """Not known for handwritten digits: None."""
        return None

    def truth(self, window: str, *, has_champion: bool, config: ProjectConfig) -> Truth | None:
        """The decision a correct gate makes in ``window`` (a month of the plan), as the decision
        table says it: ``rolled_back`` for a rejected challenger when the workspace does not keep
        them (``act.keep_rejected: false``) and modelcycle knows that outcome, else the gate's."""
        event = self.events.get(str(window))
        if event is None:
            return None
        decision = event["decision"]
        if not has_champion:  # a first cycle in a batch's month: the challenger alone decides
            decision = "promote" if event["challenger_meets"] else "escalate"
        expected = release.outcome(decision, event["challenger_meets"], keep_rejected=keeps_rejected(config))
        if expected not in DECISIONS:
            expected = decision
        what = "first champion" if not has_champion and event["event"] == "history" else event["headline"]
        return Truth(str(window), expected, what, event=event["event"] not in QUIET)
