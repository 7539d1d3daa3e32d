"""One contract, two implementations: the in-memory fakes must behave as the real tools do on
everything the lifecycle's undo functions and recovery rely on. Each test runs against the fake
and against the real adapter (MLflow 3 on SQLite; git + DVC in tmp_path)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelcycle import tracepoints
from modelcycle.errors import ModelcycleError, VersioningError
from modelcycle.registry.memory import MemoryRegistry
from modelcycle.registry.mlflow import MlflowRegistry
from modelcycle.steps.model import ModelPipeline
from modelcycle.versioning.dvcgit import DvcGitVersioning
from modelcycle.versioning.setup import init_workspace_repo
from modelcycle.versioning.memory import MemoryVersioning
from tests.pipeline_fixture import CACHED, DVC_YAML, REPORTS, STAGES, TAG

pytestmark = pytest.mark.slow
NAME = "taxifare"


# -- registries ----------------------------------------------------------------------------


class _Mean:
    def fit(self, X: Any, y: Any) -> _Mean:
        self.value = float(pd.Series(y).mean())
        return self

    def predict(self, X: Any) -> Any:
        return [self.value] * len(X)


@pytest.fixture(params=["memory", "mlflow"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryRegistry()
    return MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "artifacts"))


@pytest.fixture
def model_uri(registry: Any, tmp_path: Path) -> Any:
    """A saved and logged model in a run; returns (run_id, model uri)."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 5.0]})
    pipeline = ModelPipeline(estimator=_Mean().fit(frame[["x"]], frame["y"]), target="y", task="regression",
                             input_columns=["x"], feature_names=["x"])
    path = tmp_path / "model"
    registry.save_model(pipeline, str(path), input_example=frame[["x"]])

    def make(tags: dict[str, str] | None = None) -> tuple[str, str]:
        run_id = registry.start_run(experiment=NAME, run_name="cycle", tags=tags or {})
        return run_id, registry.log_model_dir(run_id, str(path))
    return make


def test_a_registration_is_found_by_its_run_and_deleted(registry: Any, model_uri: Any) -> None:
    run_a, uri_a = model_uri()
    run_b, uri_b = model_uri()
    a = registry.register(NAME, uri_a, run_a, tags={"modelcycle.cycle": "c1"})
    b = registry.register(NAME, uri_b, run_b, tags={"modelcycle.cycle": "c2"})
    assert [v.version for v in registry.find_versions(NAME, run_a)] == [a.version]
    assert registry.find_versions(NAME, run_a)[0].tags["modelcycle.cycle"] == "c1"
    registry.delete_version(NAME, a.version)
    registry.delete_version(NAME, a.version)  # again: not an error
    assert registry.find_versions(NAME, run_a) == []
    assert [v.version for v in registry.list_versions(NAME)] == [b.version]
    run_c, uri_c = model_uri()
    c = registry.register(NAME, uri_c, run_c)
    assert int(c.version) > int(b.version)  # numbers are never reused


def test_aliases_move_back_and_go_with_their_version(registry: Any, model_uri: Any) -> None:
    versions = [registry.register(NAME, uri, run) for run, uri in (model_uri(), model_uri())]
    one, two = (v.version for v in versions)
    registry.set_alias(NAME, "champion", one)
    registry.set_alias(NAME, "champion", two)
    assert registry.get_alias(NAME, "champion").version == two
    registry.set_alias(NAME, "champion", one)
    assert registry.get_alias(NAME, "champion").version == one
    registry.set_alias(NAME, "challenger", two)
    registry.delete_version(NAME, two)
    assert registry.get_alias(NAME, "challenger") is None
    registry.delete_alias(NAME, "challenger")  # a missing alias is not an error
    registry.delete_alias(NAME, "champion")
    assert registry.get_alias(NAME, "champion") is None


def test_model_tags_remember_the_champion(registry: Any, model_uri: Any) -> None:
    assert registry.model_tags("nobody") == {}
    run, uri = model_uri()
    registry.register(NAME, uri, run)
    registry.set_model_tags(NAME, {"modelcycle.champion": "1"})
    registry.set_model_tags(NAME, {"modelcycle.champion": "2", "other": "x"})
    assert registry.model_tags(NAME) == {"modelcycle.champion": "2", "other": "x"}


