"""`modelcycle serve` on a real workspace: a real server on a free loopback port answers what
`modelcycle predict` answers, refuses client mistakes with 4xx errors naming what was wrong,
follows the champion alias without failing a request, never swaps in a version that does not
load, and asks for a token when it has one."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import numpy as np
import orjson
import pandas as pd
import pytest

from modelcycle.config import Workspace
from modelcycle.errors import ConfigError
from modelcycle.registry.workspace import open_registry
from modelcycle.serving import runner
from modelcycle.serving.marker import live_marker

from .helpers import cli

pytestmark = pytest.mark.slow
NAME = "taxifare"
COLUMNS = ["pickup_datetime", "pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude",
           "passenger_count"]


@dataclass
class Running:
    url: str
    root: Path
    reg: Any
    lines: list[str]
    moves: list[tuple[str | None, str | None]] = field(default_factory=list)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(self.url)
        own = conn is None
        conn = conn or http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, orjson.loads(data)
        finally:
            if own:
                conn.close()

    def post(self, body: Any, **kw: Any) -> tuple[int, dict[str, str], Any]:
        return self.request("POST", "/predict", body if isinstance(body, bytes) else orjson.dumps(body), **kw)

    def health(self) -> tuple[int, Any]:
        status, _, body = self.request("GET", "/health")
        return status, body

    def wait_health(self, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, body = self.health()
            if check(body):
                return body
            time.sleep(0.1)
        raise AssertionError(f"/health never got there: {self.health()}")


@contextlib.contextmanager
def serving(root: Path, **settings: Any) -> Iterator[Running]:
    """`modelcycle serve`'s server for ``root``, in a thread of this process, on a free port."""
    ws = Workspace.load(root)
    reg = open_registry(ws)
    lines: list[str] = []
    moves: list[tuple[str | None, str | None]] = []
    ready, stop = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def on_ready(url: str) -> None:
        box["url"] = url
        ready.set()

    def run() -> None:
        try:
            runner.serve(reg, NAME, ws.state_dir,
                         runner.Settings(**{"host": "127.0.0.1", "port": 0, "poll_seconds": 0.2, **settings}),
                         runner.Hooks(say=lines.append, on_move=lambda b, a: moves.append((b, a))),
                         ready=on_ready, stop=stop)
        except BaseException as exc:  # handed to the test
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(120), "the server did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield Running(box["url"], root, reg, lines, moves)
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive()


def rides(root: Path, n: int = 25) -> pd.DataFrame:
    con = duckdb.connect(str(root / ".modelcycle/warehouse.duckdb"), read_only=True)
    frame = con.execute(f"SELECT {', '.join(COLUMNS)} FROM rides WHERE pickup_datetime >= '2015-01-01' "
                        f"ORDER BY pickup_datetime LIMIT {n}").df()
    con.close()
    frame["pickup_datetime"] = frame["pickup_datetime"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return frame


def predicted_by_the_cli(capsys: pytest.CaptureFixture[str], root: Path, frame: pd.DataFrame) -> np.ndarray:
    path = root / "records.csv"
    frame.to_csv(path, index=False)
    code, out, err = cli(capsys, "-w", str(root), "predict", str(path))
    assert code == 0, err
    return pd.read_csv(io.StringIO(out))["prediction"].to_numpy()


def test_every_body_form_answers_what_modelcycle_predict_answers(cli_champion_ws: Path, capsys) -> None:
    frame = rides(cli_champion_ws)
    expected = predicted_by_the_cli(capsys, cli_champion_ws, frame)
    records = frame.to_dict("records")
    split = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
    with serving(cli_champion_ws) as srv:
        assert srv.lines[0] == f"loading {NAME} v1 ..." and srv.lines[1].startswith(f"serving {NAME} v1 at http://")
        for body, headers in [({"records": records}, {}), ({"dataframe_records": records}, {}),
                              ({"dataframe_split": split}, {}),
                              (frame.to_csv(index=False).encode(), {"Content-Type": "text/csv"})]:
            status, head, answer = srv.post(body, headers=headers)
            assert status == 200, answer
            assert answer["model"] == NAME and answer["version"] == "1"
            np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-9)
            assert head["x-request-id"]
        status, _, info = srv.request("GET", "/model")
        assert status == 200
        assert (info["name"], info["version"], info["alias"]) == (NAME, "1", "champion")
        lineage = info["lineage"]
        assert lineage["window"] == "2014-12" and len(lineage["git_commit"]) == 40
        assert lineage["git_tag"].startswith("modelcycle/") and lineage["dvc_data_hash"]
        assert lineage["decision"] == "promote" and info["reasons"]
        assert "challenger_mae" in info["metrics"]


