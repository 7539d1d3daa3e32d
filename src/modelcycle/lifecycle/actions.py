"""A human's decision: point an alias at a registered version (the answer to an escalation)."""

from __future__ import annotations

from dataclasses import dataclass

from modelcycle.lifecycle.effects import CHAMPION_TAG
from modelcycle.lifecycle.services import Services
from modelcycle.notify import CycleOutcome, Event, EventKind
from modelcycle.registry.base import CHAMPION, canonical_alias


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    previous: str | None


def promote(svc: Services, version: str, *, alias: str = "champion", reason: str, by: str) -> Promotion:
    """Move ``alias`` to ``version``, note who and why on the version, and notify."""
    name, reg = svc.name, svc.registry
    target = canonical_alias(alias)
    mv = reg.get_version(name, version)
    before = reg.get_alias(name, target)
    reg.set_alias(name, target, mv.version)
    if target == CHAMPION:
        reg.set_model_tags(name, {CHAMPION_TAG: mv.version})
    reg.set_version_tags(name, mv.version, {f"{target}_by": by, f"{target}_reason": reason})
    was = f" (was v{before.version})" if before else ""
    svc.notifier.send(Event(
        kind=EventKind.APPROVAL, model=name, window=mv.tags.get("window", "?"),
        outcome=CycleOutcome.PROMOTE if target == CHAMPION else CycleOutcome.KEEP,
        reasons=(f"{reason}: v{mv.version} set as {target}{was} by {by}",), version=mv.version))
    return Promotion(name, mv.version, target, before.version if before else None)
