"""Candidates outside a cycle's flow: `modelcycle step train` (what `dvc repro` runs) trains every
candidate and keeps the one a cycle would choose; the result table names the chosen candidate; a
Dask scheduler that does not answer stops a cycle in seconds, before it changes anything; an old
dvc.yaml learns to rerun its train stage when the candidates change."""

from __future__ import annotations

import io
import json
import socket
import time

import pytest
import yaml
from rich.console import Console

from modelcycle.cli.render import results_table
from modelcycle.config import Window, Workspace
from modelcycle.errors import ConfigError
from modelcycle.lifecycle import flows, runners, stages
from modelcycle.lifecycle.result import CycleResult
from modelcycle.notify import CycleOutcome
from modelcycle.versioning import setup
from tests.pipeline_fixture import DVC_YAML
from tests.unit.lifecycle.conftest import Fakes
from tests.unit.minimal import with_candidates

pytestmark = pytest.mark.usefixtures("prefect_server")

CANDIDATES = {"stump": {"n_estimators": 1, "num_leaves": 2}, "trees": {}}




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stages(fakes: Fakes, monkeypatch, window: str) -> dict[str, str]:
    """fetch .. evaluate as `dvc repro` runs them, on the fakes' registry; each stage's summary."""
    from modelcycle.registry import workspace as registry_workspace

    monkeypatch.setattr(registry_workspace, "open_registry", lambda _ws: fakes.registry)
    ws = stages.set_window(Workspace.load(fakes.root), Window.parse(window))
    return {stage: stages.run_stage(ws, stage) for stage in stages.STAGES}


def test_step_train_keeps_the_candidate_a_cycle_chooses(fakes: Fakes, tmp_path, monkeypatch) -> None:
    with_candidates(fakes.root, CANDIDATES)
    cycled = fakes.clone_to(tmp_path / "cycled")
    from modelcycle.lifecycle import services

    with services.using(factory=cycled):
        result = flows.run(cycled.root, "2015-03")  # the fare change: the champion is clearly worse
    assert result.candidate == "trees" and result.outcome == "promote"

    said = _stages(fakes, monkeypatch, "2015-03")
    train = said["train"]
    assert train.startswith("trained 2 candidates of lightgbm"), train
    assert "'trees' (promote) -> models/challenger" in train
    assert "best of 2 candidates: 'trees' (promoted; 1 of 2 would be promoted)" in train
    assert "97.5% (1 - 0.05/2, corrected for 2 comparisons)" in train
    assert "candidate 'stump'" in train and "candidate 'trees'" in train
    # the model the evaluate stage scores is the cycle's challenger: the same score on the same rows
    metrics = json.loads((fakes.root / stages.METRICS).read_text())
    assert metrics["challenger_mae"] == pytest.approx(result.challenger_score, rel=1e-9)
    assert metrics["champion_mae"] == pytest.approx(result.champion_score, rel=1e-9)


def test_step_train_without_candidates_trains_model_as_before(fakes: Fakes, monkeypatch) -> None:
    said = _stages(fakes, monkeypatch, "2015-01")
    assert said["train"].startswith("trained lightgbm:LGBMRegressor on ")
    assert said["train"].endswith("s -> models/challenger") and "candidate" not in said["train"]


def test_the_result_table_names_the_chosen_candidate() -> None:
    def shown(**fields) -> str:
        result = CycleResult(window="2015-03", outcome=CycleOutcome.PROMOTE, reasons=[], metric="mae",
                             challenger_version="2", challenger_score=2.5, champion_score=3.0, **fields)
        out = io.StringIO()
        Console(file=out, width=200).print(results_table([result]))
        return out.getvalue()

    with_candidate = shown(candidate="trees")
    assert "candidate" in with_candidate and "trees" in with_candidate
    assert "candidate" not in shown()  # no candidates: the table as before
    assert CycleResult(window="w", outcome=CycleOutcome.PROMOTE, reasons=[], metric="mae",
                       candidate="trees").to_dict()["candidate"] == "trees"


def test_an_unreachable_dask_scheduler_stops_the_cycle_before_anything_changes(fakes: Fakes) -> None:
    port = _free_port()
    with_candidates(fakes.root, CANDIDATES, task_runner="dask", dask_address=f"tcp://127.0.0.1:{port}")
    before = fakes.snapshot()
    started = time.perf_counter()
    with pytest.raises(ConfigError) as raised:
        flows.run(fakes.root, "2015-03")
    assert time.perf_counter() - started < 15
    assert f"tcp://127.0.0.1:{port}" in raised.value.message
    assert "orchestration.dask_address" in raised.value.message
    assert "orchestration.task_runner: threads" in (raised.value.hint or "")
    assert fakes.snapshot() == before
    assert not any(r.tags.get("modelcycle.window") == "2015-03" for r in fakes.registry.runs.values())


def test_the_scheduler_is_asked_only_when_candidates_train_on_it(fakes: Fakes) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with_candidates(fakes.root, {}, task_runner="dask", dask_address=address)
    runners.preflight(Workspace.load(fakes.root))  # no candidates: nothing trains on Dask
    with_candidates(fakes.root, CANDIDATES, task_runner="threads", dask_address=address)
    runners.preflight(Workspace.load(fakes.root))
    with_candidates(fakes.root, CANDIDATES, task_runner="dask", dask_address=address)
    with pytest.raises(ConfigError, match="does not answer"):
        runners.preflight(Workspace.load(fakes.root))


def test_an_old_dvc_yaml_learns_to_rerun_train_when_the_candidates_change(tmp_path) -> None:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    assert not setup.tracks_candidates(tmp_path)
    assert setup.track_candidates(tmp_path)
    train = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["train"]
    assert train["params"] == [{"params.yaml": None}]
    assert train["deps"] == ["data/train.parquet", "data/holdout.parquet"]
    assert setup.tracks_candidates(tmp_path) and not setup.track_candidates(tmp_path)  # once
    prepare = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["prepare"]
    assert prepare["params"] == ["window", "split"]  # the other stages as they were


def test_a_new_workspace_reruns_train_when_the_candidates_change(fakes: Fakes) -> None:
    assert setup.tracks_candidates(fakes.root)
    train = yaml.safe_load((fakes.root / "dvc.yaml").read_text())["stages"]["train"]
    assert "data/holdout.json" in train["deps"]
