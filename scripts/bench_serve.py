"""Benchmark of `modelcycle serve` against `mlflow models serve` (not a test; prints figures and goals).

Both servers serve the same champion of the same workspace on loopback and get the same
requests from one load generator (scripts/loadgen.py): one-row requests cycling over 1,000
different real rows of the workspace's source, at 1 and 10 concurrent keep-alive clients for
`--duration` seconds each (after a warm-up), then one 10,000-row batch timed over several
repetitions (median). The servers take turns (`--rounds 2`: modelcycle, mlflow, modelcycle,
mlflow), each started afresh on a free 127.0.0.1 port and stopped after its turn, so a drift of
the machine affects both alike.

The request bodies are `{"dataframe_records": [...]}` for both (the same bytes; MLflow's format,
which `modelcycle serve` also accepts); `--modelcycle-body records` sends modelcycle its own
`{"records": [...]}` instead. MLflow runs as its CLI starts it (`--env-manager local`, one
uvicorn worker).

Goals (issue 9, 2 cores): >= 5x the throughput of `mlflow models serve` at 10 clients; p99 <= 10 ms
for one-row requests; a 10,000-row batch in <= 100 ms.

Run: .venv/bin/python scripts/bench_serve.py [--workspace DIR] [--only mlflow] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loadgen

GOAL_RATIO = 5.0
GOAL_P99_MS = 10.0
GOAL_BATCH_MS = 100.0
FIRST_WINDOW = "2014-12"
BIN = Path(sys.executable).parent


class BenchError(Exception):
    """Something the benchmark cannot go on without; the message says what and what to do."""


def interruptible() -> None:
    """SIGTERM (and SIGINT, even where it was ignored) ends the script like Ctrl-C does, so every
    server it started is stopped."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)    # also when started in the background


def sh(args: list[str], *, what: str, cwd: Path | None = None, env: dict[str, str] | None = None,
       timeout: float = 600) -> str:
    """Runs a command; BenchError with the tail of its output when it fails."""
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise BenchError(f"{what}: {args[0]} not found (run this script with the project's .venv/bin/python)") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: `{' '.join(args)}` did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise BenchError(f"{what} failed (exit {proc.returncode}): `{' '.join(args)}`\n  " + "\n  ".join(tail))
    return proc.stdout


def quiet_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true",
           "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "160",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}   # mlflow runs `uvicorn` by name
    env.update(extra)
    return env


# --------------------------------------------------------------------------- the workspace


