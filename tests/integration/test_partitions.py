"""Each month's rows are stored once (real git + DVC): three cycles add about one month's Parquet
each to the DVC cache, and `git checkout <tag> && dvc checkout` gives back, through the
manifests, exactly the rows an earlier cycle trained on, even after late rows changed a month."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from modelcycle.config import Workspace
from modelcycle.lifecycle import datasets, flows, stages
from modelcycle.versioning.partitions import Manifest
from tests.integration.helpers import mutate_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

#: What a cycle adds to the cache besides its new month(s): the listings of data/raw and
#: models/challenger (a JSON line per file: under 4 KB at these sizes). The model's own files
#: are counted from the model itself.
LISTINGS = 16_384


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sorted_hash(frame: pd.DataFrame) -> str:
    """The rows as a set: a hash of the frame sorted by every column (order and index ignored)."""
    ordered = frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()).hexdigest()


def objects(cache: Path) -> set[str]:
    """The md5s of the objects in a DVC cache (``files/md5/ab/cdef...``)."""
    return {p.parent.name + p.name.removesuffix(".dir") for p in cache.rglob("*") if p.is_file()}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def dvc(root: Path, *args: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_three_cycles_store_each_month_once_and_a_tag_restores_its_training_rows(
        taxi_ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained_on: list[str] = []
    original = stages.train

    def train(ws, train_rows, save_model):  # what the challenger was really fitted on
        trained_on.append(sorted_hash(train_rows))
        return original(ws, train_rows, save_model)

    monkeypatch.setattr(stages, "train", train)
    cache = taxi_ws / ".dvc" / "cache"
    ws = Workspace.load(taxi_ws)
    assert datasets.layout(ws).partitioned
    tags = []
    for n, window in enumerate(["2015-01", "2015-02", "2015-03"]):
        if n == 2:  # late rows of January arrive before the March cycle: copies with another fare
            mutate_warehouse(taxi_ws, "INSERT INTO rides SELECT * REPLACE (fare_amount + 1.5 AS fare_amount) "
                                      "FROM rides WHERE pickup_datetime >= '2015-01-20' "
                                      "AND pickup_datetime < '2015-01-21'")
        january_before = md5(taxi_ws / "data/raw/2015-01.parquet") if n == 2 else None
        before, had = du(cache), objects(cache)
        result = flows.run(taxi_ws, window)
        assert result.git_tag, result.reasons
        tags.append(result.git_tag)
        added = du(cache) - before
        new_months = [taxi_ws / f"data/raw/{window}.parquet"] if n else list((taxi_ws / "data/raw").iterdir())
        if n == 2:
            january = taxi_ws / "data/raw/2015-01.parquet"
            assert md5(january) != january_before  # the late rows made a new January partition
            new_months.append(january)
        model = du(taxi_ws / "models/challenger")
        window_bytes = sum(p.stat().st_size for p in new_months)
        # the cache grows by the new month(s) (the first cycle: every month it read), the model and
        # two listings; never by the history again
        assert added <= 1.2 * window_bytes + model + LISTINGS, (window, added, window_bytes, model)
        if n:  # no month already stored was stored again
            stored_again = {p.name for p in (taxi_ws / "data/raw").iterdir() if p not in new_months and
                            md5(p) in objects(cache) - had}
            assert not stored_again and had <= objects(cache)
        manifest = Manifest.read(taxi_ws / "data/train.json", "data/train.json")
        assert [p.name for p in manifest.partitions][-1] == f"{window}.parquet"
        assert manifest.rows == result.rows["train"]

    # the late rows are in the March cycle's training rows, and the rebuild is exact
    ws = Workspace.load(taxi_ws)
    assert sorted_hash(datasets.rows(ws, "train")) == trained_on[2]

    # the February cycle's tag restores the January partition without the late rows
    git(taxi_ws, "checkout", "-q", tags[1])
    dvc(taxi_ws, "checkout", "--force")
    ws = Workspace.load(taxi_ws)
    assert md5(taxi_ws / "data/raw/2015-01.parquet") == january_before
    restored = datasets.rows(ws, "train")
    assert sorted_hash(restored) == trained_on[1]
    assert len(datasets.rows(ws, "holdout")) == Manifest.read(taxi_ws / "data/holdout.json", "h").rows
    assert not (taxi_ws / "data/raw/2015-03.parquet").exists()


def test_a_workspace_of_single_files_cycles_on_and_doctor_moves_it_to_partitions(taxi_ws: Path, capsys) -> None:
    from tests.integration.helpers import cli
    from tests.pipeline_fixture import DVC_YAML as SINGLE_FILES

    (taxi_ws / "dvc.yaml").write_text(SINGLE_FILES)  # as `init` wrote it before month partitions
    git(taxi_ws, "commit", "-qam", "a workspace made before month partitions")
    first = flows.run(taxi_ws, "2015-01")
    assert first.git_tag and (taxi_ws / "data/train.parquet").is_file() and not (taxi_ws / "data/raw").exists()
    trained_first = pd.read_parquet(taxi_ws / "data/train.parquet")

    code, out, err = cli(capsys, "-w", str(taxi_ws), "doctor")
    assert "dvc.yaml now stores each month's rows once" in out, out + err
    second = flows.run(taxi_ws, "2015-02")
    assert second.git_tag and (taxi_ws / "data/raw/2015-02.parquet").is_file()
    assert git(taxi_ws, "status", "--porcelain", "--", "dvc.yaml", "data") == ""  # committed with the cycle
    assert "data/raw.parquet" not in git(taxi_ws, "show", f"{second.git_tag}:dvc.yaml")
    assert len(datasets.rows(Workspace.load(taxi_ws), "train")) == second.rows["train"]

    git(taxi_ws, "checkout", "-q", first.git_tag)  # the earlier cycle: its single files come back
    dvc(taxi_ws, "checkout", "--force")
    ws = Workspace.load(taxi_ws)
    assert datasets.layout(ws) == datasets.SINGLE_FILES
    pd.testing.assert_frame_equal(datasets.rows(ws, "train"), trained_first)


def test_the_rows_a_cycle_trains_on_do_not_depend_on_the_order_the_source_gave_them(taxi_ws: Path) -> None:
    """A database may return rows with equal timestamps in another order each time: the fetch
    stage puts them in the partitions' order, so validation, the split and training see the
    same rows in the same order (and the same model comes out of the same window)."""
    from modelcycle.config import Window
    from modelcycle.sources import build_source

    ws = Workspace.load(taxi_ws)
    window = Window.parse("2015-01")
    ws = stages.set_window(ws, window)
    source = build_source(ws.config, ws.root)
    fetched = source.fetch(*stages.fetch_range(ws, window))
    ties = fetched.iloc[:50].assign(fare_amount=lambda f: f["fare_amount"] + 1.0)  # same times, other rows
    ties[ws.config.data.timestamp] = fetched[ws.config.data.timestamp].iloc[0]
    given = pd.concat([fetched, ties], ignore_index=True)
    trained = []
    for seed in (1, 2):
        shuffled = given.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        raw = stages.fetch(ws, source, window, rows=lambda shuffled=shuffled: shuffled)
        clean, _ = stages.validate(ws, raw, window)
        trained.append(stages.prepare(ws, clean, window).train)
    pd.testing.assert_frame_equal(trained[0], trained[1])
    assert len(trained[0]) > len(ties)
