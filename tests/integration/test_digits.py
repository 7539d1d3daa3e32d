"""The digits example end to end at a small size, on the real tools (git + DVC + MLflow on SQLite
+ Prefect, the torch trainer): the first champion is promoted and versioned with its images; a
batch of rotated images gives a challenger under the 95% gate, which is rolled back leaving git,
DVC, the registry and the aliases byte for byte as they were; and `git checkout <tag> && dvc
checkout` brings back the earlier images+model pair byte for byte."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import cli
from tests.integration.test_keep_rejected import outside

pytest.importorskip("torch", reason="the torch extra is not installed: pip install 'modelcycle[torch]'")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

DVC = str(Path(sys.executable).with_name("dvc"))
PAIR = ("data/images", "data/images.csv", "models/challenger")  # the images and the model of a version


def digest(root: Path) -> dict[str, str]:
    """The sha256 of every file of the images+model pair, by workspace-relative path."""
    out: dict[str, str] = {}
    for rel in PAIR:
        path = root / rel
        for f in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
            out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def test_promoted_then_rolled_back_then_restored(tmp_path: Path, capsys) -> None:
    from modelcycle.cli import examples
    from modelcycle.config import Workspace

    root = tmp_path / "digits"
    examples.create("digits", root, force=False, progress=lambda _t: None, batches=0)  # the history only
    code, out, err = cli(capsys, "-w", str(root), "run", "--window", "2014-12")
    assert code == 0, out + err
    assert "promote" in out
    first = digest(root)
    assert any(p.startswith("data/images/") for p in first) and "models/challenger/MLmodel" in first
    tag = "modelcycle/digits/2014-12"
    assert git(root, "tag", "--list", "modelcycle/*").split() == [tag]

    for _ in range(4):  # January to April are released; April's images are rotated
        month, rows = examples.append("digits", Workspace.load(root))
    assert month == "2015-04" and rows > 0
    before = outside(root)
    code, out, err = cli(capsys, "-w", str(root), "run", "--window", "2015-04")
    assert code == 0, out + err
    assert "rolled_back" in out
    assert outside(root) == before  # no commit, tag, DVC change, version or alias move
    assert git(root, "tag", "--list", "modelcycle/*").split() == [tag]

    # the champion's images and model come back byte for byte from its tag
    git(root, "checkout", "-q", "--force", tag)
    subprocess.run([DVC, "checkout", "--force"], cwd=root, capture_output=True, text=True, check=True)
    assert digest(root) == first
