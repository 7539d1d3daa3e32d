"""``act.keep_rejected: false`` on a real workspace (git + DVC + MLflow on SQLite + Prefect): a
challenger that is not promoted leaves git, DVC, the registry and the aliases byte for byte as
they were, and only its MLflow run, tagged rolled_back; the next run moves past its window; a
promoted challenger is versioned as always, and without the setting a kept champion versions
its challenger as before."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelcycle.config import Workspace
from modelcycle.registry.workspace import open_registry
from tests.integration.helpers import cli

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

DVC = str(Path(sys.executable).with_name("dvc"))
NAME = "taxifare"


def sh(root: Path, *args: str) -> str:
    proc = subprocess.run(list(args), cwd=root, capture_output=True, text=True)
    return f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"


def outside(root: Path) -> dict[str, str]:
    """What a user sees of the workspace from outside: each command's whole output, the files the
    cycle's stages and DVC write, and the registry's versions and aliases."""
    db = sqlite3.connect(root / ".modelcycle" / "mlflow.db")
    try:
        versions = db.execute("SELECT name, version, current_stage, run_id, source FROM model_versions "
                              "ORDER BY name, version").fetchall()
        aliases = db.execute("SELECT name, alias, version FROM registered_model_aliases ORDER BY alias").fetchall()
        model_tags = db.execute("SELECT name, key, value FROM registered_model_tags ORDER BY key").fetchall()
    finally:
        db.close()
    files = {p: (root / p).read_text() for p in ("dvc.lock", "params.yaml", "reports/metrics.json",
                                                  "reports/validation.json")}
    return {
        "git log": sh(root, "git", "log", "--format=%H %D %s"),
        "git tag": sh(root, "git", "tag", "-n1"),
        "git status": sh(root, "git", "status", "--porcelain", "--untracked-files=all"),
        "dvc status": sh(root, DVC, "status"),
        # its lines sorted: DVC lists the changed outputs in no fixed order
        "dvc data status": "\n".join(sorted(sh(root, DVC, "data", "status").splitlines())),
        # every file, changed or not, of every DVC-tracked output (DVC lists them in no fixed order)
        "dvc data status files": "\n".join(sorted(sh(root, DVC, "data", "status", "--granular",
                                                     "--unchanged").splitlines())),
        "files": json.dumps(files, sort_keys=True),
        "versions": repr(versions), "aliases": repr(aliases), "model tags": repr(model_tags),
    }


def configure(root: Path, **gate: object) -> None:
    """Set act.keep_rejected (None: remove the section) and gate fields, committed as a user would."""
    path = root / "modelcycle.yaml"
    cfg = yaml.safe_load(path.read_text())
    keep = gate.pop("keep_rejected")
    if keep is None:
        cfg.pop("act", None)
    else:
        cfg["act"] = {"keep_rejected": keep}
    cfg["gate"].update(gate)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    subprocess.run(["git", "commit", "-q", "-m", "gate settings", "modelcycle.yaml"], cwd=root, check=True)


def test_a_rejected_challenger_leaves_only_its_mlflow_run(champion_ws: Path, capsys) -> None:
    ws = champion_ws  # 2014-12 ran: v1 is the champion
    original_min_effect = yaml.safe_load((ws / "modelcycle.yaml").read_text())["gate"]["min_effect"]
    configure(ws, keep_rejected=False, min_effect=5.0)  # no challenger is 500% better: the champion is kept
    before = outside(ws)
    assert before["git status"] == "exit 0\n"  # (dvc status: modelcycle.yaml, a stage dependency, changed)

    code, out, err = cli(capsys, "-w", str(ws), "run", "--window", "2015-01")
    assert code == 0, out + err
    after = outside(ws)
    for what in before:
        assert after[what] == before[what], what
    assert "rolled_back" in out and "act.keep_rejected: false" in out, out

    reg = open_registry(Workspace.load(ws))
    [run] = reg.find_runs(NAME, {"modelcycle.window": "2015-01"})
    assert run.tags["modelcycle.outcome"] == "rolled_back" and run.tags["modelcycle.decision"] == "keep"
    assert "rolled back" in run.tags["modelcycle.reasons"] and "better" in run.tags["modelcycle.reasons"]
    assert reg.get_run(run.run_id).status == "FINISHED"
    assert reg.find_versions(NAME, run.run_id) == []
    logged = [json.loads(line) for line in (ws / ".modelcycle/notifications.log").read_text().splitlines()]
    assert logged[-1]["window"] == "2015-01" and logged[-1]["outcome"] == "rolled_back"
    code, out, _ = cli(capsys, "-w", str(ws), "status")
    assert code == 0 and "2015-01" in out and "rolled_back" in out, out

    # a backtest's table and its JSON say rolled_back too
    code, out, err = cli(capsys, "-w", str(ws), "backtest", "--from", "2015-02", "--to", "2015-02")
    assert code == 0, out + err
    assert "rolled_back" in out, out
    [row] = json.loads((ws / "reports/backtest-2015-02-2015-02.json").read_text())
    assert row["window"] == "2015-02" and row["outcome"] == "rolled_back" and row["git_tag"] is None
    later = outside(ws)
    for what in ("git log", "git tag", "dvc status", "dvc data status", "dvc data status files", "files",
                 "versions", "aliases"):
        assert later[what] == before[what], what

    # the next run moves past both rolled-back windows; a promoted challenger is versioned as always
    configure(ws, keep_rejected=False, min_effect=original_min_effect)
    code, out, err = cli(capsys, "-w", str(ws), "run")
    assert code == 0, out + err
    assert "2015-03" in out and "promote" in out and "versioned as git tag modelcycle/taxifare/2015-03" in out, out
    assert "modelcycle/taxifare/2015-03" in sh(ws, "git", "tag")
    assert "up to date" in sh(ws, DVC, "status").lower()
    assert sh(ws, "git", "status", "--porcelain", "--untracked-files=no") == "exit 0\n"
    assert reg.get_alias(NAME, "champion").version == "2"

    # without act.keep_rejected a kept champion versions its challenger, as before
    configure(ws, keep_rejected=None, min_effect=5.0)
    code, out, err = cli(capsys, "-w", str(ws), "run", "--window", "2015-04")
    assert code == 0, out + err
    assert "keep" in out and "rolled_back" not in out, out
    assert "modelcycle/taxifare/2015-04" in sh(ws, "git", "tag")
    assert reg.get_alias(NAME, "challenger").version == "3" and reg.get_alias(NAME, "champion").version == "2"
