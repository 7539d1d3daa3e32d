"""A human's moves of an alias: ``promote`` (the answer to an escalation) and ``rollback`` (the
champion back to the one before it, or to a named version).

Both go through the same path as a cycle's commit: a journal, the alias moved and its history
recorded in one journaled side effect (:func:`~modelcycle.lifecycle.effects.perform`, undone by
the same function crash recovery uses), then a notification, which also lands in the workspace's
decision log. The caller holds the workspace lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from modelcycle.errors import ModelcycleError, NoChampionError, RegistryError
from modelcycle.lifecycle import effects, lock
from modelcycle.lifecycle.journal import Journal
from modelcycle.lifecycle.services import Services
from modelcycle.notify import CycleOutcome, Event, EventKind, Notifier, links
from modelcycle.registry import history
from modelcycle.registry.base import CHAMPION, ModelVersion, canonical_alias
from modelcycle.versioning.base import VersionState

log = logging.getLogger(__name__)

TO_HINT = "name the version to serve: `modelcycle rollback --to N` (`modelcycle history` lists the champions)"


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    previous: str | None
    repaired: str | None = None          # what recovery repaired first (a cycle that stopped midway)
    outside: tuple[str, ...] = ()        # moves found made outside modelcycle, recorded first


def promote(svc: Services, version: str, *, alias: str = "champion", reason: str, by: str) -> Promotion:
    """Move ``alias`` to ``version``, record the move (who and why) in the alias history and on
    the version, and notify."""
    target = canonical_alias(alias)
    repaired, outside = _prepare(svc)
    mv = svc.registry.get_version(svc.name, version)
    return _move(svc, target, mv, kind="promote", by="human", who=by, reason=reason, repaired=repaired,
                 outside=outside)


def rollback(svc: Services, *, to: str | None, reason: str, by: str) -> Promotion:
    """Move the champion back to the previous champion (the version the last recorded move to the
    current champion came from; an undone move does not count), or to version ``to``."""
    name, reg = svc.name, svc.registry
    repaired, outside = _prepare(svc)
    holder = reg.get_alias(name, CHAMPION)
    current = holder.version if holder else None
    if to is None:
        if current is None:
            raise NoChampionError(f"'{name}' has no champion to roll back", TO_HINT)
        to = previous_champion(history.moves(reg, name), current)
        if to is None:
            raise RegistryError(f"no champion of '{name}' before v{current} is recorded in its alias history "
                                "(it was the first, or it became champion before modelcycle kept a history)",
                                TO_HINT)
        try:
            mv = reg.get_version(name, to)
        except RegistryError:
            raise RegistryError(f"the previous champion of '{name}', v{to}, is no longer registered",
                                TO_HINT) from None
    else:
        mv = reg.get_version(name, to)
    if mv.version == current:
        raise RegistryError(f"v{current} is already the champion of '{name}'; nothing to roll back",
                            "name another version with --to N (`modelcycle history` lists the champions)")
    return _move(svc, CHAMPION, mv, kind="rollback", by="rollback", who=by, reason=reason, repaired=repaired,
                 outside=outside)


def previous_champion(recorded: list[history.Move], current: str) -> str | None:
    """The ``before`` of the last recorded champion move that put ``current`` there (undos
    skipped); None when no such move is recorded or the alias was unset before it."""
    for move in reversed(recorded):
        if move.alias == CHAMPION and move.by != "undo" and move.after == current:
            return move.before
    return None


def _prepare(svc: Services) -> tuple[str | None, tuple[str, ...]]:
    """Repair what a dead cycle left (a journal is needed for this move), then record any move
    made outside modelcycle, so this move follows it in the history."""
    repaired = effects.recover(svc, sweep=False)
    found = history.detect_outside(svc.registry, svc.name)
    announce_outside(svc.notifier, svc.name, found)
    return repaired, tuple(f"{m.alias}: {history.named(m.before, 'none')} -> {history.named(m.after, 'none')}"
                           for m in found)


def _move(svc: Services, alias: str, mv: ModelVersion, *, kind: str, by: str, who: str, reason: str,
          repaired: str | None, outside: tuple[str, ...]) -> Promotion:
    holder = lock.read_holder(svc.ws.root)
    journal = Journal.begin(svc.ws, window=f"{kind} v{mv.version}", state=VersionState(head=None, tags=frozenset()),
                            command=holder.command if holder else f"modelcycle {kind}", kind=kind)
    try:
        before = effects.move_alias(svc, journal, alias, mv.version, lambda before: history.Move(
            alias, before, mv.version, history.now(), by, who=who, reason=reason), commit=True)
    except BaseException:
        try:
            effects.roll_back(svc, journal)
            journal.end()
        except ModelcycleError as exc:
            log.error("putting the %s alias back did not finish: %s", alias, exc.message)
        raise
    journal.end()
    _announce(svc, mv, kind=kind, alias=alias, before=before, who=who, reason=reason)
    return Promotion(svc.name, mv.version, alias, before, repaired, outside)


def _announce(svc: Services, mv: ModelVersion, *, kind: str, alias: str, before: str | None, who: str,
              reason: str) -> None:
    was = f" (was v{before})" if before else ""
    if kind == "rollback":
        what, event_kind = f"{reason}: the champion rolled back to v{mv.version}{was} by {who}", EventKind.ROLLBACK
    else:
        what, event_kind = f"{reason}: v{mv.version} set as {alias}{was} by {who}", EventKind.APPROVAL
    try:
        svc.notifier.send(Event(
            kind=event_kind, model=svc.name, window=mv.tags.get("window", "?"),
            outcome=CycleOutcome.PROMOTE if alias == CHAMPION else CycleOutcome.KEEP,
            reasons=(what,), version=mv.version,
            champion=mv.version if alias == CHAMPION else None,
            version_url=links.mlflow_version_url(svc.ws.registry_uri, svc.name, mv.version)))
    except Exception as exc:  # noqa: BLE001 - the move stands: a notification never undoes it
        log.warning("notification failed: %s", exc)


def announce_outside(notifier: Notifier, name: str, moves: list[history.Move]) -> None:
    """Put each move made outside modelcycle (found and recorded in the history) in the decision
    log and the configured notifications; a notification never fails the caller."""
    for m in moves:
        try:
            notifier.send(Event(
                kind=EventKind.OUTSIDE, model=name, window="-",
                outcome=CycleOutcome.PROMOTE if m.alias == CHAMPION and m.after else CycleOutcome.KEEP,
                reasons=(f"the {m.alias} alias was moved outside modelcycle (the MLflow UI or API) from "
                         f"{history.named(m.before)} to {history.named(m.after)}; found at {m.time}",),
                version=m.after, champion=m.after if m.alias == CHAMPION else None, time=m.time))
        except Exception as exc:  # noqa: BLE001 - the history is recorded: a notification never undoes it
            log.warning("notification failed: %s", exc)

