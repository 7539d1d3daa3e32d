"""A cycle's write-ahead journal: what it is about to change, and what it has changed.

``.modelcycle/journal.json`` exists while a cycle runs. It is written (atomically: a temporary
file, fsync, rename) when the cycle starts, before anything changes, and again around each side
effect:

* ``intent`` before the side effect starts, with what its undo needs (the alias's previous
  version, the tag the commit will create...);
* ``done`` once it has happened, with what it produced (the commit, the model version);
* ``undone`` once a rollback has put it back.

The journal also names its owner (pid, host, process start time, command), the cycle's id
(also set as a tag on the cycle's MLflow run and model version, so a side effect the process
died in the middle of can still be found), its MLflow run and Prefect flow run, and the
versioning state before the cycle.

When the last side effect of the act block is done, the cycle is **committed**; the journal
says so in the same write. A journal found while its owner is gone means a process died
midway: :mod:`modelcycle.lifecycle.effects` finishes a committed cycle's bookkeeping, or undoes
every side effect marked ``intent`` or ``done``, newest first, with the same undo functions a
live rollback uses. The journal is deleted when the cycle ends.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle.atomic import write_atomic
from modelcycle.config import Workspace
from modelcycle.errors import WorkspaceError
from modelcycle.versioning.base import VersionState

log = logging.getLogger(__name__)
JOURNAL = "journal.json"
INTENT, DONE, UNDONE = "intent", "done", "undone"


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


def _process_start() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - only used to tell a reused pid apart
        return None


@dataclass
class Effect:
    """One side effect as the journal records it."""

    name: str
    status: str
    info: dict[str, Any]


class Journal:
    """The journal of one cycle (see the module doc)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    def path_of(cls, ws: Workspace) -> Path:
        return ws.state_dir / JOURNAL

    @classmethod
    def begin(cls, ws: Workspace, *, window: str, state: VersionState, command: str,
              flow_run_id: str | None = None, effects: list[str] | None = None,
              kind: str = "cycle") -> Journal:
        """Start the journal of a new cycle (there must be none); ``effects`` are side effects
        whose intent is recorded at once (the stage outputs the cycle starts writing). ``kind``
        is ``cycle``, or the verb of a human's alias move (``promote``, ``rollback``), whose
        journal holds only that move."""
        path = cls.path_of(ws)
        if path.exists():
            raise WorkspaceError(f"{path} exists: a cycle is running or stopped midway",
                                 "run `modelcycle doctor` to repair it")
        journal = cls(path, {
            "cycle": uuid.uuid4().hex, "kind": kind, "window": window, "command": command,
            "pid": os.getpid(), "host": socket.gethostname(), "process_start": _process_start(),
            "started": time.time(), "flow_run_id": flow_run_id, "run_id": None,
            "state": _encode_state(state), "committed": False,
            "effects": [{"name": e, "status": INTENT, "info": {}} for e in effects or []]})
        journal._write()
        return journal

    @classmethod
    def open(cls, ws: Workspace) -> Journal | None:
        """The journal left in the workspace, or None."""
        path = cls.path_of(ws)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WorkspaceError(f"cannot read {path}: {exc.strerror}",
                                 "check the permissions of the workspace's .modelcycle folder") from exc
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or "cycle" not in data:
                raise ValueError("not a journal")
        except ValueError:
            # a journal is replaced atomically, never half-written: this one was damaged by hand
            raise WorkspaceError(f"{path} is not a readable journal",
                                 "if no modelcycle command is running, move it away and run "
                                 "`modelcycle doctor` to check the workspace") from None
        return cls(path, data)

    def end(self) -> None:
        """The cycle is over (committed, or rolled back): remove the journal."""
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.data), durable=True)

    # -- what the cycle records -----------------------------------------------------------

    @property
    def cycle(self) -> str:
        return str(self.data["cycle"])

    @property
    def kind(self) -> str:
        return str(self.data.get("kind") or "cycle")

    @property
    def window(self) -> str:
        return str(self.data.get("window") or "?")

    @property
    def run_id(self) -> str | None:
        return self.data.get("run_id")

    @property
    def flow_run_id(self) -> str | None:
        return self.data.get("flow_run_id")

    @property
    def committed(self) -> bool:
        return bool(self.data.get("committed"))

    @property
    def state(self) -> VersionState:
        return _decode_state(self.data["state"])

    def set(self, **fields: Any) -> None:
        self.data.update(fields)
        self._write()

    def effects(self) -> list[Effect]:
        return [Effect(e["name"], e["status"], dict(e.get("info") or {})) for e in self.data["effects"]]

    def effect(self, name: str) -> Effect | None:
        return next((e for e in self.effects() if e.name == name), None)

    def _mark(self, name: str, status: str, info: dict[str, Any], **fields: Any) -> None:
        for entry in self.data["effects"]:
            if entry["name"] == name:
                entry["status"] = status
                entry.setdefault("info", {}).update(info)
                break
        else:
            self.data["effects"].append({"name": name, "status": status, "info": info})
        self.data.update(fields)
        self._write()

    def intent(self, name: str, **info: Any) -> None:
        """``name`` is about to happen; ``info`` is what undoing it needs."""
        self._mark(name, INTENT, info)

    def done(self, name: str, info: dict[str, Any] | None = None, *, last: bool = False) -> None:
        """``name`` happened, producing ``info``; ``last``: it was the cycle's last side effect,
        so the cycle is committed (in the same write)."""
        self._mark(name, DONE, dict(info or {}), **({"committed": True} if last else {}))

    def undone(self, name: str) -> None:
        self._mark(name, UNDONE, {})

    # -- the owner ------------------------------------------------------------------------

    def owner(self) -> str:
        who = f"pid {self.data.get('pid')}"
        if self.data.get("host") and self.data["host"] != socket.gethostname():
            who += f" on {self.data['host']}"
        return f"`{self.data.get('command', 'a cycle')}` ({who})"

    def owner_alive(self) -> bool:
        from modelcycle.lifecycle.lock import process_alive

        pid = self.data.get("pid")
        if not isinstance(pid, int) or pid == os.getpid():
            return False
        return process_alive(pid, self.data.get("host"), self.data.get("process_start"))
