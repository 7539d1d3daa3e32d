import json

from modelcycle.notify import CycleOutcome, Event, EventKind, Notifier, format_message

KEEP = Event(model="m", window="2015-04", outcome=CycleOutcome.KEEP)


def test_file_and_echo_channels(tmp_path):
    seen = []
    log = tmp_path / "sub" / "notifications.log"
    n = Notifier(file=log, echo=seen.append)
    promoted = Event(model="m", window="2015-03", outcome=CycleOutcome.PROMOTE, reasons=("better",))
    assert n.send(promoted) == []
    assert n.send(KEEP) == []
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["window"] for x in lines] == ["2015-03", "2015-04"] and "time" in lines[0]
    assert lines[0]["outcome"] == "promote" and lines[0]["kind"] == "decision" and lines[0]["reasons"] == ["better"]
    assert seen == [promoted, KEEP]


def test_an_event_reads_back_from_the_log_as_it_was_written():
    event = Event(model="m", window="2015-03", outcome=CycleOutcome.ESCALATE, reasons=("neither meets",),
                  kind=EventKind.DECISION, version="4", champion="3", metric="rmse", champion_score=2.5,
                  challenger_score=2.4, git_commit="abc")
    assert Event.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_an_older_or_newer_log_line_still_reads():
    old = Event.from_dict({"time": "2026-01-01T00:00:00+00:00", "outcome": "keep", "window": "2015-02",
                           "something_new": 1})
    assert (old.outcome, old.kind, old.model, old.reasons) == (CycleOutcome.KEEP, EventKind.DECISION, "?", ())
    assert Event.from_dict({"outcome": "postponed"}).outcome == "postponed"


def test_unwritable_log_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    problems = Notifier(file=blocker / "log").send(KEEP)
    assert problems and "cannot append" in problems[0]


def test_apprise_json_webhook_on_loopback():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
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
        problems = n.send(Event(model="m", window="2015-03", outcome=CycleOutcome.ESCALATE,
                                reasons=("neither meets",)))
        thread.join(10)
    finally:
        server.server_close()
    assert problems == []
    assert "ESCALATE" in received[0]["title"] and "neither meets" in received[0]["message"]
    assert received[0]["type"] == "warning"


def test_unknown_apprise_scheme_is_reported():
    assert "does not understand" in Notifier(urls=["nosuchscheme://x"]).send(KEEP)[0]


def test_format_message():
    text = format_message(Event(model="taxifare", window="2015-03", outcome=CycleOutcome.PROMOTE, version="4",
                                reasons=("a", "b")))
    assert text.splitlines() == ["[taxifare] 2015-03: PROMOTE (v4 is the champion)", "  - a", "  - b"]


def test_a_rollback_reads_as_one(tmp_path) -> None:
    event = Event(model="m", window="2015-02", outcome=CycleOutcome.PROMOTE, kind=EventKind.ROLLBACK, version="3",
                  reasons=("bad fares: the champion rolled back to v3 (was v4) by ana",))
    assert format_message(event) == ("[m] ROLLBACK: the champion is v3\n"
                                      "  - bad fares: the champion rolled back to v3 (was v4) by ana")
    log = tmp_path / "decisions.log"
    Notifier(file=log).send(event)
    assert Event.from_dict(json.loads(log.read_text())).kind == EventKind.ROLLBACK
