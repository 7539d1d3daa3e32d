"""A workspace moved to a team's servers by URLs: the same cycles on the embedded defaults
(SQLite MLflow, a Prefect server per command, a DVC remote folder) and on a real PostgreSQL 15,
`mlflow server` serving artifacts from S3, `prefect server` on PostgreSQL and an S3 endpoint
(moto's server: the S3 protocol path only, see :mod:`tests.team.servers`), all on loopback.

The team workspace is the embedded one's twin with only the URLs of ``backends:`` changed (its
``mlflow_artifacts`` line as `init` wrote it): models go where the MLflow server says and DVC
objects to the S3 remote by those URLs alone.

One test: the servers start once (~25 s) and every check reads the same cycles; with xdist the
checks would otherwise run in several processes, each starting its own servers."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.team.cycles import DVC_PREFIX, MODEL, WINDOWS, make_workspace, run_cycle
from tests.team.servers import AWS_KEYS, BUCKET, TeamServers

pytestmark = pytest.mark.slow

CYCLES = WINDOWS[:2]  # a promotion, then a champion against a challenger


def s3_keys(team: TeamServers, prefix: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=team.s3_endpoint, region_name=AWS_KEYS["AWS_DEFAULT_REGION"],
                          aws_access_key_id=AWS_KEYS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS_KEYS["AWS_SECRET_ACCESS_KEY"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def prefect_flow_runs(team: TeamServers) -> list[dict]:
    request = urllib.request.Request(f"{team.prefect_api_url}/flow_runs/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def outputs(root: Path) -> dict[str, str]:
    """Each output path in the workspace's dvc.lock and its md5 (a folder's ends in .dir)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def cached(root: Path) -> set[str]:
    """The outputs DVC caches and pushes (not those with ``cache: false``, which git keeps:
    reports/ and the data manifests)."""
    found = set()
    for stage in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values():
        for out in stage.get("outs", []):
            name, opts = (next(iter(out.items())) if isinstance(out, dict) else (out, {}))
            if (opts or {}).get("cache", True):
                found.add(name)
    return found


def test_same_cycles_on_the_team_servers_by_urls(team_servers: TeamServers, tmp_path: Path):
    team = team_servers
    local_ws = make_workspace(tmp_path / "embedded", None)
    team_ws = make_workspace(tmp_path / "team", team)
    local = [run_cycle(local_ws, w, None) for w in CYCLES]  # while MLflow and Prefect start
    team.ready()
    remote = [run_cycle(team_ws, w, team) for w in CYCLES]

    # the same decisions and scores: only where things are kept changed
    for a, b in zip(local, remote, strict=True):
        for key in ("outcome", "version", "champion"):
            assert a.decision[key] == b.decision[key], (a.window, key, a.decision, b.decision)
        for key in ("champion_score", "challenger_score", "ci_low", "ci_high"):
            expected = a.decision[key]
            assert b.decision[key] == (expected if expected is None else pytest.approx(expected, rel=1e-9)), \
                (a.window, key, a.decision, b.decision)
    assert [c.decision["outcome"] for c in remote] == ["promote", "keep"]

    # Prefect: the team server ran every cycle's flow (and the workspace started no server of its own)
    runs = {r["id"]: r for r in prefect_flow_runs(team)}
    for cycle in remote:
        run = runs.get(cycle.decision["flow_run_id"])
        assert run is not None, (cycle.window, sorted(runs))
        assert run["name"] == cycle.window and run["state_type"] == "COMPLETED", run
    assert not (team_ws / ".modelcycle/prefect/prefect.db").exists()

    # MLflow: runs and versions on the server, their artifacts in the bucket through the server
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=team.mlflow_url)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == remote[0].decision["version"]
    run = client.get_run(remote[-1].decision["run_id"])
    assert run.data.tags["modelcycle.decision"] == remote[-1].decision["outcome"]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    assert any(k.endswith("MLmodel") for k in s3_keys(team, "mlartifacts"))
    assert not any((team_ws / ".modelcycle/mlartifacts").rglob("MLmodel"))

    # DVC: the same data (same hashes) as on the embedded defaults; every object of the last
    # cycle's outputs in the bucket, none in the embedded remote folder
    local_outs, team_outs = outputs(local_ws), outputs(team_ws)
    data = {p for p in team_outs if p.startswith("data/")}
    assert len(data) >= 3 and {p: local_outs[p] for p in data} == {p: team_outs[p] for p in data}
    bucket = set(s3_keys(team, DVC_PREFIX))
    versioned = {p: h for p, h in team_outs.items() if p in cached(team_ws)}  # reports/, data/*.json: git
    assert set(versioned) == {"data/raw", "models/challenger"}
    missing = {p: h for p, h in versioned.items() if f"{DVC_PREFIX}/files/md5/{h[:2]}/{h[2:]}" not in bucket}
    assert not missing, (missing, sorted(bucket)[:20])
    assert len(bucket) > len(versioned)  # the files of the model's folder too
    assert not any(p.is_file() for p in (team_ws / ".modelcycle/dvc-remote").rglob("*"))

    # any MLflow client elsewhere loads the champion: only the tracking URI and the S3 settings
    from tests.integration.helpers import sales

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sales().drop(columns=["price"]).head(5).to_json(elsewhere / "houses.json", orient="records")
    script = ("import json, mlflow, pandas as pd; "
              f"m = mlflow.pyfunc.load_model('models:/{MODEL}@champion'); "
              "print(json.dumps([float(v) for v in m.predict(pd.read_json('houses.json', orient='records'))]))")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(elsewhere), "MLFLOW_TRACKING_URI": team.mlflow_url,
           **team.client_env()}
    proc = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    predictions = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(predictions) == 5 and all(50_000 < p < 600_000 for p in predictions), predictions
