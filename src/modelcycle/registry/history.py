"""The history of the ``champion`` and ``challenger`` aliases, kept in the registry itself.

MLflow keeps only where an alias points now. modelcycle records every move it makes (a cycle,
a human's ``promote``, a ``rollback``, the undo of a rolled-back cycle) and every move it finds
made elsewhere (the MLflow UI or API: ``by="outside"``), where any MLflow user sees them:

* one tag per move on the registered model, key
  ``modelcycle.move.<UTC time to the millisecond>.<alias>.<random suffix>`` (keys sort in time
  order), value the move as compact JSON;
* short tags on the version that received the alias: ``champion_since``, ``champion_by``,
  ``champion_reason`` (``challenger_...`` for the challenger), readable in the UI's version page.

Only the :class:`~modelcycle.registry.base.Registry` protocol is used (``model_tags``,
``set_model_tags``, ``set_version_tags``, ``get_alias``), so the MLflow registry and the
in-memory fake behave alike.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

from modelcycle.registry.base import CHALLENGER, CHAMPION, CHAMPION_TAG, Registry, truncate

log = logging.getLogger(__name__)

MOVE_PREFIX = "modelcycle.move."
#: what a move's tag value is kept under: the SQL stores hold a registered model's tag value in
#: 5,000 characters (MLflow's own check allows more), so a long reason is cut to fit
VALUE_LIMIT = 4000
REASON_LIMIT = 1000
#: the kinds of move (``Move.by``)
BY = ("cycle", "human", "rollback", "outside", "undo")


@dataclass(frozen=True)
class Move:
    """One move of an alias."""

    alias: str                 # "champion" | "challenger"
    before: str | None         # version before the move (None: the alias was unset)
    after: str | None          # version after (None: the alias was removed)
    time: str                  # ISO-8601 UTC, seconds (when it moved, or when it was detected)
    by: str                    # "cycle" | "human" | "rollback" | "outside" | "undo"
    who: str | None = None     # the user (promote/rollback), or None
    reason: str | None = None
    window: str | None = None
    flow_run_id: str | None = None
    run_id: str | None = None  # the MLflow run of the cycle

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


def named(version: str | None, missing: str = "no version") -> str:
    """How a move names a version: ``v3``, or ``missing`` for an unset alias."""
    return f"v{version}" if version else missing


def now() -> str:
    """The time of a move: ISO-8601 UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def encode(move: Move) -> str:
    """The tag value of ``move``: compact JSON of its set fields, under :data:`VALUE_LIMIT`."""
    data = {k: v for k, v in move.to_dict().items() if v is not None or k in ("before", "after")}
    if move.reason:
        data["reason"] = truncate(move.reason, REASON_LIMIT)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    reason = data.get("reason")
    if len(text) > VALUE_LIMIT and reason:
        data["reason"] = truncate(reason, max(40, len(reason) - (len(text) - VALUE_LIMIT)))
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text[:VALUE_LIMIT] if len(text) > VALUE_LIMIT else text


