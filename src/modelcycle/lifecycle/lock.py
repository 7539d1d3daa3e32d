"""One lock per workspace.

Every command that changes a workspace (``run``, ``backtest``, ``promote``, ``doctor``, ``step``,
``demo``, and the cycle flow itself, so a deployed run is covered too) holds
``.modelcycle/lock`` while it works. The lock is an OS file lock (``filelock``: ``flock`` on
POSIX), so the kernel releases it when its process dies, however it dies: a killed cycle never
leaves a stale lock behind. Beside it, ``.modelcycle/lock.json`` says who holds it (pid, host,
command, since when), for the message a second command prints while it waits (or refuses, with
``--no-wait``).

It holds on one machine: across machines (workers of one Prefect server sharing the workspace's
folder) a cycle also holds its model's slot on the server (:mod:`~modelcycle.lifecycle.modellock`).

The lock is re-entrant within a process: the CLI takes it before Prefect starts, and the flow
it runs takes it again without waiting on itself.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import TYPE_CHECKING

from modelcycle.atomic import write_atomic
from modelcycle.config import STATE_DIR
from modelcycle.errors import WorkspaceError

if TYPE_CHECKING:
    from filelock import FileLock

LOCK_FILE = "lock"
HOLDER_FILE = "lock.json"

_depth: dict[Path, int] = {}
_guard = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds a workspace's lock."""

    pid: int
    host: str
    command: str
    since: str  # ISO 8601, UTC

    def describe(self) -> str:
        started = datetime.fromisoformat(self.since)
        age = max(0, int((datetime.now(UTC) - started).total_seconds()))
        local = started.astimezone().strftime("%H:%M:%S")
        where = f"pid {self.pid}" + ("" if self.host == socket.gethostname() else f" on {self.host}")
        return f"`{self.command}` ({where}) has held it since {local} ({_ago(age)})"


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _paths(root: Path) -> tuple[Path, Path]:
    state = Path(root) / STATE_DIR
    return state / LOCK_FILE, state / HOLDER_FILE


def _file_lock(path: Path) -> FileLock:
    from filelock import FileLock

    return FileLock(str(path), is_singleton=True, thread_local=False)


def read_holder(root: Path) -> Holder | None:
    """What ``lock.json`` says (it may be stale: see :func:`holder`)."""
    _, info = _paths(root)
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holder(root: Path) -> Holder | None:
    """Who holds the lock now, or None when nobody does."""
    from filelock import Timeout

    root = Path(root).resolve()
    lock_path, _ = _paths(root)
    if held_here(root):
        return read_holder(root)
    if not lock_path.exists():
        return None
    lock = _file_lock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return read_holder(root) or Holder(-1, "?", "another command", datetime.now(UTC).isoformat())
    lock.release()
    return None


def held_here(root: Path) -> bool:
    """This process holds the workspace's lock."""
    with _guard:
        return _depth.get(Path(root).resolve(), 0) > 0


@contextmanager
def hold(root: Path, command: str, *, wait: bool = True,
         on_wait: Callable[[Holder], None] | None = None) -> Iterator[None]:
    """Hold the workspace's lock for the block.

    Busy: with ``wait``, call ``on_wait(holder)`` once and block until the lock is free; without
    it, raise :class:`WorkspaceError` naming the holder.
    """
    from filelock import Timeout

    root = Path(root).resolve()
    lock_path, info = _paths(root)
    with _guard:
        depth = _depth.get(root, 0)
        if depth:
            _depth[root] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _guard:
                _depth[root] -= 1
        return
    try:
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"cannot create {lock_path.parent}: {exc.strerror}",
                             "check that the workspace folder is writable") from exc
    lock = _file_lock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = read_holder(root)
        what = who.describe() if who else "another modelcycle command holds it"
        if not wait:
            raise WorkspaceError(
                f"the workspace {root} is busy: {what}",
                "wait for it to finish (leave out --no-wait to wait), or stop that command") from None
        if on_wait is not None and who is not None:
            on_wait(who)
        while True:
            try:
                lock.acquire(timeout=0.5)
                break
            except Timeout:
                continue
    except OSError as exc:
        raise WorkspaceError(f"cannot lock {lock_path}: {exc.strerror}",
                             "check the permissions of the workspace's .modelcycle folder") from exc
    try:
        with _guard:
            _depth[root] = 1
        _write_holder(info, command)
        yield
    finally:
        with _guard:
            _depth.pop(root, None)
        try:
            info.unlink(missing_ok=True)
        finally:
            lock.release()


def _write_holder(info: Path, command: str) -> None:
    data = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "written": time.time()}
    write_atomic(info, json.dumps(data))


def process_alive(pid: int, host: str | None = None, started: float | None = None) -> bool:
    """Is process ``pid`` (on this host; started at ``started``, psutil's create_time) alive?"""
    if host is not None and host != socket.gethostname():
        return True  # another machine's process: assume alive, the lock decides there
    import psutil

    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # AccessDenied: it exists, it is someone else's
        return True
