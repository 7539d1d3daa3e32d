"""Writing a file so that a reader sees the old file or the new one, never part of one.

Every small file modelcycle keeps (the cycle's journal, the lock's holder, the list of servers,
the partitions' memo, files restored from git, ...) is written the same way: the bytes go to a
temporary file of a name no other process or thread uses, in the same folder, which then
replaces the file in one step (``os.replace``). A write that fails, or a process killed while
writing, leaves the file as it was; the temporary file is removed, except after a kill, where its
name (``.<name>.<pid>.<random>.tmp``, see :func:`leftovers`) says what it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["leftovers", "write_atomic"]


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, mode: int | None = None,
                 keep_mode: bool = False, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one step.

    The folder is created when missing (with the default permissions: a caller that wants its
    folder private creates it first). The new file has permissions ``mode`` when given (set
    before any byte is written: for secrets), else those of the file it replaces when
    ``keep_mode``, else the process's default (0o666 less the umask). ``durable`` flushes the
    bytes to disk before the replace (for records a crash must not lose)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)  # whatever the umask
            elif keep_mode:
                with contextlib.suppress(FileNotFoundError):
                    os.fchmod(fh.fileno(), os.stat(target).st_mode & 0o7777)
            fh.write(payload)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def leftovers(folder: str | os.PathLike[str], name: str = "*") -> list[Path]:
    """Temporary files of :func:`write_atomic` that a killed process left in ``folder``, for the
    file ``name`` (a glob pattern: ``"*.parquet"``; every file by default)."""
    return sorted(Path(folder).glob(f".{name}.*.tmp"))
