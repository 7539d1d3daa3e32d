"""What a team's servers cost a cycle beside the embedded defaults, side by side in one run.

Two workspaces of the same house sales (`modelcycle init --source`): one on the embedded
defaults (SQLite MLflow, a Prefect server per command, a DVC remote folder), one on a team's
servers on loopback (PostgreSQL 15, `mlflow server` serving artifacts from S3, `prefect server`
on PostgreSQL, moto's S3 server), changed only in modelcycle.yaml's ``backends:`` URLs. The
servers and workspaces are those of the tests (``tests/team/servers.py``, ``tests/team/cycles.py``).
Each window runs as `modelcycle run --window W` (a new process, as a user types it), on the
embedded workspace then on the team's, so the machine's speed drifts alike on both.

    python scripts/bench_team.py [--windows 2023-12 2024-01 2024-02]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.team.cycles import WINDOWS, make_workspace, run_cycle
from tests.team.servers import TeamServers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", nargs="+", default=list(WINDOWS))
    args = parser.parse_args()

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp, TeamServers() as team:
        started = time.monotonic() - t0
        embedded = make_workspace(Path(tmp) / "embedded", None)
        teamed = make_workspace(Path(tmp) / "team", team)
        print(f"servers up in {started:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in team.timings.items())})")
        print(f"{'window':<9}{'decision':<10}{'embedded s':>11}{'team s':>9}{'team - embedded':>17}")
        total = [0.0, 0.0]
        for window in args.windows:
            a = run_cycle(embedded, window, None)
            b = run_cycle(teamed, window, team)
            assert a.decision["outcome"] == b.decision["outcome"], (a.decision, b.decision)
            total[0] += a.seconds
            total[1] += b.seconds
            print(f"{window:<9}{b.decision['outcome']:<10}{a.seconds:>11.2f}{b.seconds:>9.2f}"
                  f"{b.seconds - a.seconds:>+17.2f}", flush=True)
        n = len(args.windows)
        print(f"{'mean':<19}{total[0] / n:>11.2f}{total[1] / n:>9.2f}{(total[1] - total[0]) / n:>+17.2f}")
    print(f"servers stopped ({', '.join(f'{k} {v:.1f} s' for k, v in team.timings.items() if k.startswith('stop'))})")


if __name__ == "__main__":
    main()