@dataclass
class Workspace:
    root: Path
    name: str
    tracking_uri: str
    registry_uri: str

    def modelcycle(self, *args: str, what: str, timeout: float = 600) -> str:
        return sh([str(BIN / "modelcycle"), "-w", str(self.root), *args], what=what, env=quiet_env(),
                  timeout=timeout)

    def alias(self, alias: str = "champion") -> str | None:
        """The version an alias points at now (None: unset)."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        try:
            return str(client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None


def open_workspace(root: Path) -> Workspace:
    from modelcycle.config import Workspace as MCWorkspace
    from modelcycle.errors import ModelcycleError

    try:
        ws = MCWorkspace.load(root)
    except ModelcycleError as exc:
        raise BenchError(f"{root} is not a usable workspace: {exc}") from None
    return Workspace(ws.root, ws.config.name, ws.tracking_uri, ws.registry_uri)


def build_workspace(root: Path, windows: list[str]) -> Workspace:
    """`modelcycle init --example taxifare` and one cycle per window (the first makes the champion)."""
    print(f"building a demo workspace in {root}: init + {len(windows)} cycle(s) ({', '.join(windows)})", flush=True)
    started = time.perf_counter()
    sh([str(BIN / "modelcycle"), "init", str(root), "--example", "taxifare"], what="modelcycle init",
       env=quiet_env())
    ws = open_workspace(root)
    for w in windows:
        ws.modelcycle("run", "--window", w, what=f"the cycle of {w}")
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return ws


def workspace_for(path: Path | None, windows: list[str], stack: contextlib.ExitStack) -> Workspace:
    """The workspace at `path` (reused when it holds modelcycle.yaml, else built there and kept),
    or a fresh one in a temporary folder removed at the end."""
    if path is not None and (path / "modelcycle.yaml").exists():
        ws = open_workspace(path)
        print(f"reusing workspace {ws.root} (model {ws.name})", flush=True)
    else:
        if path is None:
            tmp = Path(tempfile.mkdtemp(prefix="modelcycle-bench-serve-"))
            stack.callback(shutil.rmtree, tmp, ignore_errors=True)
            path = tmp / "ws"
        elif path.exists() and any(path.iterdir()):
            raise BenchError(f"--workspace {path} is neither a workspace (no modelcycle.yaml) nor empty")
        ws = build_workspace(path.resolve(), windows)
    if ws.alias("champion") is None:
        raise BenchError(f"model {ws.name} in {ws.root} has no champion: run a cycle that promotes, "
                         f"e.g. `modelcycle -w {ws.root} run --window {FIRST_WINDOW}`")
    return ws


def pick_records(ws: Workspace, *, singles: int = 1000, batch: int = 10_000) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Real raw records from the workspace's source (the model's input columns, rows that pass
    validation): `singles` different rows for one-row requests and `batch` rows for the batch."""
    import pandas as pd

    from modelcycle.config import Window
    from modelcycle.config import Workspace as MCWorkspace
    from modelcycle.sources import build_source
    from modelcycle.steps.validate import validate

    mc = MCWorkspace.load(ws.root)
    data = mc.config.data
    source = build_source(mc.config, mc.root)
    window = Window.parse(mc.params.window) if mc.params.window else None
    if window is None:
        raise BenchError(f"no cycle has run in {ws.root} (params.yaml has no window)")
    rows = pd.DataFrame()
    for months in range(25):                            # the last cycle's window, then a month more, up to 2 years
        start = window.history_start(months)
        rows, _ = validate(source.fetch(start, window.end), data, window_start=start)
        if len(rows) >= batch:
            break
    inputs = [c for c in data.columns if c != data.target]
    rows = rows[inputs].dropna().reset_index(drop=True)
    if rows.empty:
        raise BenchError(f"the source of {ws.root} gave no valid rows for window {window.label}")
    for col in inputs:
        if pd.api.types.is_datetime64_any_dtype(rows[col]):
            rows[col] = rows[col].map(lambda t: t.isoformat())
    records = json.loads(rows.to_json(orient="records"))
    while len(records) < batch:                         # a small source: repeat its rows
        records += records[:batch - len(records)]
    step = max(1, len(records) // singles)
    return records[::step][:singles], records[-batch:]


# --------------------------------------------------------------------------- the servers


@dataclass
class Server:
    """One server process (in its own session, output to a log file), stopped by `stop()`."""

    kind: str                     # "modelcycle" | "mlflow"
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    load_seconds: float = float("nan")   # from start to a healthy answer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def predict_path(self) -> str:
        return "/predict" if self.kind == "modelcycle" else "/invocations"

    @property
    def health_path(self) -> str:
        return "/health" if self.kind == "modelcycle" else "/ping"

    def command(self, ws: Workspace) -> list[str]:
        if self.kind == "modelcycle":
            return [str(BIN / "modelcycle"), "-w", str(ws.root), "serve", "--host", "127.0.0.1",
                    "--port", str(self.port)]
        return [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{ws.name}@champion",
                "--env-manager", "local", "--host", "127.0.0.1", "--port", str(self.port)]

    def start(self, ws: Workspace, timeout: float = 180.0) -> None:
        env = quiet_env(MLFLOW_TRACKING_URI=ws.tracking_uri, MLFLOW_REGISTRY_URI=ws.registry_uri)
        started = time.perf_counter()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(ws), cwd=ws.root, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.kind}'s server exited (code {self.proc.returncode}) before it was "
                                 f"healthy; the end of its log {self.log}:\n  " + "\n  ".join(self.tail()))
            if self.healthy():
                self.load_seconds = time.perf_counter() - started
                return
            time.sleep(0.1)
        raise BenchError(f"{self.kind}'s server was not healthy after {timeout:.0f} s; its log {self.log}:\n  "
                         + "\n  ".join(self.tail()))

    def healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", self.health_path)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def tail(self, n: int = 15) -> list[str]:
        try:
            return self.log.read_text(errors="replace").strip().splitlines()[-n:]
        except OSError:
            return []

    def stop(self) -> None:
        """SIGTERM to the server's process group (its own session), SIGKILL after 15 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextlib.contextmanager
def serving(kind: str, ws: Workspace, logs: Path) -> Iterator[Server]:
    """A started, healthy server on a free 127.0.0.1 port; stopped on the way out, whatever happens."""
    server = Server(kind, loadgen.free_port(), logs / f"{kind}-{time.strftime('%H%M%S')}.log")
    try:
        server.start(ws)
        yield server
    finally:
        server.stop()


def forget_logs(logs: Path) -> None:
    """Removes the servers' logs, unless an error is on its way out that names one of them."""
    exc = sys.exc_info()[1]
    if not isinstance(exc, BenchError):
        shutil.rmtree(logs, ignore_errors=True)


