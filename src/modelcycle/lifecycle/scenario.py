"""The decisions a correct policy must make on simulated data, and a backtest checked against them.

The simulator knows what it changed and when (``regime_changes()``). From that and the gate's
configuration follows what a correct gate decides in each window:

* the first cycle, with no champion yet: promote (the challenger meets the threshold);
* the window of a fare change: promote (the champion is stale, a retrained challenger is better);
* the broken-data window: what ``gate.on_bad_data`` says (escalate or keep), never promote;
* any other window: keep (nothing changed that a fresh model could exploit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelcycle.config import Workspace


@dataclass(frozen=True)
class Truth:
    window: str
    expected: str
    what: str  # what happened in the window, in a few words

    def matches(self, outcome: str) -> bool:
        return outcome == self.expected


def expected_decisions(ws: Workspace, windows: list[str], *, first_has_champion: bool = True
                       ) -> dict[str, Truth] | None:
    """The correct decision per window, or None when the workspace's data is not simulated."""
    if ws.config.simulation is None:
        return None
    from modelcycle.sources.simulator import regime_changes

    changes = {c["window"]: c for c in regime_changes()}
    out: dict[str, Truth] = {}
    for i, w in enumerate(windows):
        change = changes.get(w)
        if i == 0 and not first_has_champion:
            out[w] = Truth(w, "promote", "first champion")
        elif change and change["kind"] == "fare_change":
            out[w] = Truth(w, "promote", change.get("headline", "fare change"))
        elif change and change["kind"] == "broken_data":
            out[w] = Truth(w, ws.config.gate.on_bad_data, change.get("headline", "broken data"))
        else:
            out[w] = Truth(w, "keep", "no change")
    return out


def check(results: list[Any], truth: dict[str, Truth]) -> tuple[int, int, list[str]]:
    """(decisions right, decisions checked, the windows where they differ)."""
    wrong = [r.window for r in results if r.window in truth and not truth[r.window].matches(r.outcome)]
    checked = sum(1 for r in results if r.window in truth)
    return checked - len(wrong), checked, wrong