def decode(text: str) -> Move | None:
    """A move read back from its tag value; None for a value that is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("alias"), str) or not data.get("time"):
        return None
    known = {f.name for f in fields(Move)}
    values = {k: (None if v is None else str(v)) for k, v in data.items() if k in known}
    values.setdefault("before", None)
    values.setdefault("after", None)
    values.setdefault("by", "?")
    return Move(**values)  # type: ignore[arg-type]


_last_ms = 0
_stamp_lock = threading.Lock()


def _tag_key(alias: str) -> str:
    """``modelcycle.move.<UTC time to the ms>.<alias>.<random>``: keys sort in time order. Two
    moves of one process never share a millisecond (the second takes the next one), so their
    order survives; the suffix keeps two processes' moves in one millisecond apart."""
    global _last_ms
    with _stamp_lock:
        ms = max(time.time_ns() // 1_000_000, _last_ms + 1)
        _last_ms = ms
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{MOVE_PREFIX}{stamp:%Y%m%dT%H%M%S}.{ms % 1000:03d}Z.{alias}.{secrets.token_hex(3)}"


def version_tags(move: Move) -> dict[str, str]:
    """The short tags put on the version that received the alias."""
    by = move.who or move.by
    if move.by == "outside":
        by = "outside modelcycle (found " + move.time + ")"
    elif move.by == "cycle" and move.window:
        by = f"cycle {move.window}"
    elif move.by == "rollback":
        by = f"rollback by {move.who}" if move.who else "rollback"
    tags = {f"{move.alias}_since": move.time, f"{move.alias}_by": by}
    tags[f"{move.alias}_reason"] = truncate(move.reason, 500) if move.reason else ""
    return tags


def record(reg: Registry, name: str, move: Move) -> None:
    """Record ``move`` durably: a tag on the registered model and, when a version received the
    alias, its short tags (an undo leaves the restored version's own tags as they were). A
    registry failure raises its RegistryError."""
    reg.set_model_tags(name, {_tag_key(move.alias): encode(move)})
    if move.after is not None and move.by != "undo":
        reg.set_version_tags(name, move.after, version_tags(move))


def _moves(tags: dict[str, str]) -> list[Move]:
    found = []
    for key in sorted(k for k in tags if k.startswith(MOVE_PREFIX)):
        move = decode(tags[key])
        if move is None:
            log.debug("tag %s of the registry is not a move; ignored", key)
            continue
        found.append(move)
    return found


def moves(reg: Registry, name: str) -> list[Move]:
    """Every recorded move of the model's aliases, oldest first (one ``model_tags`` read)."""
    return _moves(reg.model_tags(name))


def last(recorded: list[Move], alias: str) -> Move | None:
    """The newest recorded move of ``alias``."""
    return next((m for m in reversed(recorded) if m.alias == alias), None)


def _first_seen(alias: str, current: str | None, tags: dict[str, str]) -> tuple[str | None, str] | None:
    """For an alias with no recorded move yet (a workspace older than the history): whether to
    record where it is now as a move made outside modelcycle, and from what.

    Only the champion can be judged: the registered model's ``modelcycle.champion`` tag names
    the version modelcycle last made champion. If the alias is there, modelcycle put it there
    and nothing is recorded (the history starts with the next move). If it is elsewhere (or
    removed), someone moved it outside modelcycle: that move is recorded once, from the version
    modelcycle had made champion, with the time it was found. Nothing tells who set the
    challenger, so its history starts with its next recorded move."""
    if alias != CHAMPION:
        return None
    expected = tags.get(CHAMPION_TAG) or None
    if current == expected:
        return None
    said = named(expected)
    return expected, (f"found when the history began; modelcycle had last made {said} the champion")


def detect_outside(reg: Registry, name: str, *,
                   aliases: tuple[str, ...] = (CHAMPION, CHALLENGER), grace: float = 0.0) -> list[Move]:
    """Compare each alias now with its last recorded move; record (``by="outside"``, the time
    it was found) and return a move for each alias that moved without a record. One
    ``model_tags`` read and one ``get_alias`` per alias when nothing moved.

    ``grace``: a process that moves an alias records the move a moment later (the two writes
    are not one transaction). A caller that may look in that moment (a server's poll, which
    holds no workspace lock) passes a grace in seconds: a difference is looked at again after
    it, and only one that remains is recorded."""
    found = _unrecorded(reg, name, aliases)
    if found and grace > 0:
        time.sleep(grace)
        found = _unrecorded(reg, name, aliases)
    for move in found:
        record(reg, name, move)
    return found


def _unrecorded(reg: Registry, name: str, aliases: tuple[str, ...]) -> list[Move]:
    tags = reg.model_tags(name)
    recorded = _moves(tags)
    found: list[Move] = []
    for alias in aliases:
        holder = reg.get_alias(name, alias)
        current = holder.version if holder else None
        previous = last(recorded, alias)
        if previous is not None:
            if previous.after == current:
                continue
            found.append(Move(alias, previous.after, current, now(), "outside",
                              reason="moved outside modelcycle (the MLflow UI or API)"))
        else:
            first = _first_seen(alias, current, tags)
            if first is not None:
                found.append(Move(alias, first[0], current, now(), "outside", reason=first[1]))
    return found
