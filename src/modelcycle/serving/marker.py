"""``<workspace>/.modelcycle/serving.json``: which process serves the workspace, where, and what.

``modelcycle serve`` writes it while it runs and removes it on the way out; a cycle reads it
(:func:`live_marker`) to know the workspace is served. Kept apart from the server so that the
cycle reads it without importing the web stack.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from modelcycle.atomic import write_atomic

MARKER = "serving.json"


def write_marker(path: Path, info: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(info, indent=1) + "\n")


def remove_marker(path: Path) -> None:
    """Remove the marker if it is this process's (another server may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def live_marker(state_dir: Path) -> dict[str, Any] | None:
    """What ``<workspace>/.modelcycle/serving.json`` says, when the process it names is alive
    (a server that was killed leaves a stale one); None otherwise."""
    try:
        info = json.loads((state_dir / MARKER).read_text(encoding="utf-8"))
        pid = int(info["pid"])
        os.kill(pid, 0)
    except PermissionError:
        return info  # alive, another user's
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None
