"""Loaded by every Python process of a simulated machine (its PYTHONPATH starts here): the
workspace's file lock becomes local to the machine, as a file lock on a network filesystem is
not to be trusted to hold across machines. The lock file and its holder note move from the
shared workspace's .modelcycle/ to the machine's own folder ``MODELCYCLE_TEST_MACHINE_LOCKS``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_folder = os.environ.get("MODELCYCLE_TEST_MACHINE_LOCKS")
if _folder:
    from modelcycle.lifecycle import lock

    def _machine_paths(root: Path) -> tuple[Path, Path]:
        here = Path(_folder) / hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
        return here / lock.LOCK_FILE, here / lock.HOLDER_FILE

    lock._paths = _machine_paths

# ``MODELCYCLE_TEST_HOLD=<point>=<file>``: a cycle that reaches the trace point waits there while
# the file exists (at most two minutes), so a test can let another cycle arrive meanwhile.
_hold = os.environ.get("MODELCYCLE_TEST_HOLD")
if _hold:
    import time

    from modelcycle import tracepoints

    _point, _, _file = _hold.partition("=")

    def _wait_while_held(point: str) -> None:
        deadline = time.monotonic() + 120
        while point == _point and Path(_file).exists() and time.monotonic() < deadline:
            time.sleep(0.2)

    tracepoints._hook = _wait_while_held
