"""The stages' data outputs in both layouts (`modelcycle step` from files, no DVC): month
partitions and manifests that rebuild exactly the rows a stage produced, and the single Parquet
files of a workspace made before, still written and read; doctor's move from one to the other."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelcycle.config import Window, Workspace
from modelcycle.errors import VersioningError
from modelcycle.lifecycle import datasets, stages
from modelcycle.versioning import partitions as parts
from modelcycle.versioning import setup
from modelcycle.versioning.partitions import Manifest
from tests.pipeline_fixture import DVC_YAML as SINGLE_FILES_DVC_YAML

CONFIG = """\
name: rides
source: {kind: files, url: "source/*.csv"}
data:
  timestamp: ts
  target: y
  columns: {ts: datetime, y: float, x: float}
  rules: {x: {min: 0}}
metric: mae
gate: {threshold: 2.5}
"""
PARAMS = "window: 2015-03\nseed: 42\ndata: {history_months: 2}\nsplit: {holdout_fraction: 0.3}\nmodel: {}\n"
TEMPLATE = resources.files("modelcycle.lifecycle").joinpath("templates", "dvc.yaml").read_text(encoding="utf-8")


def make(root: Path, dvc_yaml: str) -> Workspace:
    rng = np.random.default_rng(1)
    n = 900
    stamps = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 90, n), unit="s")
    x = rng.uniform(0, 10, n).round(3).astype(object)
    x[[5, 17]] = "oops"     # not a float: dropped by validation
    x[[40]] = -1.0          # under the rule's min: dropped
    frame = pd.DataFrame({"ts": stamps.strftime("%Y-%m-%d %H:%M:%S"), "y": rng.normal(5, 1, n).round(3), "x": x})
    (root / "source").mkdir(parents=True)
    frame.to_csv(root / "source" / "rides.csv", index=False)
    (root / "modelcycle.yaml").write_text(CONFIG)
    (root / "params.yaml").write_text(PARAMS)
    (root / "dvc.yaml").write_text(dvc_yaml)
    return Workspace.load(root)


def test_the_stages_write_month_partitions_and_manifests_that_rebuild_their_rows(tmp_path: Path) -> None:
    ws = make(tmp_path, TEMPLATE)
    assert datasets.layout(ws) == datasets.PARTITIONED
    print(stages.run_stage(ws, "fetch"))
    assert sorted(p.name for p in (tmp_path / "data/raw").iterdir()) == [
        "2015-01.parquet", "2015-02.parquet", "2015-03.parquet"]
    said = stages.run_stage(ws, "validate")
    assert "3 of 900 rows dropped" in said and "data/clean.json" in said
    clean = Manifest.read(tmp_path / "data/clean.json", "data/clean.json")
    assert clean.rows == 897 and clean.selection["dropped"] == {"x is not a float": 2, "x < 0": 1}
    raw = parts.read(tmp_path / "data/raw")
    dropped = parts.positions(clean.selection["dropped_rows"], len(raw))
    assert sorted(map(str, raw.loc[dropped, "x"])) == ["-1.0", "oops", "oops"]
    assert [p.name for p in clean.partitions] == ["2015-01.parquet", "2015-02.parquet", "2015-03.parquet"]

    stages.run_stage(ws, "prepare")
    window = Window.parse("2015-03")
    raw = parts.read(tmp_path / "data/raw")
    clean_rows, report = stages.va.validate(raw, ws.config.data, window_start=window.start)
    split = stages.sp.chronological(clean_rows, timestamp="ts", window_start=window.start, window_end=window.end,
                                    holdout_fraction=0.3)
    for which, expected in (("train", split.train), ("holdout", split.holdout), ("clean", clean_rows)):
        manifest = Manifest.read(tmp_path / f"data/{which}.json", which)
        assert manifest.rows == len(expected) and manifest.digest == parts.digest(expected)
        pd.testing.assert_frame_equal(datasets.rows(ws, which), expected)
    train = Manifest.read(tmp_path / "data/train.json", "train")
    assert train.selection["cut"] == split.cut.isoformat() and train.selection["history_rows"] == split.history_rows


def test_a_rebuild_that_gives_other_rows_is_refused(tmp_path: Path) -> None:
    ws = make(tmp_path, TEMPLATE)
    for stage in ("fetch", "validate", "prepare"):
        stages.run_stage(ws, stage)
    manifest = tmp_path / "data/train.json"
    recorded = manifest.read_text()
    # rows that are not the ones recorded (here: another digest) are never given as the cycle's
    manifest.write_text(recorded.replace(Manifest.read(manifest, "m").digest or "", "0" * 64))
    with pytest.raises(VersioningError, match="rebuilt from data/train.json .* are not the .* rows its cycle recorded"):
        datasets.rows(ws, "train")
    manifest.write_text(recorded)
    assert len(datasets.rows(ws, "train")) == Manifest.read(manifest, "m").rows
    # the data contract changed since the cycle: validation drops other rows than it did
    (tmp_path / "modelcycle.yaml").write_text(CONFIG.replace("min: 0", "min: 5"))
    with pytest.raises(VersioningError, match="validation now drops other rows of data/raw than the cycle"):
        datasets.rows(Workspace.load(tmp_path), "train")


def test_a_workspace_of_single_files_still_writes_and_reads_them(tmp_path: Path) -> None:
    ws = make(tmp_path, SINGLE_FILES_DVC_YAML)
    assert datasets.layout(ws) == datasets.SINGLE_FILES
    for stage in ("fetch", "validate", "prepare"):
        stages.run_stage(ws, stage)
    assert not (tmp_path / "data/raw").exists() and not (tmp_path / "data/train.json").exists()
    train = pd.read_parquet(tmp_path / "data/train.parquet")
    pd.testing.assert_frame_equal(datasets.rows(ws, "train"), train)
    assert len(datasets.rows(ws, "holdout")) + len(train) == 897


def test_doctor_moves_a_single_files_dvc_yaml_to_partitions(tmp_path: Path) -> None:
    path = tmp_path / "dvc.yaml"
    path.write_text("# my own comment\n" + SINGLE_FILES_DVC_YAML)
    changed = setup.partition_pipeline(tmp_path)
    assert changed == ["fetch", "validate", "prepare", "train", "evaluate"]
    assert setup.track_candidates(tmp_path)  # doctor's other update (in a workspace with candidates)
    text = path.read_text()
    assert text.startswith("# my own comment\n") and ".parquet" not in text
    assert yaml.safe_load(text)["stages"] == yaml.safe_load(TEMPLATE)["stages"]  # as init writes it now
    assert setup.partition_pipeline(tmp_path) == []  # once
    ws = make(tmp_path / "ws", text)
    assert datasets.layout(ws) == datasets.PARTITIONED


def test_modelcycle_rows_prints_or_writes_a_set_and_names_a_wrong_file_kind(tmp_path: Path, capsys) -> None:
    from modelcycle.cli.main import main

    def cli(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_:
            main(["-w", str(tmp_path), *args])
        out = capsys.readouterr()
        return int(exit_.value.code or 0), out.out, out.err

    ws = make(tmp_path, TEMPLATE)
    for stage in ("fetch", "validate", "prepare"):
        stages.run_stage(ws, stage)
    code, out, err = cli("rows", "holdout", "--out", str(tmp_path / "out" / "holdout.csv"))
    assert code == 0, err
    written = pd.read_csv(tmp_path / "out" / "holdout.csv")
    assert len(written) == Manifest.read(tmp_path / "data/holdout.json", "h").rows
    assert f"wrote the {len(written)} holdout rows (from data/holdout.json)" in " ".join(out.split())
    code, out, err = cli("rows", "train", "--head", "3")
    assert code == 0 and "train: " in out and "rows, 3 columns (from data/train.json)" in out, err
    code, out, err = cli("rows", "train", "--out", str(tmp_path / "train.xlsx"))
    assert code != 0 and "cannot write a .xlsx file" in err and "Traceback" not in err
    code, out, err = cli("rows", "everything")
    assert code != 0 and "there is no data set 'everything'" in err
