"""DVC's and git's errors in words (:func:`_translate`), and DVC's info-level chatter silenced
during calls (:func:`_quiet_dvc`; logging is process-wide, so a depth count guards it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from modelcycle.errors import VersioningError

log = logging.getLogger(__name__)


_quiet_lock = threading.Lock()


_quiet_depth = 0


_quiet_saved = logging.NOTSET


@contextmanager
def _quiet_dvc() -> Iterator[None]:
    """Silence DVC's info-level chatter (``Initialized DVC repository.`` ...) during calls.

    Depth-counted under a lock, so overlapping calls from several threads put the level back
    once, when the last one ends.
    """
    global _quiet_depth, _quiet_saved
    import dvc.logger  # noqa: F401 - importing dvc sets its logger's level; set ours after

    dvc_logger = logging.getLogger("dvc")
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = dvc_logger.level
            if _quiet_saved < logging.WARNING:
                dvc_logger.setLevel(logging.WARNING)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                dvc_logger.setLevel(_quiet_saved)


def _translate(exc: BaseException, what: str, root: str) -> VersioningError:
    """One DVC/scmrepo/OS error -> one VersioningError with a next step."""
    name = type(exc).__name__
    text = str(exc).strip() or name
    hint = f"run `dvc status` in {root} to see the problem, fix it and run the cycle again"
    if name == "NotDvcRepoError":
        return VersioningError(
            f"{root} is not a DVC repository ({what})",
            "create the workspace with `modelcycle init`, or run `dvc init` in it")
    if name in {"LockError"} or "Unable to acquire lock" in text:
        return VersioningError(
            f"DVC {what} failed: another DVC command holds the lock of {root} ({text})",
            "wait for the other `dvc` command (or modelcycle run) to finish; if none is running, "
            "delete .dvc/tmp/lock and try again")
    if name in {"OutputDoesNotExistError", "StageCommitError", "MissingDataSource"}:
        hint = "the step that writes this output did not run or failed; run the cycle again"
    elif name == "OutputAlreadyTrackedError":
        hint = ("the output is committed to git; `git rm -r --cached <path>` and commit, "
                "so DVC can track it")
    elif name in {"YAMLFileCorruptedError", "YAMLSyntaxError", "StageFileFormatError",
                  "ParseError", "ResolveError"}:
        hint = "fix dvc.yaml / dvc.lock / params.yaml (or restore it with `git checkout -- <file>`)"
    elif name in {"CheckoutError", "FileNotFoundError"}:
        hint = "the data is not in the DVC cache; `dvc pull` it from the remote and try again"
    return VersioningError(f"DVC {what} failed in {root}: {name}: {text}", hint)
