"""The cycle's two extension points.

* **after decide** — ``(svc, result, decision) -> decision``: called once the gate has decided
  and before the cycle acts. It may return another decision (an approval pause asks a human
  about an escalation and answers promote or keep); raising stops the cycle, which then rolls
  back like any failure.
* **after act** — ``(svc, result) -> None``: called once the cycle has committed (the aliases
  moved, the run recorded). A serving reload goes here. Nothing it does can undo the cycle: an
  error is logged and the cycle's result stands.

Hooks are given with the services a cycle runs on (:class:`Hooks` in
:class:`~modelcycle.lifecycle.services.Services`), so a deployment, a test or the command line
chooses them; the core defines none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelcycle.gate import Decision
    from modelcycle.lifecycle.cycle import CycleResult
    from modelcycle.lifecycle.services import Services


class AfterDecide(Protocol):
    def __call__(self, svc: Services, result: CycleResult, decision: Decision) -> Decision: ...


class AfterAct(Protocol):
    def __call__(self, svc: Services, result: CycleResult) -> None: ...


@dataclass(frozen=True)
class Hooks:
    """The hooks a cycle calls, in order."""

    after_decide: tuple[AfterDecide, ...] = ()
    after_act: tuple[AfterAct, ...] = ()
