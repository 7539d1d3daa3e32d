"""The push to the DVC remote on a real workspace (git + DVC + MLflow on SQLite + Prefect): a
failed push rolls the cycle back by default and says which remote and what to do; with
``versioning.push: best-effort`` the cycle succeeds and says so, ``status`` shows it, and
``modelcycle push`` pushes it once the remote answers. The remote follows MODELCYCLE_DVC_REMOTE at
every cycle, and ``status`` shows the remote DVC really pushes to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import cli
from tests.integration.test_keep_rejected import outside, sh

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

DVC = str(Path(sys.executable).with_name("dvc"))


def objects(remote: Path) -> set[str]:
    base = remote / "files" / "md5"
    return {f"{p.parent.name}{p.name}" for p in base.rglob("*") if p.is_file()} if base.exists() else set()


def unreachable(tmp_path: Path) -> Path:
    """A remote folder that cannot be created: a file stands where its parent should be."""
    blocker = tmp_path / "team-share"
    blocker.write_text("not a folder")
    return blocker / "dvc-remote"


def refusing(tmp_path: Path) -> Path:
    """A remote folder that answers the check at a command's start (it exists and is writable)
    but refuses the push: a file stands where DVC puts its objects."""
    remote = tmp_path / "team-share" / "dvc-remote"
    remote.mkdir(parents=True)
    (remote / "files").write_text("not a folder")
    return remote


def test_a_failed_push_rolls_the_cycle_back_and_names_the_remote(champion_ws: Path, tmp_path: Path,
                                                                  capsys, monkeypatch) -> None:
    ws = champion_ws  # 2014-12 ran: v1 is the champion
    remote = refusing(tmp_path)
    monkeypatch.setenv("MODELCYCLE_DVC_REMOTE", str(remote))
    before = outside(ws)
    code, out, err = cli(capsys, "-w", str(ws), "run", "--window", "2015-01")
    assert code != 0 and "Traceback" not in err
    assert f"could not be pushed to the DVC remote {remote}" in err, err
    assert "versioning: {push: best-effort}" in err and "not pushed" not in err, err
    after = outside(ws)
    for what in before:  # git commit and tag, DVC outputs, registry and aliases as before the cycle
        assert after[what] == before[what], what
    assert not (ws / ".modelcycle/unpushed.json").exists()
    last = json.loads((ws / ".modelcycle/notifications.log").read_text().splitlines()[-1])
    assert last["window"] == "2015-01" and last["outcome"] == "failed"
    assert "rolled back" in last["reasons"][0] and str(remote) in last["reasons"][0]


def test_best_effort_succeeds_says_so_and_modelcycle_push_pushes_later(champion_ws: Path, tmp_path: Path,
                                                                        capsys, monkeypatch) -> None:
    ws = champion_ws
    path = ws / "modelcycle.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["versioning"] = {"push": "best-effort"}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    subprocess.run(["git", "commit", "-q", "-m", "push when the remote answers", "modelcycle.yaml"], cwd=ws, check=True)
    remote = unreachable(tmp_path)
    monkeypatch.setenv("MODELCYCLE_DVC_REMOTE", str(remote))
    old_remote = objects(ws / ".modelcycle/dvc-remote")

    code, out, err = cli(capsys, "-w", str(ws), "run", "--window", "2015-01")
    assert code == 0, out + err
    assert "versioned as git tag modelcycle/taxifare/2015-01" in out, out
    assert "not pushed:" in out and str(remote) in out and "modelcycle push" in out, out
    assert "modelcycle/taxifare/2015-01" in sh(ws, "git", "tag")
    assert objects(ws / ".modelcycle/dvc-remote") == old_remote  # not to the remote `init` configured
    assert sh(ws, "git", "status", "--porcelain", "--untracked-files=all") == "exit 0\n"  # config.local: ignored

    code, out, err = cli(capsys, "-w", str(ws), "status")
    assert code == 0, out + err
    flat = " ".join(out.split())
    assert f"DVC {remote} (from $MODELCYCLE_DVC_REMOTE)" in flat, out
    assert "not pushed:" in out and "2015-01" in out, out

    code, out, err = cli(capsys, "-w", str(ws), "push")
    assert code != 0 and str(remote) in err, err  # still unreachable: said, and kept

    (tmp_path / "team-share").unlink()  # the share is mounted
    code, out, err = cli(capsys, "-w", str(ws), "push")
    assert code == 0, out + err
    assert "pushed 1 cycle(s)" in out and "modelcycle/taxifare/2015-01" in out, out
    assert objects(remote) and "in sync" in sh(ws, DVC, "status", "--cloud").lower()
    code, out, _ = cli(capsys, "-w", str(ws), "status")
    assert "not pushed" not in out, out
    code, out, _ = cli(capsys, "-w", str(ws), "push")
    assert code == 0 and "nothing to push" in out, out


def test_status_shows_the_remote_dvc_uses_until_a_cycle_or_push_changes_it(champion_ws: Path, tmp_path: Path,
                                                                           capsys, monkeypatch) -> None:
    ws = champion_ws
    monkeypatch.setenv("MODELCYCLE_DVC_REMOTE", str(tmp_path / "team"))
    code, out, _ = cli(capsys, "-w", str(ws), "status")
    flat = " ".join(out.split())
    assert f"DVC {ws / '.modelcycle/dvc-remote'} (DVC's config; the next cycle or `modelcycle push` changes " \
           f"it to {tmp_path / 'team'}, from $MODELCYCLE_DVC_REMOTE)" in flat, out
    assert cli(capsys, "-w", str(ws), "push")[0] == 0
    code, out, _ = cli(capsys, "-w", str(ws), "status")
    assert f"DVC {tmp_path / 'team'} (from $MODELCYCLE_DVC_REMOTE)" in " ".join(out.split()), out
    assert "team" in (ws / ".dvc/config.local").read_text() and "team" not in (ws / ".dvc/config").read_text()
