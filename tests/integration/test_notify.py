"""A real cycle's notification reaches webhook receivers on 127.0.0.1 through Apprise ``json://``
URLs: the body carries both scores, the threshold, the MLflow run and the Prefect flow run; a
receiver answering 500 and a closed port are each retried, never fail the cycle, and never keep
the message from the good receiver beside them."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelcycle.lifecycle import flows

pytest.importorskip("apprise")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


class Receiver:
    """A webhook on 127.0.0.1 answering ``status`` to every POST; keeps what it received."""

    def __init__(self, status: int) -> None:
        self.received: list[dict] = []
        self.paths: list[str] = []
        receiver = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.paths.append(self.path)
                receiver.received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    good, broken = Receiver(200), Receiver(500)
    try:
        yield good, broken
    finally:
        good.close()
        broken.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_cycle_notifies_every_channel_with_scores_and_links(champion_ws: Path, receivers, caplog) -> None:
    good, broken = receivers
    nowhere = closed_port()
    config = champion_ws / "modelcycle.yaml"
    text, n = re.subn(r"(?m)^  urls: \[\].*$", (
        "  urls:\n"
        f"    - json://127.0.0.1:{broken.port}/broken\n"
        f"    - json://127.0.0.1:{good.port}/hooks/modelcycle\n"
        f"    - json://127.0.0.1:{nowhere}/closed\n"
        "  retries: 2\n"
        "  backoff_seconds: 0.05"), config.read_text())
    assert n == 1
    config.write_text(text)
    subprocess.run(["git", "commit", "-qam", "notify the team's webhooks"], cwd=champion_ws, check=True)

    caplog.set_level(logging.WARNING)
    result = flows.run(champion_ws, "2015-01")  # v1 is the champion: both models are scored

    assert result.outcome in ("promote", "keep"), result.reasons
    assert result.champion_score is not None and result.challenger_score is not None
    # the good receiver got the message once, whatever the two others did
    assert good.paths == ["/hooks/modelcycle"]
    payload = good.received[0]
    body = payload["message"]
    assert payload["title"].startswith(f"modelcycle: [taxifare] 2015-01: {str(result.outcome).upper()}")
    assert f"champion MAE {result.champion_score:.4g} vs challenger {result.challenger_score:.4g}" in body
    assert "(threshold ≤ 2.5)" in body
    assert result.improvement is not None and "interval" in body  # the bootstrap's interval
    assert f"MLflow run id: {result.mlflow_run_id}" in body       # embedded MLflow: the id, no link
    assert result.flow_run_id and result.flow_run_id in body
    assert "`modelcycle up`" in body
    for reason in result.reasons:
        assert reason in body
    # the 500 receiver was tried retries + 1 times; both failures are the cycle's problems, not errors
    assert len(broken.paths) == 3
    assert len(result.notify_problems) == 2, result.notify_problems
    assert any(f"127.0.0.1:{broken.port}" in p and "after 3 attempts" in p and "500" in p
               for p in result.notify_problems)
    assert any(f"127.0.0.1:{nowhere}" in p and "after 3 attempts" in p and "onnection" in p
               for p in result.notify_problems)
    # each failed attempt is said once, by modelcycle (Apprise's own warnings are folded into it)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.name.startswith("apprise") and r.levelno >= logging.WARNING]
    assert sum("failed (attempt" in m for m in said) == 6
    # the decision log holds the same event, links and ids included
    logged = json.loads((champion_ws / ".modelcycle/notifications.log").read_text().splitlines()[-1])
    assert logged["run_id"] == result.mlflow_run_id and logged["flow_run_id"] == result.flow_run_id
    assert logged["threshold"] == 2.5 and logged["champion_score"] == pytest.approx(result.champion_score)
