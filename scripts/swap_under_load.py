"""Swap under load: `modelcycle serve` follows the champion while clients keep asking (not a test).

It serves a workspace's champion (v_c) with `modelcycle serve` on a free 127.0.0.1 port and
drives it with `--clients` concurrent keep-alive clients (scripts/loadgen.py; one-row requests
cycling over real rows of the source). During the load it promotes two other registered
versions (v_a, then v_b) and rolls back once (`modelcycle rollback`, back to v_a; a promote of
v_a where this modelcycle has no rollback): the first move `--every` seconds after the start,
each next one `--every` seconds after the previous command finished; the load lasts at least
`--duration` seconds and until `--every` seconds after the last move. Then it prints:

- requests served and failed (goal: 0 failed);
- the version of the responses over time, as runs of the same version in the order they
  completed: they must follow v_c -> v_a -> v_b -> v_a, changing at the moves only;
- "back and forth": responses carrying an older version although the request was sent after
  the newer version had already answered, and each client's versions in the order it sent
  them (each must only move forward along the sequence) (goal: none);
- for each move, the time from the command's completion (and from the moment the alias changed
  in the registry, when it is SQLite) to the first response carrying the new version.

The workspace: `--workspace DIR` reuses one (cycles are run for the next windows until the
model has at least three versions), else the demo's is built in a temporary folder (init and
three monthly cycles; about a minute).

Run: .venv/bin/python scripts/swap_under_load.py [--workspace DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loadgen
from bench_serve import (
    BIN,
    FIRST_WINDOW,
    BenchError,
    Workspace,
    bodies,
    check_answer,
    forget_logs,
    interruptible,
    modelcycle_serves,
    pick_records,
    quiet_env,
    serving,
    workspace_for,
)


@dataclass
class Move:
    what: str                     # "promote" | "rollback"
    to: str                       # the version the champion should point at afterwards
    started_ns: int = 0
    done_ns: int = 0
    ok: bool = False
    output: str = ""


@dataclass
class Watch:
    """Polls the champion alias in the registry's SQLite file (cheap: one indexed read) to time
    each move at the registry, independently of the command that made it."""

    db: Path
    name: str
    changes: list[tuple[int, str]] = field(default_factory=list)     # (perf_counter_ns, version)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=0.2, check_same_thread=False)
        last = None
        try:
            while not self.stop.wait(0.05):
                try:
                    row = conn.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                       (self.name, "champion")).fetchone()
                except sqlite3.Error:
                    continue                       # locked by a writer for a moment
                version = str(row[0]) if row else None
                if version != last and version is not None:
                    self.changes.append((time.perf_counter_ns(), version))
                last = version
        finally:
            conn.close()


def versions_of(ws: Workspace) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=ws.tracking_uri, registry_uri=ws.registry_uri)
    return sorted((str(v.version) for v in client.search_model_versions(f"name = '{ws.name}'")), key=int)


def enough_versions(ws: Workspace, wanted: int = 3) -> list[str]:
    """The model's versions, after running cycles for the next windows until there are `wanted`."""
    versions = versions_of(ws)
    for _ in range(wanted):
        if len(versions) >= wanted:
            break
        print(f"model {ws.name} has {len(versions)} version(s); running the next window's cycle", flush=True)
        ws.modelcycle("run", what="a cycle for the next window")
        versions = versions_of(ws)
    if len(versions) < wanted:
        raise BenchError(f"model {ws.name} has {len(versions)} versions after running cycles; "
                         f"{wanted} are needed (hint: `modelcycle -w {ws.root} run --window NEXT-MONTH`)")
    return versions


def mover(ws: Workspace, moves: list[Move], every: float, has_rollback: bool, abort: threading.Event,
          finished: threading.Event) -> None:
    """Makes the moves one after the other, each `every` seconds after the previous one completed
    (the first `every` seconds after the start); sets `finished` `every` seconds after the last."""
    for move in moves:
        if abort.wait(every):
            return
        if move.what == "rollback" and has_rollback:
            cmd = ["rollback", "--reason", "swap-under-load test"]
        else:
            cmd = ["promote", "--version", move.to, "--reason", "swap-under-load test"]
        move.started_ns = time.perf_counter_ns()
        proc = subprocess.run([str(BIN / "modelcycle"), "-w", str(ws.root), *cmd], capture_output=True, text=True,
                              env=quiet_env(), timeout=120)
        move.done_ns = time.perf_counter_ns()
        move.ok = proc.returncode == 0
        move.output = (proc.stdout + proc.stderr).strip()
    if not abort.wait(every):
        finished.set()


