"""A small HTTP/1.1 load generator for benchmarking model servers on loopback (not a test).

It keeps N connections open (keep-alive) and sends pre-encoded requests back to back on each,
one at a time per connection (a closed loop: N concurrent clients), for a warm-up and then a
measured duration. It runs on asyncio's low-level protocols: no coroutine per request, no HTTP
library; a response is read by its status line and its Content-Length (or chunked encoding).
Per request it records the send and receive times (time.perf_counter_ns), the status and, when
asked, the body. Results: requests completed in the measured window, failures (non-2xx, socket
errors, timeouts), requests/s, and p50/p90/p99/max latency in ms. `batch_latency` times one large
request (e.g. a 10,000-row batch) over several repetitions and reports the median.

Used by scripts/bench_serve.py and scripts/swap_under_load.py; on its own:

    python scripts/loadgen.py --selftest            # its own ceiling against a trivial server
    python scripts/loadgen.py http://127.0.0.1:8080/predict --body req.json -c 10 -d 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

NS_PER_MS = 1_000_000


class LoadgenError(Exception):
    """A mistake in how the load generator was called, or a server it cannot reach."""


# --------------------------------------------------------------------------- requests


def post(host: str, port: int, path: str, body: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one keep-alive POST request."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode("latin-1") + body


def get(host: str, port: int, path: str) -> bytes:
    """The bytes of one keep-alive GET request."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("latin-1")


def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an http:// URL; LoadgenError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LoadgenError(f"not an http:// URL: {url!r} (hint: http://127.0.0.1:8080/predict)")
    return parts.hostname, parts.port or 80, parts.path or "/"


# --------------------------------------------------------------------------- results


@dataclass
class Sample:
    """One request: which connection sent it, when (ns, perf_counter), the status and the body."""

    conn: int
    sent_ns: int
    done_ns: int
    status: int                    # 0: a socket error or a timeout (see Result.failure_kinds)
    body: bytes | None = None


