"""Where a cycle's memory goes, phase by phase (not a test; prints one line a phase).

Runs a cycle's in-memory path on an existing workspace -- fetch, validate, prepare (split), the
challenger's fit (features + LightGBM), scoring on the held-out rows, the history rows drift
compares with -- in this process, and prints per phase its seconds and the process's resident
memory before it, at its peak (sampled every 10 ms) and after it. Nothing is versioned or
registered; the stage outputs are written as a cycle writes them.

Run on a workspace ``scripts/bench_scale.py --keep DIR`` made (PYTHONPATH picks the tree):

    .venv/bin/python scripts/bench_phases.py DIR/rows-1500000 2015-03
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def rss_gib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 2**20
    return 0.0


class Peak:
    """The highest resident memory seen since :meth:`reset`, sampled in a thread."""

    def __init__(self) -> None:
        self.value = rss_gib()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.value = max(self.value, rss_gib())
            time.sleep(0.01)

    def reset(self) -> None:
        self.value = rss_gib()


def main() -> None:
    from modelcycle.config import Window, Workspace
    from modelcycle.lifecycle import driftcheck, stages
    from modelcycle.sources import build_source

    root, label = sys.argv[1], sys.argv[2]
    ws, window = Workspace.load(root), Window.parse(label)
    source = build_source(ws.config, ws.root)
    stages.warm_up(ws)
    peak = Peak()
    print(f"{'phase':12} {'s':>6} {'GiB before':>10} {'peak':>6} {'after':>6} {'peak - before':>13}")

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        gc.collect()
        peak.reset()
        before, started = rss_gib(), time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - started
        time.sleep(0.05)
        print(f"{name:12} {seconds:6.1f} {before:10.2f} {peak.value:6.2f} {rss_gib():6.2f} {peak.value - before:13.2f}",
              flush=True)
        return out

    with stages.BackgroundWrites() as writes:
        raw = phase("fetch", lambda: stages.fetch(ws, source, window, writes=writes))
        writes.wait()
        clean, _report = phase("validate", lambda: stages.validate(ws, raw, window, writes))
        writes.wait()
        split = phase("prepare", lambda: stages.prepare(ws, clean, window, writes))
        writes.wait()
        raw = None  # the cycle keeps the window's fetched rows only
        trainer, spec = stages.trainer(ws), stages.train_spec(ws)
        trained = phase("fit", lambda: trainer.fit(split.train, spec))
        phase("score", lambda: stages.evaluate_trained(ws, trained, split.holdout))
        phase("drift rows", lambda: driftcheck.cycle_reference(ws, source, _previous(window), window, clean))
    print(f"rows: {len(clean):,} clean, {len(split.train):,} train, {len(split.holdout):,} held out")


def _previous(window: Any) -> Any:
    """A champion of the month before (drift then compares with this cycle's history rows)."""
    from datetime import timedelta

    from modelcycle.registry.base import ModelVersion

    month = (window.start - timedelta(days=1)).strftime("%Y-%m")
    return ModelVersion(name="bench", version="1", source="", tags={"window": month})


if __name__ == "__main__":
    main()