def test_runs_are_found_by_tag_and_status(registry: Any, model_uri: Any) -> None:
    assert registry.find_runs("no-such-experiment", {}) == []
    run_a, _ = model_uri({"modelcycle.cycle": "c1", "modelcycle.process": "h:1:2"})
    run_b, _ = model_uri({"modelcycle.cycle": "c2"})
    assert [r.run_id for r in registry.find_runs(NAME, {"modelcycle.cycle": "c1"})] == [run_a]
    assert {r.run_id for r in registry.find_runs(NAME, {}, status="RUNNING")} == {run_a, run_b}
    registry.end_run(run_a, "KILLED")
    assert [r.run_id for r in registry.find_runs(NAME, {}, status="RUNNING")] == [run_b]
    found = registry.find_runs(NAME, {"modelcycle.cycle": "c1"})
    assert found[0].status == "KILLED" and found[0].tags["modelcycle.process"] == "h:1:2"


# -- versioning ----------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def _write_outputs(root: Path, seed: int) -> None:
    blob = hashlib.sha256(str(seed).encode()).digest() * 400
    for rel in CACHED[:4]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode() + blob)
    model = root / "models/challenger"
    if model.exists():
        shutil.rmtree(model)
    model.mkdir(parents=True)
    (model / "model.bin").write_bytes(blob[::-1])
    (root / "reports").mkdir(exist_ok=True)
    for rel in REPORTS:
        (root / rel).write_text(f'{{"seed": {seed}}}')


def _tree(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rel in ["dvc.lock", "params.yaml", "modelcycle.yaml", *CACHED, *REPORTS]:
        p = root / rel
        out[rel] = ({f.relative_to(p).as_posix(): f.read_bytes() for f in p.rglob("*") if f.is_file()}
                    if p.is_dir() else p.read_bytes() if p.exists() else None)
    return out


@pytest.fixture(params=["memory", "dvcgit"])
def versioning(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Any]:
    root = tmp_path / "ws"
    if request.param == "dvcgit":
        init_workspace_repo(root, str(tmp_path / "remote"))
    else:
        root.mkdir()
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("window: '2015-02'\ndata: {table: rides}\nsplit: {holdout: 0.2}\nmodel: {kind: lgbm}\nseed: 0\n")
    (root / "modelcycle.yaml").write_text("name: taxifare\n")
    if request.param == "dvcgit":
        _git(root, "add", ".")
        _git(root, "commit", "-q", "-m", "init")
        v: Any = DvcGitVersioning(root)
    else:
        v = MemoryVersioning(root)
    _write_outputs(root, 1)
    v.commit(STAGES, "first cycle", tag="modelcycle/taxifare/2015-02")
    return root, v


def _picture(root: Path, v: Any) -> dict[str, Any]:
    return {"head": v.head(), "branch": v.branch(), "tags": v.tags(), "files": _tree(root)}


@pytest.mark.parametrize("point", ["versioning:dvc-committed", "versioning:git-committed", "versioning:tagged"])
def test_a_commit_stopped_at_any_step_is_restored_exactly(versioning: tuple[Path, Any], point: str) -> None:
    root, v = versioning
    before = _picture(root, v)
    state = v.state()
    _write_outputs(root, 2)

    def boom(reached: str) -> None:
        if reached == point:
            raise RuntimeError(f"stopped at {point}")

    with tracepoints.injecting(boom), pytest.raises(RuntimeError):
        v.commit(STAGES, "second cycle", tag=TAG)
    v.restore(state)
    assert _picture(root, v) == before
    v.restore(state)  # restoring twice is safe
    assert _picture(root, v) == before


def test_the_branch_and_a_clean_data_check(versioning: tuple[Path, Any]) -> None:
    root, v = versioning
    assert v.branch() == "refs/heads/main"
    assert v.missing_data() == {"cache": [], "remote": []}
    assert v.clear_stale_locks() == []


def test_lost_cache_and_remote_are_seen(versioning: tuple[Path, Any]) -> None:
    root, v = versioning
    if isinstance(v, MemoryVersioning):
        v.cache.clear()
        assert v.remote is not None
        v.remote.clear()
    else:
        shutil.rmtree(root / ".dvc" / "cache")
        shutil.rmtree(root.parent / "remote")
        (root.parent / "remote").mkdir()
    missing = v.missing_data()
    assert set(missing["cache"]) == set(CACHED)
    assert set(missing["remote"]) == set(CACHED)


def test_a_tag_that_exists_is_refused_before_anything_changes(versioning: tuple[Path, Any]) -> None:
    root, v = versioning
    before = _picture(root, v)
    with pytest.raises(VersioningError, match="already exists"):
        v.commit(STAGES, "again", tag="modelcycle/taxifare/2015-02")
    assert _picture(root, v)["head"] == before["head"] and _picture(root, v)["tags"] == before["tags"]


def test_errors_are_modelcycle_errors(versioning: tuple[Path, Any]) -> None:
    _root, v = versioning
    with pytest.raises(ModelcycleError):
        v.commit(["no-such-stage"], "x")
