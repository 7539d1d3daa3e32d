"""Cycles whose data and model did not reach the DVC remote, with ``versioning.push: best-effort``.

A cycle whose push fails under ``best-effort`` commits anyway and is written down in
``.modelcycle/unpushed.json`` (not versioned: the workspace's own state, like the journal): its
window, git tag and commit, the remote and the error. The next cycle pushes them again before
its own push, and ``modelcycle push`` does now; a push that succeeds clears them. ``modelcycle
status``, the run's output and the notification say what is still not pushed.

Before any push, DVC's own remote config is brought in line with ``backends.dvc_remote`` (or
``MODELCYCLE_DVC_REMOTE``): :func:`sync`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from modelcycle.atomic import write_atomic
from modelcycle.config import Workspace
from modelcycle.config.secrets import redact
from modelcycle.errors import VersioningError
from modelcycle.versioning.base import Snapshot, Versioning

log = logging.getLogger(__name__)

FILE = "unpushed.json"


@dataclass(frozen=True)
class Unpushed:
    """One cycle whose push failed."""

    window: str
    tag: str | None
    commit: str
    remote: str   # the remote it should have reached, password redacted
    error: str
    time: str


def path_of(ws: Workspace) -> Path:
    return ws.state_dir / FILE


def read(ws: Workspace) -> list[Unpushed]:
    """The cycles not pushed yet, oldest first (none when the file is absent or unreadable)."""
    try:
        data = json.loads(path_of(ws).read_text(encoding="utf-8"))
        return [Unpushed(**{k: entry.get(k) for k in Unpushed.__dataclass_fields__}) for entry in data]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("%s cannot be read (%s); the cycles it named are not retried", path_of(ws), exc)
        return []


def _write(ws: Workspace, entries: list[Unpushed]) -> None:
    path = path_of(ws)
    if not entries:
        path.unlink(missing_ok=True)
        return
    write_atomic(path, json.dumps([asdict(e) for e in entries], indent=2) + "\n")


def add(ws: Workspace, window: str, snapshot: Snapshot) -> None:
    """Write down a committed cycle whose push failed."""
    entries = [e for e in read(ws) if e.commit != snapshot.commit]
    entries.append(Unpushed(window, snapshot.tag, snapshot.commit, redact(ws.dvc_remote) or "none",
                            snapshot.push_error or "the push failed",
                            datetime.now(UTC).isoformat(timespec="seconds")))
    _write(ws, entries)


def sync(ws: Workspace, versioning: Versioning) -> None:
    """DVC's own remote config made to name the configured remote (see
    :func:`modelcycle.versioning.remote.sync_remote`)."""
    versioning.sync_remote(ws.dvc_remote)


@dataclass(frozen=True)
class Retried:
    """What a retry did: the cycles it pushed, and the error if some are still not pushed."""

    pushed: list[Unpushed]
    error: VersioningError | None = None


def _versioning(ws: Workspace, versioning: Versioning | None) -> Versioning:
    if versioning is not None:
        return versioning
    from modelcycle.versioning.dvcgit import DvcGitVersioning

    return DvcGitVersioning(ws.root)


def pending(ws: Workspace, versioning: Versioning | None = None) -> list[Unpushed]:
    """The cycles not pushed yet that still exist. A cycle is written down inside its
    transaction, before the commit point (so a crash just after the commit cannot lose the
    record); a cycle rolled back afterwards (an error, or recovery after a crash) has no tag any
    more, and its record is dropped here."""
    entries = read(ws)
    if not entries:
        return []
    try:
        tags = set(_versioning(ws, versioning).tags())
    except Exception:  # without git's answer, keep every record
        log.debug("could not list the workspace's tags", exc_info=True)
        return entries
    live = [e for e in entries if e.tag is None or e.tag in tags]
    if len(live) != len(entries):
        gone = [e.tag for e in entries if e not in live]
        log.info("dropped the push record of rolled-back cycle(s) %s", ", ".join(str(t) for t in gone))
        _write(ws, live)
    return live


def retry(ws: Workspace, versioning: Versioning) -> Retried:
    """Push the cycles written down as not pushed, to the remote configured now; clear them
    when that succeeds. Never raises for a failed push (the error is returned)."""
    entries = pending(ws, versioning)
    if not entries:
        return Retried([])
    try:
        versioning.push([e.commit for e in entries])
    except VersioningError as exc:
        log.warning("%d earlier cycle(s) still not pushed to the DVC remote: %s", len(entries), exc.message)
        return Retried([], exc)
    still = [e for e in read(ws) if e.commit not in {x.commit for x in entries}]
    _write(ws, still)
    return Retried(entries)


def warning(ws: Workspace, versioning: Versioning | None = None) -> str | None:
    """One sentence on the cycles not pushed yet (None: every cycle is pushed)."""
    return sentence(pending(ws, versioning))


def sentence(entries: list[Unpushed]) -> str | None:
    """One sentence on ``entries``, the cycles not pushed yet (None when there are none)."""
    if not entries:
        return None
    names = ", ".join(e.tag or e.commit[:10] for e in entries)
    last = entries[-1]
    return (f"{len(entries)} cycle(s) not pushed to the DVC remote {last.remote} ({names}): {last.error}; "
            "the next cycle pushes them again, or run `modelcycle push`")


def record(ws: Workspace, window: str, snapshot: Snapshot) -> None:
    """In the transaction, as soon as the push failed (best-effort): the snapshot is written down.
    If the transaction then rolls back, :func:`pending` drops the record (the tag is gone)."""
    if snapshot.push_error is not None and not snapshot.pushed:
        add(ws, window, snapshot)


def push_now(ws: Workspace, versioning: Versioning | None = None) -> Retried:
    """``modelcycle push``: bring DVC's remote in line with the config and push every cycle not
    pushed yet. Raises the push's error (naming the remote) when it fails."""
    versioning = _versioning(ws, versioning)
    sync(ws, versioning)
    done = retry(ws, versioning)
    if done.error is not None:
        raise done.error
    return done


def describe(entries: list[Unpushed]) -> list[str]:
    """One line per cycle not pushed, for ``status`` and ``push``."""
    return [f"{e.window}  {e.tag or e.commit[:10]}  ({e.time}) to {e.remote}" for e in entries]