def modelcycle_serves() -> bool:
    """Whether this modelcycle has a `serve` command."""
    proc = subprocess.run([str(BIN / "modelcycle"), "serve", "--help"], capture_output=True, text=True,
                          env=quiet_env())
    return proc.returncode == 0


# --------------------------------------------------------------------------- measuring


def bodies(records: list[dict[str, Any]], key: str) -> bytes:
    return json.dumps({key: records}, separators=(",", ":")).encode()


def check_answer(server: Server, status: int, body: bytes, rows: int) -> list[Any]:
    """The predictions of a response, or BenchError saying what the server answered instead."""
    if status != 200:
        raise BenchError(f"{server.kind}'s server answered HTTP {status} to a {rows}-row request: "
                         f"{body[:600].decode(errors='replace')}")
    try:
        preds = json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"{server.kind}'s server answered without a predictions list: {body[:300]!r}") from None
    if len(preds) != rows:
        raise BenchError(f"{server.kind}'s server gave {len(preds)} predictions for {rows} rows")
    return list(preds)


@dataclass
class Turn:
    server: str
    round: int
    load_seconds: float
    runs: list[dict[str, Any]] = field(default_factory=list)      # one per client count
    batch_ms: float = float("nan")
    batch_all_ms: list[float] = field(default_factory=list)
    batch_predictions: list[Any] = field(default_factory=list)


def measure(server: Server, rnd: int, singles: list[bytes], batch: bytes, batch_rows: int,
            args: argparse.Namespace) -> Turn:
    url = server.base + server.predict_path
    reqs = [loadgen.post("127.0.0.1", server.port, server.predict_path, b) for b in singles]
    check_answer(server, *loadgen.request_once(url, reqs[0]), rows=1)
    turn = Turn(server.kind, rnd, server.load_seconds)
    for clients in args.clients:
        cpu, wall = time.process_time(), time.perf_counter()
        res = loadgen.run_load(url, reqs, connections=clients, duration=args.duration, warmup=args.warmup)
        cpu_share = (time.process_time() - cpu) / (time.perf_counter() - wall)
        turn.runs.append({**res.summary(), "clients": clients, "loadgen_cpu": round(cpu_share, 2)})
        print(f"  {server.kind:10} round {rnd}  {clients:2d} clients  {res.rps:8.1f} req/s  p50 {res.p50:6.2f} ms  "
              f"p99 {res.p99:7.2f} ms  failed {res.failures}  (load generator CPU {cpu_share:.0%})", flush=True)
    big = loadgen.batch_latency(url, loadgen.post("127.0.0.1", server.port, server.predict_path, batch),
                                repeats=args.batch_repeats, warmup=1)
    turn.batch_predictions = check_answer(server, big.status, big.body, rows=batch_rows)
    turn.batch_ms, turn.batch_all_ms = big.median_ms, [round(x, 2) for x in big.all_ms]
    print(f"  {server.kind:10} round {rnd}  {batch_rows}-row batch: median {big.median_ms:.1f} ms "
          f"({', '.join(f'{x:.0f}' for x in big.all_ms)})", flush=True)
    return turn


