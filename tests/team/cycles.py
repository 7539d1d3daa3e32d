"""The same cycles on the embedded defaults and on a team's servers: a small table workspace
(house sales in a CSV, `modelcycle init --source`), its cycles run by the `modelcycle` command in
its own process, as a user's terminal runs them. Used by the tests of this folder and by
``scripts/bench_team.py``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.team.servers import BUCKET, TeamServers

WINDOWS = ("2023-12", "2024-01", "2024-02")  # the months of `sales()` a cycle can evaluate
MODEL = "prices"
DVC_PREFIX = "dvc"  # the DVC remote's folder in the bucket


@dataclass
class Cycle:
    window: str
    seconds: float
    decision: dict  # the cycle's line in .modelcycle/notifications.log


def exe(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def environment(team: TeamServers | None) -> dict[str, str]:
    """This process's environment without any backend a test session set (Prefect, MLflow, a DVC
    remote): the workspace's modelcycle.yaml alone says where things go; plus, for a team, the
    S3 endpoint and keys a client of the servers needs."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY", "MODELCYCLE_", "AWS_"))}
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true",
                "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "COLUMNS": "200"})
    if team is not None:
        env.update(team.client_env())
    return env


def team_urls(team: TeamServers, prefix: str = DVC_PREFIX) -> dict[str, str]:
    """The team's servers as the ``backends:`` keys that name them: URLs only."""
    return {"mlflow_tracking_uri": team.mlflow_url, "prefect_api_url": team.prefect_api_url,
            "dvc_remote": f"s3://{BUCKET}/{prefix}"}


def change_urls(text: str, urls: dict[str, str]) -> str:
    """modelcycle.yaml ``text`` with only the values of ``urls``' keys in ``backends:`` changed,
    as a user edits them (every other line, ``mlflow_artifacts`` included, as `init` wrote it)."""
    for key, url in urls.items():
        text, n = re.subn(rf"(?m)^(  {key}:) .*$", rf"\g<1> {url}", text)
        assert n == 1, f"backends.{key} is not in modelcycle.yaml once:\n{text}"
    return text


def make_workspace(folder: Path, team: TeamServers | None, name: str = MODEL, prefix: str = DVC_PREFIX) -> Path:
    """``folder/<name>``, a workspace of the house sales in ``folder/data``; for a team, its
    ``backends:`` name the team's servers (the DVC remote ``s3://<bucket>/<prefix>``): only the
    URLs `init` wrote are changed."""
    from tests.integration.helpers import sales

    data = folder / "data"
    data.mkdir(parents=True)
    sales().to_csv(data / "sales.csv", index=False)
    env = environment(team)
    done = subprocess.run([exe("modelcycle"), "init", name, "--source", "data/*.csv", "--timestamp", "sold_at",
                           "--target", "price", "--threshold", "25000"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    root = folder / name
    if team is not None:
        config = root / "modelcycle.yaml"
        config.write_text(change_urls(config.read_text(), team_urls(team, prefix)))
    return root


def run_cycle(root: Path, window: str, team: TeamServers | None) -> Cycle:
    """`modelcycle run --window` in its own process; its wall time and its decision."""
    t0 = time.monotonic()
    done = subprocess.run([exe("modelcycle"), "-w", str(root), "run", "--window", window], env=environment(team),
                          capture_output=True, text=True, timeout=600, start_new_session=True)
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    decision = json.loads((root / ".modelcycle/notifications.log").read_text().splitlines()[-1])
    assert decision["window"] == window, decision
    return Cycle(window, seconds, decision)
