"""Who may bind where, and the server marker a cycle reads to know the workspace is served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelcycle.errors import ConfigError, ServingError
from modelcycle.serving import runner
from modelcycle.serving.marker import MARKER, live_marker, remove_marker, write_marker


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("::", False),
                                                ("10.1.2.3", False), ("example.org", False)])
def test_only_the_loopback_may_be_served_without_a_token(host: str, loopback: bool) -> None:
    assert runner.is_loopback(host) is loopback
    if loopback:
        runner.check_binding(host, None)
    else:
        with pytest.raises(ConfigError, match=f"serving on {host}.*no token") as caught:
            runner.check_binding(host, None)
        assert "MODELCYCLE_SERVE_TOKEN" in (caught.value.hint or "")
        runner.check_binding(host, "a-token")


def test_a_port_in_use_is_a_serving_error_that_suggests_another() -> None:
    taken = runner.bind("127.0.0.1", 0)
    try:
        with pytest.raises(ServingError, match="cannot listen on 127.0.0.1:") as caught:
            runner.bind("127.0.0.1", taken.getsockname()[1])
        assert "--port 0" in (caught.value.hint or "")
    finally:
        taken.close()


def test_the_marker_counts_only_while_its_process_lives(tmp_path: Path) -> None:
    assert live_marker(tmp_path) is None
    write_marker(tmp_path / MARKER, {"pid": os.getpid(), "port": 8080})
    assert live_marker(tmp_path) == {"pid": os.getpid(), "port": 8080}
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / MARKER).write_text(json.dumps({"pid": int(gone.stdout), "port": 8080}))
    assert live_marker(tmp_path) is None  # a killed server's marker is stale
    remove_marker(tmp_path / MARKER)
    assert (tmp_path / MARKER).exists()  # not this process's: left alone
    write_marker(tmp_path / MARKER, {"pid": os.getpid()})
    remove_marker(tmp_path / MARKER)
    assert not (tmp_path / MARKER).exists()
