"""The simulator's ground truth, given to modelcycle through its ``reference`` seam.

The taxifare example's modelcycle.yaml names :class:`TaxiReference` as its reference::

    reference:
      factory: modelcycle.examples.taxifare.scenario:TaxiReference
      params: {seed: 7, rows_per_month: 12000}

It implements :class:`modelcycle.lifecycle.reference.Reference` as any user's reference would:

* ``noise_floor(rows, "mae")`` is the simulator's irreducible MAE on the rows (the MAE of its
  own conditional median of the fare given the visible columns); other metrics: not known.
* ``truth(window, ...)`` follows from what the simulator changed and when (``regime_changes()``)
  and from the gate's configuration:

  * the first cycle, with no champion yet: promote (the challenger meets the threshold);
  * the window of a fare change: promote (the champion is stale, a retrained challenger is better);
  * the broken-data window: what ``gate.on_bad_data`` says (escalate or keep), never promote;
  * any other window: keep (nothing changed that a fresh model could exploit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelcycle.examples.taxifare.simulator import DEFAULT_ROWS_PER_MONTH, TaxiSimulator
from modelcycle.lifecycle.reference import Truth

if TYPE_CHECKING:
    import pandas as pd

    from modelcycle.config import ProjectConfig

#: The import path the example's modelcycle.yaml gives as ``reference.factory``.
FACTORY = "modelcycle.examples.taxifare.scenario:TaxiReference"


class TaxiReference:
    """The taxi simulator's noise floor and ground truth (see the module docstring)."""

    label = "the simulator's ground truth"

    def __init__(self, seed: int = 7, rows_per_month: int = DEFAULT_ROWS_PER_MONTH) -> None:
        self.simulator = TaxiSimulator(seed=seed, rows_per_month=rows_per_month)
        self.changes = {c["window"]: c for c in self.simulator.regime_changes()}

    def __repr__(self) -> str:
        return f"TaxiReference({self.simulator!r})"

    def noise_floor(self, rows: pd.DataFrame, metric: str) -> float | None:
        """The simulator's irreducible MAE on ``rows``; None for any other metric."""
        if metric != "mae":
            return None
        return self.simulator.noise_floor(rows)

    def truth(self, window: str, *, has_champion: bool, config: ProjectConfig) -> Truth:
        """The decision a correct gate makes in ``window`` (see the module docstring)."""
        change = self.changes.get(window)
        if not has_champion:
            return Truth(window, "promote", "first champion")
        if change and change["kind"] == "fare_change":
            return Truth(window, "promote", change.get("headline", "fare change"), event=True)
        if change and change["kind"] == "broken_data":
            return Truth(window, config.gate.on_bad_data, change.get("headline", "broken data"), event=True)
        return Truth(window, "keep", "no change")
