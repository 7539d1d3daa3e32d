"""The one way modelcycle replaces its small files: whole, or not at all."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from modelcycle.atomic import leftovers, write_atomic


@pytest.fixture
def umask():
    def set_to(value: int) -> None:
        os.umask(value)

    before = os.umask(0o022)
    try:
        yield set_to
    finally:
        os.umask(before)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_and_bytes_replace_the_file_and_the_folder_is_made(tmp_path):
    path = tmp_path / "new" / "folder" / "state.json"
    write_atomic(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary file left


def test_permissions_asked_for_kept_or_the_processes_default(tmp_path, umask):
    umask(0o000)
    secret = tmp_path / ".env"
    write_atomic(secret, "KEY=1\n", mode=0o600)
    assert mode_of(secret) == 0o600  # whatever the umask

    script = tmp_path / "run.sh"
    script.write_text("old")
    script.chmod(0o750)
    write_atomic(script, "new", keep_mode=True)
    assert (script.read_text(), mode_of(script)) == ("new", 0o750)

    umask(0o027)
    fresh = tmp_path / "fresh.json"
    write_atomic(fresh, "{}", keep_mode=True)  # nothing to keep: the default
    assert mode_of(fresh) == 0o640
    write_atomic(script, "plain")  # without keep_mode: the default, not the old file's
    assert mode_of(script) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "journal.json"
    path.write_text("old")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "new", durable=True)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.json"]


def test_writers_at_once_never_leave_part_of_a_file_nor_fail(tmp_path):
    """Threads (or processes) writing the same file each use their own temporary file: a reader
    sees one whole version, and no writer loses its temporary file to another's replace."""
    path = tmp_path / "servers.json"
    versions = [(str(i) * 20000).encode() for i in range(4)]
    write_atomic(path, versions[0])
    errors: list[BaseException] = []
    seen: set[bytes] = set()
    stop = threading.Event()

    def write(data: bytes) -> None:
        try:
            for _ in range(150):
                write_atomic(path, data)
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            seen.add(path.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(v,)) for v in versions]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert errors == []
    assert seen <= set(versions)
    assert leftovers(tmp_path) == []


def test_leftovers_names_what_a_killed_write_left(tmp_path):
    (tmp_path / "2015-01.parquet").write_bytes(b"x")
    (tmp_path / f".2015-02.parquet.{os.getpid()}.0a1b2c3d.tmp").write_bytes(b"half")
    (tmp_path / ".memo.json.99.ffffffff.tmp").write_bytes(b"half")
    assert [p.name for p in leftovers(tmp_path, "*.parquet")] == [f".2015-02.parquet.{os.getpid()}.0a1b2c3d.tmp"]
    assert len(leftovers(tmp_path)) == 2
