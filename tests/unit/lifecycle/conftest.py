"""Cycles on the in-memory registry and versioning fakes: a real Prefect test server and real
stage files, with the registry and git + DVC in memory."""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelcycle.config import Workspace
from modelcycle.lifecycle import flows, lock, services
from modelcycle.notify import Notifier
from modelcycle.registry.history import MOVE_PREFIX, last, moves
from modelcycle.registry.memory import MemoryRegistry
from modelcycle.sources import build_source
from modelcycle.versioning.memory import MemoryVersioning

OWNED = ["dvc.lock", "params.yaml", "dvc.yaml", "modelcycle.yaml", "data/.gitignore", "models/.gitignore",
         "data/clean.json", "data/train.json", "data/holdout.json",
         "reports/metrics.json", "reports/validation.json", "reports/predictions.csv"]
OUTPUTS = ["data/raw", "models/challenger"]


HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from modelcycle.lifecycle import lock
    with lock.hold(Path(sys.argv[1]), "modelcycle run --window 2015-02"):
        print("held", flush=True)
        time.sleep(60)
""")


@contextlib.contextmanager
def holding(root: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``root``'s workspace lock (as `modelcycle run --window 2015-02`)
    until the block ends or it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small taxifare workspace (40 trees), built once per test process; tests copy it."""
    from modelcycle.examples.taxifare.workspace import create

    root = tmp_path_factory.mktemp("faults") / "ws"
    create(root, rows_per_month=1000)
    params = root / "params.yaml"
    text = re.sub(r"n_estimators: \d+", "n_estimators: 40", params.read_text())
    assert "n_estimators: 40" in text
    params.write_text(text)
    return root


class Fakes:
    """One workspace's services on the fakes; the same instances for every open."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = MemoryRegistry()
        self.versioning = MemoryVersioning(root)

    def __call__(self, ws: Workspace) -> services.Services:
        return services.Services(ws=ws, source=build_source(ws.config, ws.root), registry=self.registry,
                                 versioning=self.versioning, notifier=Notifier())

    def snapshot(self) -> dict[str, Any]:
        reg, ver = self.registry, self.versioning
        return {
            "head": ver.head(), "branch": ver.branch(), "tags": ver.tags(),
            "files": {p: (self.root / p).read_bytes() if (self.root / p).is_file() else None for p in OWNED},
            "outputs": ver.hashes(OUTPUTS),
            "versions": [v.version for v in reg.list_versions("taxifare")],
            "aliases": {a: (mv.version if (mv := reg.get_alias("taxifare", a)) else None)
                        for a in ("champion", "challenger")},
            # the alias history grows with every move and its undo: compared by where it ends
            "model_tags": {k: v for k, v in reg.model_tags("taxifare").items() if not k.startswith(MOVE_PREFIX)},
            "history_ends": {a: (m.after if (m := last(moves(reg, "taxifare"), a)) else None)
                             for a in ("champion", "challenger")},
            "journal": (self.root / ".modelcycle/journal.json").exists(),
            "lock": lock.holder(self.root),
            "running": sorted(r.run_id for r in reg.runs.values() if r.status == "RUNNING"),
        }

    def clone_to(self, root: Path) -> Fakes:
        """The same workspace and services in ``root``, independent of these: the folder copied,
        the registry and the versioning fake's git and DVC state duplicated."""
        shutil.copytree(self.root, root, symlinks=True)
        clone = Fakes.__new__(Fakes)
        clone.root = root
        clone.registry = pickle.loads(pickle.dumps(self.registry))  # a pickle carries the store's data
        clone.versioning = copy.deepcopy(self.versioning)
        clone.versioning.root = str(root.resolve())
        return clone


@pytest.fixture(scope="session")
def champion_fakes(template: Path, tmp_path_factory: pytest.TempPathFactory, prefect_server) -> Fakes:
    """The workspace after its first cycle (2014-12: v1 is the champion), run once per test
    process; tests use a clone (:meth:`Fakes.clone_to`), never this one."""
    fakes = Fakes(tmp_path_factory.mktemp("champion") / "ws")
    shutil.copytree(template, fakes.root, symlinks=True)
    with services.using(factory=fakes):
        flows.run(fakes.root, "2014-12")
    return fakes


@pytest.fixture
def fakes(champion_fakes: Fakes, tmp_path: Path) -> Fakes:
    """A private copy of the workspace after its first cycle, its services on the fakes."""
    fakes = champion_fakes.clone_to(tmp_path / "ws")
    with services.using(factory=fakes):
        yield fakes


