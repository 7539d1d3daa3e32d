"""A write-ahead note that makes a killed cycle repairable.

A cycle writes ``.modelcycle/journal.json`` before it touches anything (the versioning state and
the aliases as they were), adds the model version it registers, and marks the alias move (the
commit point). It deletes the note when it ends, whether it committed or rolled back. A note
found at the start of the next cycle (or by ``modelcycle doctor``) means a process died midway:
:func:`recover` finishes a committed cycle's bookkeeping or puts everything back as it was.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

from modelcycle.config import Workspace
from modelcycle.registry.base import Registry
from modelcycle.versioning.base import Versioning, VersionState

log = logging.getLogger(__name__)
JOURNAL = "journal.json"


def _path(ws: Workspace) -> Path:
    return ws.state_dir / JOURNAL


def _encode_state(state: VersionState) -> dict[str, Any]:
    return {
        "head": state.head,
        "tags": sorted(state.tags),
        "files": {k: (None if v is None else base64.b64encode(v).decode()) for k, v in state.files.items()},
        "outputs": dict(state.outputs),
        "branch": state.branch,
        "index": dict(state.index),
    }


def _decode_state(data: dict[str, Any]) -> VersionState:
    return VersionState(
        head=data["head"], tags=frozenset(data["tags"]),
        files={k: (None if v is None else base64.b64decode(v)) for k, v in data["files"].items()},
        outputs=dict(data["outputs"]), branch=data.get("branch"), index=dict(data.get("index") or {}))


def _write(ws: Workspace, data: dict[str, Any]) -> None:
    path = _path(ws)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def begin(ws: Workspace, *, window: str, state: VersionState, aliases: dict[str, str | None],
          run_id: str | None = None) -> None:
    _write(ws, {"window": window, "state": _encode_state(state), "aliases": aliases,
                "run_id": run_id, "registered": None, "committed": False, "pid": os.getpid()})


def update(ws: Workspace, **fields: Any) -> None:
    data = pending(ws)
    if data is not None:
        data.update(fields)
        _write(ws, data)


def end(ws: Workspace) -> None:
    _path(ws).unlink(missing_ok=True)


def pending(ws: Workspace) -> dict[str, Any] | None:
    path = _path(ws)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("unreadable %s; a previous cycle may need `modelcycle doctor`", path)
        return None


def restore_aliases(registry: Registry, name: str, aliases: dict[str, str | None]) -> None:
    """Point each alias back at its version (or remove it); every alias is tried, and the
    failures are raised together at the end."""
    problems: list[str] = []
    for alias, version in aliases.items():
        try:
            current = registry.get_alias(name, alias)
            if (current.version if current else None) == version:
                continue
            if version is None:
                registry.delete_alias(name, alias)
            else:
                registry.set_alias(name, alias, version)
        except Exception as exc:  # keep going: the other aliases still need restoring
            problems.append(f"{alias} -> {version}: {exc}")
    if problems:
        from modelcycle.errors import RegistryError

        raise RegistryError("could not restore alias(es): " + "; ".join(problems),
                            "run `modelcycle doctor` once the registry answers again")


def recover(ws: Workspace, registry: Registry, versioning: Versioning) -> str | None:
    """Repair what a killed cycle left; return a sentence saying what was done (None: nothing)."""
    data = pending(ws)
    if data is None:
        return None
    name, window = ws.config.name, data.get("window", "?")
    if data.get("committed"):
        end(ws)
        return f"the cycle for {window} had committed before it stopped; its bookkeeping is now closed"
    versioning.restore(_decode_state(data["state"]))
    registered = data.get("registered")
    restore_aliases(registry, name, data.get("aliases") or {})
    if registered:
        registry.delete_version(name, str(registered))
    if data.get("run_id"):
        try:
            registry.set_tags(data["run_id"], {"modelcycle.recovered": "rolled back by recovery"})
            registry.end_run(data["run_id"], "KILLED")
        except Exception:  # the run's bookkeeping is secondary to the repair itself
            log.debug("could not close run %s", data["run_id"], exc_info=True)
    end(ws)
    return (f"the cycle for {window} stopped midway; its changes were rolled back "
            "(git, DVC outputs" + (f", model version {registered}" if registered else "") + ", aliases)")