def analyse(samples: list[loadgen.Sample], expected: list[str], move_starts: list[int], t0: int) -> dict[str, Any]:
    """Versions over time, the switches, and anything going back and forth.

    The k-th switch is the first response carrying expected[k + 1] that completes after the k-th
    move started (`move_starts`, perf_counter ns; 0 for a move never made): before it, no server
    could know the new version, so an earlier such answer counts as back and forth.
    """
    def forward(k: int, v: str, done_ns: int) -> int | None:
        """The next position along `expected` that holds v and that the moves allow by done_ns."""
        for j in range(k + 1, len(expected)):
            if j - 1 >= len(move_starts) or not 0 < move_starts[j - 1] <= done_ns:
                return None
            if expected[j] == v:
                return j
        return None

    ok, failed = [], []
    for s in samples:
        if s.status == 200 and s.body is not None:
            ok.append((s, str(json.loads(s.body)["version"])))
        else:
            failed.append(s)
    ok.sort(key=lambda x: x[0].done_ns)
    # the switches along the expected sequence; late old answers of requests sent before a switch are in flight
    k, since, in_flight, back = 0, 0, 0, []
    switches: dict[int, int] = {}                   # position in expected -> its first answer (ns)
    settled = []                                   # the responses that are not such late old answers
    for s, v in ok:
        j = forward(k, v, s.done_ns) if v != expected[k] else None
        if v == expected[k]:
            settled.append((s, v))
        elif j is not None:
            k, since = j, s.done_ns
            switches[j] = s.done_ns
            settled.append((s, v))
        elif s.sent_ns < since and v in expected[:k]:
            in_flight += 1
        else:
            settled.append((s, v))
            back.append({"version": v, "sent_s": (s.sent_ns - t0) / 1e9, "done_s": (s.done_ns - t0) / 1e9,
                         "expected": expected[k]})
    # runs of the same version in completion order
    runs: list[dict[str, Any]] = []
    for s, v in settled:
        if runs and runs[-1]["version"] == v:
            runs[-1]["to_s"] = (s.done_ns - t0) / 1e9
            runs[-1]["responses"] += 1
        else:
            runs.append({"version": v, "from_s": (s.done_ns - t0) / 1e9, "to_s": (s.done_ns - t0) / 1e9, "responses": 1})
    # each client, in the order it sent its requests: only forward along the sequence (it may skip a version)
    per_client_back = 0
    position: dict[int, int] = {}
    for s, v in sorted(ok, key=lambda x: x[0].sent_ns):
        j = position.get(s.conn, 0)
        if v == expected[j]:
            continue
        nxt = forward(j, v, s.done_ns)
        if nxt is None:
            per_client_back += 1
        else:
            position[s.conn] = nxt
    kinds: dict[str, int] = {}
    for s in failed:
        key = f"HTTP {s.status}" if s.status else "socket error or timeout"
        kinds[key] = kinds.get(key, 0) + 1
    return {"served": len(ok), "failed": len(failed), "failure_kinds": kinds, "runs": runs, "switches_ns": switches,
            "in_flight_old": in_flight, "back_and_forth": back, "per_client_back": per_client_back}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="See the module's docstring (the top of this file) for what is checked.")
    parser.add_argument("--workspace", type=Path, help="reuse this workspace, or build the demo workspace here and "
                        "keep it (default: a temporary one, removed at the end)")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients (default 10)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds of load at least (default 30); it goes on until --every seconds after the "
                        "last move completed")
    parser.add_argument("--every", type=float, default=8.0,
                        help="seconds from the start to the first move, between one move's completion and the "
                        "next, and after the last (default 8)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args()
    if args.clients < 1 or args.every <= 0 or args.duration <= 0:
        parser.error("--clients must be >= 1, --every and --duration > 0")
    interruptible()
    try:
        return run(args)
    except (BenchError, loadgen.LoadgenError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; the server stopped", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    import tempfile

    if not modelcycle_serves():
        raise BenchError("this modelcycle has no `serve` command yet")
    has_rollback = subprocess.run([str(BIN / "modelcycle"), "rollback", "--help"], capture_output=True,
                                  env=quiet_env()).returncode == 0
    if not has_rollback:
        print("note: this modelcycle has no `rollback` command: the third move is a promote of the previous "
              "version instead", flush=True)
    with contextlib.ExitStack() as stack:
        ws = workspace_for(args.workspace, [FIRST_WINDOW, "2015-01", "2015-02"], stack)
        versions = enough_versions(ws)
        champion = ws.alias("champion")
        assert champion is not None                      # workspace_for checked it
        a, b = [v for v in versions if v != champion][-2:]
        expected = [champion, a, b, a]
        moves = [Move("promote", a), Move("promote", b), Move("rollback", a)]
        singles, _ = pick_records(ws, batch=1000)
        logs = Path(tempfile.mkdtemp(prefix="modelcycle-swap-logs-"))
        stack.callback(forget_logs, logs)
        with serving("modelcycle", ws, logs) as server:
            print(f"modelcycle serve: healthy after {server.load_seconds:.1f} s on {server.base}, champion v{champion}; "
                  f"moves: promote v{a}, promote v{b}, {'rollback' if has_rollback else 'promote'} to v{a}", flush=True)
            url = server.base + "/predict"
            reqs = [loadgen.post("127.0.0.1", server.port, "/predict", bodies([r], "records")) for r in singles]
            check_answer(server, *loadgen.request_once(url, reqs[0]), rows=1)
            watch = None
            if ws.registry_uri.startswith("sqlite:///"):
                watch = Watch(Path(ws.registry_uri.removeprefix("sqlite:///")), ws.name)
            abort, finished = threading.Event(), threading.Event()
            t0 = time.perf_counter_ns()
            threads = [threading.Thread(target=mover, args=(ws, moves, args.every, has_rollback, abort, finished),
                                        daemon=True)]
            if watch:
                threads.append(threading.Thread(target=watch.run, daemon=True))
            for t in threads:
                t.start()
            try:
                res = loadgen.run_load(url, reqs, connections=args.clients, duration=args.duration, warmup=0,
                                       keep_bodies=True, keep_going=lambda: not finished.is_set())
            finally:
                abort.set()
                threads[0].join(130)
                if watch:
                    watch.stop.set()
                    threads[1].join(5)
        result = analyse(res.samples, expected, [m.started_ns for m in moves], t0)
        ok_run = report(result, res, moves, watch, expected, t0, has_rollback)
    if args.json:
        payload = {**{k: v for k, v in result.items() if k != "switches_ns"}, "expected": expected,
                   "rps": round(res.rps, 1), "p50_ms": res.p50, "p99_ms": res.p99, "max_ms": res.max_ms,
                   "moves": [{"what": m.what, "to": m.to, "ok": m.ok, "started_s": (m.started_ns - t0) / 1e9,
                              "done_s": (m.done_ns - t0) / 1e9} for m in moves],
                   "rollback_command": has_rollback}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if ok_run else 1


def report(result: dict[str, Any], res: loadgen.Result, moves: list[Move], watch: Watch | None,
           expected: list[str], t0: int, has_rollback: bool) -> bool:
    def s(ns: int) -> float:
        return (ns - t0) / 1e9

    print(f"\nrequests served: {result['served']}  failed: {result['failed']}"
          + (f" ({result['failure_kinds']})" if result["failed"] else "") + "   goal: 0 failed")
    print(f"{res.seconds:.1f} s of load with {res.connections} clients: throughput {res.rps:.0f} req/s, latency p50 {res.p50:.2f} ms, p99 {res.p99:.2f} ms, max {res.max_ms:.1f} ms")
    print("\nversion of the responses over time (runs in completion order, seconds after the load started;\n"
          "old-version answers to requests sent before a switch are counted apart, as in flight)")
    for r in result["runs"]:
        print(f"  v{r['version']:4} {r['from_s']:7.2f} s .. {r['to_s']:7.2f} s  {r['responses']:7d} responses")
    print(f"  expected: {' -> '.join('v' + v for v in expected)};  in flight at a switch, answered by the old "
          f"version: {result['in_flight_old']}")
    print(f"  back and forth: {len(result['back_and_forth'])} response(s) after a switch, "
          f"{result['per_client_back']} within a client's own sequence   goal: 0")
    for b in result["back_and_forth"][:5]:
        print(f"    v{b['version']} sent at {b['sent_s']:.3f} s, answered at {b['done_s']:.3f} s (expected v{b['expected']})")
    print("\nalias moves (seconds after the load started)")
    print(f"  {'move':28} {'command':>16} {'alias moved':>11} {'first answer':>12} {'after command':>13} "
          f"{'after alias':>11}")
    all_ok = True
    for i, m in enumerate(moves):
        label = f"{m.what if m.what == 'promote' or has_rollback else 'promote (for rollback)'} -> v{m.to}"
        if not m.started_ns:
            print(f"  {label:28} not made (the load ended first)")
            all_ok = False
            continue
        if not m.ok:
            print(f"  {label:28} FAILED: {m.output[-400:]}")
            all_ok = False
            continue
        seen = next((t for t, v in (watch.changes if watch else []) if t >= m.started_ns and v == m.to), None)
        first = result["switches_ns"].get(i + 1)
        cmd = f"{s(m.started_ns):6.2f}..{s(m.done_ns):6.2f}"
        print(f"  {label:28} {cmd:>16} {(f'{s(seen):.2f}' if seen else '?'):>11} "
              f"{(f'{s(first):.2f}' if first else 'never'):>12} "
              f"{(f'{(first - m.done_ns) / 1e9:+.2f} s' if first else ''):>13} "
              f"{(f'{(first - seen) / 1e9:+.2f} s' if first and seen else ''):>11}")
        all_ok = all_ok and first is not None
    print("  (a negative time after the command: the server answered with the new version before the command "
          "had finished recording and announcing the move)")
    all_ok = all_ok and result["failed"] == 0 and not result["back_and_forth"] and result["per_client_back"] == 0 \
        and [r["version"] for r in result["runs"]] == expected
    print(f"\n{'PASS' if all_ok else 'FAIL'}: no failed request, the version changed exactly at each move and never "
          f"went back")
    return all_ok


if __name__ == "__main__":
    sys.exit(main())
