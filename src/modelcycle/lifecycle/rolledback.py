"""The windows whose challenger was rolled back (``act.keep_rejected: false``), remembered
outside git and DVC.

A cycle that versions its window leaves a git tag (``modelcycle/<model>/<window>``) and moves
params.yaml's ``window:``: the tag tells a deployed run and the data watcher that the window was
processed already (:func:`~modelcycle.lifecycle.automation.processed`), and ``window:`` is where
``modelcycle run`` finds the next one. A rolled-back cycle leaves neither: git, DVC and
params.yaml are exactly as before it. So the window is recorded in
``.modelcycle/rolled_back.json``, a workspace-local file that neither git nor DVC versions (the
folder is git-ignored), with its MLflow run (which keeps the challenger, tagged
``modelcycle.outcome=rolled_back``) and its reasons:

* a deployed run for a recorded window is a no-op that says so, as for a tagged one;
* the next window (:func:`next_window`) walks past recorded windows: after 2015-02 was versioned
  and 2015-03 rolled back, ``modelcycle run`` and a deployed schedule go on with 2015-04.

Writing the record is the commit point of a rolled-back cycle (the journaled side effect
``reject``); undoing it (:func:`forget`) is what a rollback or crash recovery of that cycle
does. ``modelcycle run --window`` of a recorded window runs it again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelcycle.atomic import write_atomic
from modelcycle.config import Window, Workspace
from modelcycle.errors import WorkspaceError

FILE = "rolled_back.json"


def path_of(ws: Workspace) -> Path:
    return ws.state_dir / FILE


def read(ws: Workspace) -> dict[str, dict[str, Any]]:
    """The rolled-back windows: label -> ``{"run_id", "time", "reasons"}`` (empty without a file)."""
    path = path_of(ws)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"{path} cannot be read ({exc}): it lists the windows whose challenger was "
                             "rolled back", "if no modelcycle command is running, fix or remove it (without "
                             "it, those windows count as not processed yet)") from exc
    windows = data.get("windows") if isinstance(data, dict) else None
    if not isinstance(windows, dict):
        raise WorkspaceError(f"{path} has no `windows` mapping: it lists the windows whose challenger was "
                             "rolled back", "fix or remove it (without it, those windows count as not processed)")
    return {str(k): dict(v) if isinstance(v, dict) else {} for k, v in windows.items()}


def _write(ws: Workspace, windows: dict[str, dict[str, Any]]) -> None:
    path = path_of(ws)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"windows": windows}, indent=2, sort_keys=True) + "\n", durable=True)


def record(ws: Workspace, label: str, *, run_id: str | None, reasons: list[str]) -> None:
    """Remember that the challenger of ``label`` was rolled back (replacing an earlier record)."""
    windows = read(ws)
    windows[label] = {"run_id": run_id, "time": datetime.now(UTC).isoformat(timespec="seconds"),
                      "reasons": list(reasons)}
    _write(ws, windows)


def forget(ws: Workspace, label: str) -> None:
    """Undo :func:`record` for ``label`` (nothing to do when it is not recorded)."""
    windows = read(ws)
    if windows.pop(label, None) is not None:
        _write(ws, windows)


def find(ws: Workspace, label: str) -> dict[str, Any] | None:
    """The record of ``label``'s rolled-back challenger, or None."""
    return read(ws).get(label)


def next_window(ws: Workspace) -> Window:
    """The window after the last cycle's (params.yaml's ``window:``), past the windows rolled
    back since: the default window of ``modelcycle run`` and of a deployed run."""
    window = ws.next_window()
    rolled = read(ws)
    while window.label in rolled:
        window = window.following()
    return window
