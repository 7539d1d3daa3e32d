"""The local Prefect server a command starts registers Prefect's block types once per database,
not at every start (each check imports every installed Prefect collection: ~2 s of one core)."""

from __future__ import annotations

import os
import sqlite3
from importlib import metadata
from pathlib import Path

import psutil
import pytest

from modelcycle import dbcache
from modelcycle.lifecycle.runtime import LocalServer

SKIP = ("PREFECT_SERVER_REGISTER_BLOCKS_ON_START", "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION")


def _started(home: Path) -> dict[str, str]:
    """Start and stop a local server in ``home``; the environment it ran with."""
    server = LocalServer(home)
    server.start()
    try:
        assert server.process is not None
        env = psutil.Process(server.process.pid).environ()
        server.wait(timeout=120)
    finally:
        server.stop()
    return env


def _block_types(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM block_type").fetchone()[0])


def test_block_types_are_registered_once_per_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL", *SKIP):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "prefect"
    # a workspace's database from before the marker: which Prefect registered its blocks is unknown
    assert dbcache.seed("prefect", home / "prefect.db") or (home / "prefect.db").exists()
    marker = home / "prefect.db.blocks"
    marker.unlink(missing_ok=True)

    env = _started(home)
    assert not any(env.get(k) == "false" for k in SKIP)
    assert (home / "memo_store.toml").exists()  # Prefect checked its block types as it started
    assert marker.read_text().strip() == metadata.version("prefect")
    assert _block_types(home / "prefect.db") > 10

    (home / "memo_store.toml").unlink()
    env = _started(home)
    assert all(env.get(k) == "false" for k in SKIP)
    assert not (home / "memo_store.toml").exists()  # the registration did not run again
    assert _block_types(home / "prefect.db") > 10


def test_a_database_of_its_own_keeps_prefects_registration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "prefect"
    home.mkdir()
    (home / "prefect.db.blocks").write_text(metadata.version("prefect"))
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    server = LocalServer(home)
    monkeypatch.setattr("subprocess.Popen", _Recorder)
    server.start()
    assert not any(_Recorder.env.get(k) == "false" for k in SKIP)


class _Recorder:
    """Stands in for the server process: records the environment it would have started with."""

    env: dict[str, str] = {}
    pid = 0

    def __init__(self, args: list[str], env: dict[str, str], **_: object) -> None:
        type(self).env = env

    def poll(self) -> int:
        return 0


def test_prefects_servers_skip_py_key_value_s_type_checks_unless_the_user_wants_them() -> None:
    """In a fresh process: after ``configure``, the package imports without wrapping its
    functions in type checks; a user who set the variable keeps theirs."""
    import subprocess
    import sys

    code = ("import os, sys, tempfile\n"
            "from pathlib import Path\n"
            "from modelcycle.lifecycle import runtime\n"
            "runtime.configure(prefect_home=Path(tempfile.mkdtemp()), api_url=None)\n"
            "import key_value.aio\n"
            "print(os.environ['PY_KEY_VALUE_DISABLE_BEARTYPE'], key_value.aio.disable_beartype)\n")
    for preset, expected in ((None, "true True"), ("false", "false False")):
        env = {k: v for k, v in os.environ.items() if k != "PY_KEY_VALUE_DISABLE_BEARTYPE"}
        if preset is not None:
            env["PY_KEY_VALUE_DISABLE_BEARTYPE"] = preset
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1] == expected
