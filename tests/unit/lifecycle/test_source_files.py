"""A source that reads files inside the workspace (an image folder) has them versioned with each
cycle's snapshot, and a cycle that fails puts them back as they were when it began."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modelcycle.config import Workspace
from modelcycle.lifecycle import flows, services
from modelcycle.lifecycle.hooks import Hooks
from modelcycle.sources import Source
from modelcycle.versioning.memory import dvc_md5
from tests.unit.lifecycle.conftest import Fakes

pytestmark = pytest.mark.usefixtures("prefect_server")


class PictureSource:
    """The workspace's rows, plus a folder of pictures the source says it reads."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self.inner.fetch(start, end)

    def describe(self) -> str:
        return "pictures and " + self.inner.describe()

    def check(self) -> None:
        self.inner.check()

    def tracked_paths(self) -> list[Path]:
        return [Path("pictures")]


class PictureFakes(Fakes):
    def __call__(self, ws: Workspace) -> services.Services:
        svc = super().__call__(ws)
        return services.Services(ws=svc.ws, source=PictureSource(svc.source), registry=svc.registry,
                                 versioning=svc.versioning, notifier=svc.notifier)


def test_a_cycle_versions_the_sources_folder_and_a_failed_one_restores_it(template: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    (root / "pictures" / "cats").mkdir(parents=True)
    first = {"cats/1.png": b"a cat", "cats/2.png": b"two cats"}
    for rel, data in first.items():
        (root / "pictures" / rel).write_bytes(data)
    fakes = PictureFakes(root)
    with services.using(factory=fakes):
        flows.run(root, "2014-12")

    value = dvc_md5(root, "pictures")
    head = fakes.versioning.log()[0]
    assert yaml.safe_load(head.tree["pictures.dvc"])["outs"][0]["md5"] == value
    assert value in fakes.versioning.cache and fakes.versioning.remote is not None and value in fakes.versioning.remote

    def relabel_then_fail(svc, result, decision):
        (root / "pictures" / "cats" / "1.png").write_bytes(b"a dog, relabelled")
        (root / "pictures" / "cats" / "3.png").write_bytes(b"one more")
        raise RuntimeError("the approval service is down")

    with services.using(factory=fakes, hooks=Hooks(after_decide=(relabel_then_fail,))), \
            pytest.raises(RuntimeError, match="approval"):
        flows.run(root, "2015-01")
    folder = root / "pictures"
    assert {f.relative_to(folder).as_posix(): f.read_bytes() for f in folder.rglob("*") if f.is_file()} == first
    assert fakes.versioning.log()[0] is head