def test_client_mistakes_are_4xx_errors_that_name_what_was_wrong(cli_champion_ws: Path) -> None:
    record = rides(cli_champion_ws, 1).to_dict("records")[0]
    with serving(cli_champion_ws, max_body_mb=0.01) as srv:  # 10 KB
        status, head, answer = srv.post(b'{"records": [')
        assert status == 400 and answer["error"]["code"] == "bad_body" and head["x-request-id"]
        status, _, answer = srv.post(b"<rides/>", headers={"Content-Type": "application/xml"})
        assert status == 415 and answer["error"]["code"] == "unsupported_media_type"
        status, _, answer = srv.post({"records": [record, {**record, "passenger_count": "two"}]})
        assert status == 422
        assert answer["error"]["field"] == "passenger_count" and answer["error"]["row"] == 1
        assert "passenger_count" in answer["error"]["message"]
        missing = {k: v for k, v in record.items() if k != "pickup_latitude"}
        status, _, answer = srv.post({"records": [missing]})
        assert status == 422 and answer["error"]["field"] == "pickup_latitude"
        big = orjson.dumps({"records": [record] * 200})
        assert len(big) > 10 * 2**10
        status, _, answer = srv.post(big)
        assert status == 413 and answer["error"]["code"] == "body_too_large"
        # a chunked body (no Content-Length) is counted while it is read
        parts = urlsplit(srv.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("POST", "/predict", body=iter([big[:6000], big[6000:]]),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413 and orjson.loads(response.read())["error"]["code"] == "body_too_large"
        conn.close()
        status, _, answer = srv.request("GET", "/nowhere")
        assert status == 404 and answer["error"]["code"] == "not_found"
        status, _, answer = srv.post({"records": [record]}, headers={})
        assert status == 200  # the server still serves after all of that


def test_health_is_503_until_a_champion_is_loaded(cli_champion_ws: Path) -> None:
    reg = open_registry(Workspace.load(cli_champion_ws))
    reg.delete_alias(NAME, "champion")
    record = rides(cli_champion_ws, 1).to_dict("records")[0]
    with serving(cli_champion_ws) as srv:
        status, body = srv.health()
        assert status == 503 and body["status"] == "loading" and body["version"] is None
        status, _, answer = srv.post({"records": [record]})
        assert status == 503 and answer["error"]["code"] == "not_ready"
        assert any("no champion" in line for line in srv.lines)
        reg.set_alias(NAME, "champion", "1")
        body = srv.wait_health(lambda b: b["status"] == "ok")
        assert body["version"] == "1" and body["loaded_at"] and body["last_poll"]
        status, _, answer = srv.post({"records": [record]})
        assert status == 200 and answer["version"] == "1"


def _second_version(reg: Any, source: str | None = None) -> str:
    first = reg.get_version(NAME, "1")
    return reg.register(NAME, source or first.source, first.run_id).version


def test_a_swap_under_concurrent_requests_fails_none_and_changes_the_version_once(cli_champion_ws: Path) -> None:
    records = rides(cli_champion_ws, 3).to_dict("records")
    body = orjson.dumps({"records": records})
    with serving(cli_champion_ws) as srv:
        new = _second_version(srv.reg)
        seen: list[list[str]] = [[] for _ in range(6)]
        failures: list[Any] = []
        stop = threading.Event()

        def client(mine: list[str]) -> None:
            parts = urlsplit(srv.url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            while not stop.is_set():
                try:
                    status, _, answer = srv.post(body, conn=conn)
                except Exception as exc:
                    failures.append(repr(exc))
                    continue
                if status != 200 or len(answer["predictions"]) != 3:
                    failures.append((status, answer))
                else:
                    mine.append(answer["version"])
            conn.close()

        threads = [threading.Thread(target=client, args=(mine,)) for mine in seen]
        for t in threads:
            t.start()
        time.sleep(1.0)
        srv.reg.set_alias(NAME, "champion", new)  # as the MLflow UI would
        srv.wait_health(lambda b: b["version"] == new)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    for versions in seen:
        assert versions and versions[0] == "1" and versions[-1] == new
        changes = sum(1 for a, b in zip(versions, versions[1:], strict=False) if a != b)
        assert changes == 1, versions
    assert srv.moves == [("1", new)]  # the alias-history seam heard of the move once
    assert any(line.startswith(f"swapped {NAME} v1 -> v{new}") for line in srv.lines)


def test_a_version_that_does_not_load_is_never_swapped_in(cli_champion_ws: Path, tmp_path: Path) -> None:
    record = rides(cli_champion_ws, 1).to_dict("records")[0]
    with serving(cli_champion_ws) as srv:
        source = srv.reg.get_version(NAME, "1").source
        copy = tmp_path / "model-copy"
        shutil.copytree(Path(source.removeprefix("file://")), copy)
        broken = _second_version(srv.reg, str(copy))
        shutil.rmtree(copy)  # its files are gone
        srv.reg.set_alias(NAME, "champion", broken)
        body = srv.wait_health(lambda b: b["last_failure"] is not None)
        assert body["status"] == "ok" and body["version"] == "1"
        assert body["last_failure"]["version"] == broken and "cannot be loaded" in body["last_failure"]["message"]
        status, _, answer = srv.post({"records": [record]})
        assert status == 200 and answer["version"] == "1"
        time.sleep(1.0)  # several polls later: not tried again while the alias stays there
        _, body = srv.health()
        assert body["last_failure"]["attempts"] == 1 and body["version"] == "1"
        assert any(f"version {broken} of {NAME} was not swapped in" in line for line in srv.lines)
        srv.reg.set_alias(NAME, "champion", "1")  # moved back: nothing to load, the failure stays reported
        srv.wait_health(lambda b: b["last_poll"] is not None)


def test_a_token_guards_everything_but_health(cli_champion_ws: Path) -> None:
    record = rides(cli_champion_ws, 1).to_dict("records")[0]
    with serving(cli_champion_ws, token="s3cret-t0ken") as srv:
        status, head, answer = srv.post({"records": [record]})
        assert status == 401 and answer["error"]["code"] == "unauthorized" and head["www-authenticate"] == "Bearer"
        status, _, answer = srv.post({"records": [record]}, headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _, answer = srv.post({"records": [record]}, headers={"Authorization": "Bearer s3cret-t0ken"})
        assert status == 200 and answer["version"] == "1"
        status, _, _ = srv.request("GET", "/model")
        assert status == 401
        status, _, info = srv.request("GET", "/model", headers={"Authorization": "Bearer s3cret-t0ken"})
        assert status == 200 and "s3cret" not in json.dumps(info)
        assert srv.health()[0] == 200
    assert all("s3cret" not in line for line in srv.lines)
    with pytest.raises(ConfigError, match="no token is set"):
        runner.check_binding("0.0.0.0", None)
    runner.check_binding("0.0.0.0", "x")
    runner.check_binding("::1", None)
    runner.check_binding("localhost", None)


def test_the_command_serves_writes_its_marker_and_stops_cleanly(cli_champion_ws: Path) -> None:
    root = cli_champion_ws
    exe = str(Path(sys.executable).with_name("modelcycle"))
    env = {k: v for k, v in os.environ.items() if k != "MODELCYCLE_SERVE_TOKEN"}
    refused = subprocess.run([exe, "-w", str(root), "serve", "--host", "0.0.0.0"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "MODELCYCLE_SERVE_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr
    with (root / "modelcycle.yaml").open("a") as yaml:
        yaml.write("\nserve:\n  port: 0\n  poll_seconds: 0.5\n")
    proc = subprocess.Popen([exe, "-w", str(root), "serve"], env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        lines = []
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.strip())
            if line.startswith("serving "):
                break
        assert lines[-1].startswith(f"serving {NAME} v1 at http://127.0.0.1:"), lines
        url = lines[-1].split(" at ")[1].split()[0]
        marker = json.loads((root / ".modelcycle" / "serving.json").read_text())
        assert live_marker(root / ".modelcycle") == marker
        assert marker["pid"] == proc.pid and marker["url"] == url and marker["version"] == "1"
        assert marker["host"] == "127.0.0.1" and marker["port"] == int(url.rsplit(":", 1)[1])
        srv = Running(url, root, None, lines)
        status, _, answer = srv.post({"records": rides(root, 2).to_dict("records")})
        assert status == 200 and len(answer["predictions"]) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "stopped" in proc.stderr.read()
        assert not (root / ".modelcycle" / "serving.json").exists()
        assert live_marker(root / ".modelcycle") is None
    finally:
        if proc.poll() is None:
            proc.kill()
