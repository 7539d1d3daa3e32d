import json

from modelcycle.notify import Notifier, format_message


def test_file_and_echo_channels(tmp_path):
    seen = []
    log = tmp_path / "sub" / "notifications.log"
    n = Notifier(file=log, echo=seen.append)
    assert n.send({"model": "m", "window": "2015-03", "outcome": "promote", "reasons": ["better"]}) == []
    assert n.send({"model": "m", "window": "2015-04", "outcome": "keep", "reasons": []}) == []
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["window"] for x in lines] == ["2015-03", "2015-04"] and "time" in lines[0]
    assert len(seen) == 2


def test_unwritable_log_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    problems = Notifier(file=blocker / "log").send({"outcome": "keep"})
    assert problems and "cannot append" in problems[0]


def test_apprise_json_webhook_on_loopback():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        n = Notifier(urls=[f"json://127.0.0.1:{server.server_port}/hook"])
        problems = n.send({"model": "m", "window": "2015-03", "outcome": "escalate", "reasons": ["neither meets"]})
        thread.join(10)
    finally:
        server.server_close()
    assert problems == []
    assert "ESCALATE" in received[0]["message"] and "neither meets" in received[0]["message"]


def test_unknown_apprise_scheme_is_reported():
    assert "does not understand" in Notifier(urls=["nosuchscheme://x"]).send({"outcome": "keep"})[0]


def test_format_message():
    text = format_message({"model": "taxifare", "window": "2015-03", "outcome": "promote", "version": "4",
                           "reasons": ["a", "b"]})
    assert text.splitlines() == ["[taxifare] 2015-03: PROMOTE (challenger v4)", "  - a", "  - b"]