def over_rounds(turns: list[Turn], server: str, clients: int, key: str, agg: Any = statistics.median) -> float:
    vals = [r[key] for t in turns if t.server == server for r in t.runs if r["clients"] == clients]
    return float(agg(vals)) if vals else float("nan")


def report(turns: list[Turn], args: argparse.Namespace) -> dict[str, Any]:
    servers = [s for s in ("modelcycle", "mlflow") if any(t.server == s for t in turns)]
    print("\none-row requests (median over rounds; p99: the worst round), and the 10,000-row batch (median ms)\n")
    head = f"{'server':11} {'clients':>7} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6}  {'10k-row batch ms':>16}"
    print(head)
    print("-" * len(head))
    summary: dict[str, Any] = {}
    for s in servers:
        batch = statistics.median([t.batch_ms for t in turns if t.server == s])
        summary[s] = {"batch_ms": round(batch, 2)}
        for i, c in enumerate(args.clients):
            rps, p50, p99 = over_rounds(turns, s, c, "rps"), over_rounds(turns, s, c, "p50_ms"), over_rounds(turns, s, c, "p99_ms", max)
            failed = sum(r["failures"] for t in turns if t.server == s for r in t.runs if r["clients"] == c)
            summary[s][f"{c}_clients"] = {"rps": round(rps, 1), "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                                          "failures": failed}
            print(f"{s:11} {c:7d} {rps:9.1f} {p50:7.2f} {p99:7.2f} {failed:6d}  {(f'{batch:16.1f}' if i == 0 else ''):>16}")
    print()
    ratios: dict[str, float] = {}
    if len(servers) == 2:
        for c in args.clients:
            ratios[f"{c}_clients"] = over_rounds(turns, "modelcycle", c, "rps") / over_rounds(turns, "mlflow", c, "rps")
            print(f"throughput modelcycle / mlflow at {c:2d} client(s): {ratios[f'{c}_clients']:.1f}x")
        ratios["batch"] = summary["mlflow"]["batch_ms"] / summary["modelcycle"]["batch_ms"]
        print(f"10k-row batch, mlflow time / modelcycle time: {ratios['batch']:.1f}x")
        a = next(t.batch_predictions for t in turns if t.server == "modelcycle")
        b = next(t.batch_predictions for t in turns if t.server == "mlflow")
        diff = max(abs(float(x) - float(y)) for x, y in zip(a, b, strict=True))
        print(f"same predictions for the batch: largest difference {diff:.3g}")
        summary["batch_max_abs_diff"] = diff
    goals = []
    if "modelcycle" in servers:
        top = max(args.clients)
        p99 = max(over_rounds(turns, "modelcycle", c, "p99_ms", max) for c in args.clients)
        goals = [(f">= {GOAL_RATIO:.0f}x mlflow's throughput at {top} clients",
                  ratios.get(f"{top}_clients"), lambda v: v >= GOAL_RATIO, "{:.1f}x"),
                 (f"p99 <= {GOAL_P99_MS:.0f} ms for one-row requests (worst of 1/{top} clients, all rounds)",
                  p99, lambda v: v <= GOAL_P99_MS, "{:.2f} ms"),
                 (f"10,000-row batch <= {GOAL_BATCH_MS:.0f} ms (median)",
                  summary["modelcycle"]["batch_ms"], lambda v: v <= GOAL_BATCH_MS, "{:.1f} ms")]
    out_goals = []
    if goals:
        print("\ngoals (issue 9, 2 cores):")
    for text, value, ok, fmt in goals:
        verdict = "not measured" if value is None else ("met" if ok(value) else "MISSED")
        print(f"  {text:70} {'' if value is None else fmt.format(value):>10}  {verdict}")
        out_goals.append({"goal": text, "value": value, "verdict": verdict})
    return {"summary": summary, "ratios": ratios, "goals": out_goals}


# --------------------------------------------------------------------------- main


def positive_ints(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 1,10") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("client counts must be >= 1")
    return vals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="See the module's docstring (the top of this file) for what is measured.")
    parser.add_argument("--workspace", type=Path, help="reuse this workspace (it needs a champion), or build the "
                        "demo workspace here and keep it (default: a temporary one, removed at the end)")
    parser.add_argument("--only", choices=["modelcycle", "mlflow"], help="benchmark one server only")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each server, interleaved (default 2)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each run (default 2)")
    parser.add_argument("--clients", type=positive_ints, default=[1, 10], help="client counts (default 1,10)")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="rows of the batch request (default 10000)")
    parser.add_argument("--batch-repeats", type=int, default=5, help="timed repetitions of the batch (default 5)")
    parser.add_argument("--modelcycle-body", choices=["dataframe_records", "records"], default="dataframe_records",
                        help="the JSON key of modelcycle's request bodies (mlflow always gets dataframe_records)")
    parser.add_argument("--ceiling-seconds", type=float, default=3.0,
                        help="seconds of the load generator's own ceiling check (0: skip)")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or args.batch_rows < 1 or args.batch_repeats < 1:
        parser.error("--rounds, --duration, --batch-rows and --batch-repeats must be positive, --warmup >= 0")
    interruptible()
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except loadgen.LoadgenError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    kinds = [args.only] if args.only else ["modelcycle", "mlflow"]
    if "modelcycle" in kinds and not modelcycle_serves():
        if args.only == "modelcycle":
            raise BenchError("this modelcycle has no `serve` command yet")
        print("note: this modelcycle has no `serve` command yet: measuring mlflow's server only", flush=True)
        kinds = ["mlflow"]
    ceiling = None
    if args.ceiling_seconds > 0:
        ceiling = [r.summary() for r in loadgen.selftest(args.ceiling_seconds)]
        print("load generator ceiling (trivial server): "
              + ", ".join(f"{c['connections']} client(s) {c['rps']:.0f} req/s" for c in ceiling), flush=True)
    with contextlib.ExitStack() as stack:
        ws = workspace_for(args.workspace, [FIRST_WINDOW], stack)
        singles, batch = pick_records(ws, batch=args.batch_rows)
        print(f"requests: {len(singles)} different one-row bodies, one {len(batch)}-row batch "
              f"({len(bodies(batch, 'dataframe_records')) / 1e6:.1f} MB); champion v{ws.alias('champion')}", flush=True)
        body_of = {k: ([bodies([r], key) for r in singles], bodies(batch, key))
                   for k, key in (("mlflow", "dataframe_records"), ("modelcycle", args.modelcycle_body))}
        logs = Path(tempfile.mkdtemp(prefix="modelcycle-bench-logs-"))
        stack.callback(forget_logs, logs)
        turns: list[Turn] = []
        for rnd in range(1, args.rounds + 1):
            for kind in kinds:
                with serving(kind, ws, logs) as server:
                    print(f"{kind}: healthy after {server.load_seconds:.1f} s on {server.base}", flush=True)
                    turns.append(measure(server, rnd, *body_of[kind], len(batch), args))
        result = report(turns, args)
    if args.json:
        import mlflow

        payload = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                               "platform": platform.platform(), "mlflow": mlflow.__version__},
                   "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "loadgen_ceiling": ceiling,
                   "turns": [{k: v for k, v in t.__dict__.items() if k != "batch_predictions"} for t in turns],
                   **result}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