@dataclass
class Result:
    connections: int
    seconds: float                 # the measured window
    requests: int                  # completed in the window (any status)
    failures: int                  # non-2xx responses + socket errors + timeouts in the window
    failure_kinds: Counter[str]
    latencies_ms: list[float]      # of the successful requests, sorted
    samples: list[Sample] = field(default_factory=list)   # every request, when kept

    @property
    def rps(self) -> float:
        return (self.requests - self.failures) / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        """The q-th percentile (0-100, nearest rank) of the successful requests' latency, ms."""
        lat = self.latencies_ms
        if not lat:
            return float("nan")
        rank = max(1, min(len(lat), int(-(-q * len(lat) // 100))))
        return lat[rank - 1]

    p50 = property(lambda self: self.pct(50))
    p90 = property(lambda self: self.pct(90))
    p99 = property(lambda self: self.pct(99))

    @property
    def max_ms(self) -> float:
        return self.latencies_ms[-1] if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, object]:
        return {"connections": self.connections, "seconds": round(self.seconds, 3), "requests": self.requests,
                "failures": self.failures, "failure_kinds": dict(self.failure_kinds), "rps": round(self.rps, 1),
                "p50_ms": round(self.p50, 3), "p90_ms": round(self.p90, 3), "p99_ms": round(self.p99, 3),
                "max_ms": round(self.max_ms, 3)}

    def line(self) -> str:
        kinds = f" ({', '.join(f'{k}: {v}' for k, v in self.failure_kinds.items())})" if self.failures else ""
        return (f"{self.connections:3d} conn  {self.requests:8d} req  {self.failures} failed{kinds}  "
                f"{self.rps:9.1f} req/s  p50 {self.p50:7.2f}  p90 {self.p90:7.2f}  p99 {self.p99:7.2f}  "
                f"max {self.max_ms:8.2f} ms")


# --------------------------------------------------------------------------- the engine


def _chunked(buf: bytearray) -> tuple[bytes, int] | None:
    """A complete chunked body at the start of buf: (body, bytes consumed), or None if incomplete."""
    pos, body = 0, bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        start = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)    # trailers (usually none) end with an empty line
            return (bytes(body), end + 4) if end >= 0 else None
        if len(buf) < start + size + 2:
            return None
        body += buf[start:start + size]
        pos = start + size + 2


class _Conn(asyncio.Protocol):
    """One client: sends a request, waits for its response, sends the next."""

    def __init__(self, run: _Run, ident: int, offset: int) -> None:
        self.run, self.ident, self.index = run, ident, offset
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.sent_ns = 0                 # 0: nothing in flight
        self.status = 0
        self.need: int | None = None     # body bytes expected (-1: chunked); None: reading the head
        self.close_after = False
        self.lost: asyncio.Future[None] = run.loop.create_future()

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sent_ns:
            self.run.fail(self, "connection reset" if exc else "connection closed")
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.sent_ns:
            return                       # stray bytes after a timeout; the connection is being dropped
        if self.need is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            try:
                self.status = int(head[9:12])
            except ValueError:
                self.run.fail(self, "bad status line")
                self.drop()
                return
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                eol = head.find(b"\r\n", i + 2)
                self.need = int(head[i + 17:eol if eol >= 0 else len(head)])
            elif b"\r\ntransfer-encoding: chunked" in head:
                self.need = -1
            else:
                self.need = 0            # 204/304, or a body until close (not used by the servers here)
            self.close_after = b"\r\nconnection: close" in head
            del buf[:end + 4]
        if self.need == -1:
            parsed = _chunked(buf)
            if parsed is None:
                return
            body, used = parsed
        else:
            if len(buf) < self.need:
                return
            used = self.need
            body = bytes(buf[:used]) if self.run.keep_bodies else b""
        del buf[:used]
        self.need = None
        self.run.done(self, self.status, body if self.run.keep_bodies else None)
        if self.close_after:
            self.drop()
        else:
            self.send()

    # ours
    def send(self) -> None:
        run = self.run
        if self.transport is None:
            return
        if run.stopping:
            self.drop()
            return
        req = run.requests[self.index % len(run.requests)]
        self.index += 1
        self.sent_ns = time.perf_counter_ns()
        run.started += 1
        self.transport.write(req)

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _Run:
    def __init__(self, loop: asyncio.AbstractEventLoop, requests: Sequence[bytes], keep_bodies: bool,
                 max_requests: int | None) -> None:
        if not requests:
            raise LoadgenError("no requests to send")
        self.loop, self.requests, self.keep_bodies, self.max_requests = loop, list(requests), keep_bodies, max_requests
        self.stopping = False
        self.started = 0
        self.completed = 0
        self.samples: list[Sample] = []
        self.errors: list[tuple[int, str]] = []      # (time ns, kind) of failures without a response
        self.finished: asyncio.Future[None] = loop.create_future()

    def done(self, conn: _Conn, status: int, body: bytes | None) -> None:
        self.samples.append(Sample(conn.ident, conn.sent_ns, time.perf_counter_ns(), status, body))
        conn.sent_ns = 0
        self.completed += 1
        if self.max_requests is not None and self.completed >= self.max_requests:
            self.stopping = True
            if not self.finished.done():
                self.finished.set_result(None)

    def fail(self, conn: _Conn, kind: str) -> None:
        now = time.perf_counter_ns()
        self.samples.append(Sample(conn.ident, conn.sent_ns, now, 0, None))
        conn.sent_ns = 0
        self.error(kind, now)

    def error(self, kind: str, now: int | None = None) -> None:
        self.errors.append((now or time.perf_counter_ns(), kind))
        if self.max_requests is not None:     # a fixed series of requests stops at its first failure
            self.stopping = True
            if not self.finished.done():
                self.finished.set_result(None)


async def _client(run: _Run, host: str, port: int, ident: int, offset: int, timeout: float) -> None:
    """Keeps one connection going until the run stops; reconnects after errors."""
    loop = run.loop
    while not run.stopping:
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(functools.partial(_Conn, run, ident, offset), host, port), timeout)
        except (OSError, TimeoutError) as exc:
            run.error(f"connect: {type(exc).__name__}")
            await asyncio.sleep(0.05)
            continue
        # watchdog: a request older than `timeout` is a failure and its connection is dropped
        while not conn.lost.done():
            await asyncio.wait([conn.lost], timeout=min(0.25, timeout))
            if conn.sent_ns and time.perf_counter_ns() - conn.sent_ns > timeout * 1e9:
                run.fail(conn, "timeout")
                conn.drop()
        offset = conn.index


async def _drive(host: str, port: int, requests: Sequence[bytes], connections: int, warmup: float,
                 duration: float | None, max_requests: int | None, keep_bodies: bool,
                 timeout: float, keep_going: Callable[[], bool] | None = None) -> tuple[_Run, int, int]:
    loop = asyncio.get_running_loop()
    run = _Run(loop, requests, keep_bodies, max_requests)
    step = max(1, len(requests) // max(1, connections))
    begin = time.perf_counter_ns()
    tasks = [loop.create_task(_client(run, host, port, i, i * step, timeout)) for i in range(connections)]
    try:
        if duration is None:
            await asyncio.wait([run.finished], timeout=timeout * (max_requests or 1))
            end = time.perf_counter_ns()
        else:
            await asyncio.sleep(warmup + duration)
            while keep_going is not None and keep_going():
                await asyncio.sleep(0.1)
            end = time.perf_counter_ns()
        run.stopping = True
        _, pending = await asyncio.wait(tasks, timeout=timeout + 1)
        for t in pending:
            t.cancel()
    finally:
        run.stopping = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return run, begin + int(warmup * 1e9), end


def run_load(url: str, requests: Sequence[bytes], *, connections: int = 1, duration: float = 10.0,
             warmup: float = 2.0, keep_bodies: bool = False, timeout: float = 30.0,
             keep_going: Callable[[], bool] | None = None) -> Result:
    """N keep-alive clients sending `requests` (cycled) for warmup + duration seconds (and then
    for as long as `keep_going()` says so, checked every 0.1 s, when given).

    Counts what completed inside the measured window (after the warm-up). `requests` are full
    request bytes (see `post`); `url` gives the host and port to connect to.
    """
    host, port, _ = split_url(url)
    run, t0, t1 = asyncio.run(_drive(host, port, requests, connections, warmup, duration, None, keep_bodies,
                                     timeout, keep_going))
    return _result(run, connections, t0, t1)


def _result(run: _Run, connections: int, t0: int, t1: int) -> Result:
    window = [s for s in run.samples if t0 <= s.done_ns <= t1]
    kinds = Counter(kind for t, kind in run.errors if t0 <= t <= t1)
    kinds.update(f"HTTP {s.status}" for s in window if s.status and not 200 <= s.status < 300)
    refused = sum(v for k, v in kinds.items() if k.startswith("connect"))    # no request went out: no sample
    lat = sorted((s.done_ns - s.sent_ns) / NS_PER_MS for s in window if 200 <= s.status < 300)
    failures = sum(1 for s in window if not 200 <= s.status < 300) + refused
    return Result(connections, (t1 - t0) / 1e9, len(window) + refused, failures, kinds, lat,
                  run.samples if run.keep_bodies else [])


@dataclass
class BatchResult:
    median_ms: float
    all_ms: list[float]
    status: int                    # the last response's status
    body: bytes                    # the last response's body


def batch_latency(url: str, request: bytes, *, repeats: int = 5, warmup: int = 1, timeout: float = 120.0) -> BatchResult:
    """One large request sent `warmup + repeats` times in a row on one connection; the median of the repeats."""
    host, port, _ = split_url(url)
    run, _, _ = asyncio.run(_drive(host, port, [request], 1, 0.0, None, warmup + repeats, True, timeout))
    responses = [s for s in run.samples if s.status]
    if run.errors or len(responses) < warmup + repeats:
        kinds = ", ".join(sorted({k for _, k in run.errors})) or "no response"
        raise LoadgenError(f"the batch request to {url} failed: {kinds}")
    timed = [(s.done_ns - s.sent_ns) / NS_PER_MS for s in responses[warmup:]]
    last = responses[-1]
    return BatchResult(statistics.median(timed), timed, last.status, last.body or b"")


def request_once(url: str, request: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """Sends one request and returns (status, body); LoadgenError when the server does not answer."""
    res = batch_latency(url, request, repeats=1, warmup=0, timeout=timeout)
    return res.status, res.body


# --------------------------------------------------------------------------- self-test


_CANNED_BODY = b'{"predictions": [4.384844226727355], "model": "taxifare", "version": "1"}'
_CANNED = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
           + str(len(_CANNED_BODY)).encode() + b"\r\n\r\n" + _CANNED_BODY)


class _Trivial(asyncio.Protocol):
    """A trivial HTTP/1.1 responder: reads a request (head + Content-Length body), answers a canned JSON."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t, self.buf = transport, bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            i = head.find(b"\r\ncontent-length:")
            n = int(head[i + 17:head.find(b"\r\n", i + 2) if head.find(b"\r\n", i + 2) >= 0 else len(head)]) if i >= 0 else 0
            if len(self.buf) < end + 4 + n:
                return
            del self.buf[:end + 4 + n]
            self.t.write(_CANNED)


def _serve_trivial(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Trivial, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (free now; the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise LoadgenError(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s")


def selftest(duration: float = 5.0) -> list[Result]:
    """The generator's own ceiling: a trivial server in another process (the other core)."""
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve_trivial, args=(port,), daemon=True)
    proc.start()
    try:
        wait_listening(port)
        url = f"http://127.0.0.1:{port}/predict"
        body = (b'{"records": [{"pickup_datetime": "2014-12-22T19:06:34", "pickup_longitude": -74.00753248324247, '
                b'"pickup_latitude": 40.70518586120298, "dropoff_longitude": -74.01083089482457, '
                b'"dropoff_latitude": 40.7060804756772, "passenger_count": 1}]}')
        reqs = [post("127.0.0.1", port, "/predict", body)]
        return [run_load(url, reqs, connections=c, duration=duration, warmup=1.0) for c in (1, 10)]
    finally:
        proc.terminate()
        proc.join(5)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Example: loadgen.py --selftest; "
                                            "loadgen.py http://127.0.0.1:8080/predict --body req.json -c 10")
    parser.add_argument("url", nargs="?", help="http://HOST:PORT/PATH to POST to (or GET without --body)")
    parser.add_argument("--body", type=Path, help="file holding the request body (sent as is)")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("-c", "--connections", type=int, default=10, help="concurrent clients (default 10)")
    parser.add_argument("-d", "--duration", type=float, default=None,
                        help="measured seconds (default 10; 5 each with --selftest)")
    parser.add_argument("-w", "--warmup", type=float, default=2.0, help="warm-up seconds, not counted (default 2)")
    parser.add_argument("--selftest", action="store_true",
                        help="measure the generator's own ceiling against a trivial server in another process")
    args = parser.parse_args(argv)
    try:
        if args.selftest:
            seconds = args.duration or 5.0
            print(f"load generator ceiling (trivial server in another process, {seconds:.0f} s each):")
            for r in selftest(seconds):
                print("  " + r.line())
            return 0
        if not args.url:
            parser.error("give a URL, or --selftest")
        args.duration = args.duration or 10.0
        if args.connections < 1 or args.duration <= 0 or args.warmup < 0:
            parser.error("--connections must be >= 1, --duration > 0 and --warmup >= 0")
        host, port, path = split_url(args.url)
        if args.body:
            try:
                data = args.body.read_bytes()
            except OSError as exc:
                raise LoadgenError(f"cannot read --body {args.body}: {exc.strerror}") from None
            reqs = [post(host, port, path, data, args.content_type)]
        else:
            reqs = [get(host, port, path)]
        print(run_load(args.url, reqs, connections=args.connections, duration=args.duration,
                       warmup=args.warmup).line())
        return 0
    except LoadgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
