"""The copy of a model between two real MLflow stores (SQLite here; the server path is in
test_backends_migrate.py): runs with their metric histories and parent, a logged model with its
files, versions with their numbers (a deleted one leaves the same gap), aliases and the recorded
moves pointing at the copies; a second copy copies nothing; another model of that name is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelcycle.errors import RegistryError
from modelcycle.registry import history
from modelcycle.registry.migrate import MIGRATED_FROM, StoreCopy
from modelcycle.registry.mlflow import MlflowRegistry

pytestmark = pytest.mark.slow


def store(folder: Path, template_db: Path) -> MlflowRegistry:
    folder.mkdir()
    shutil.copy(template_db, folder / "mlflow.db")
    return MlflowRegistry(f"sqlite:///{folder / 'mlflow.db'}")


def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "weights.txt").write_text("42\n")
    return folder


def copier(old: MlflowRegistry, new: MlflowRegistry, lines: list[str], origin: str = "ws::fares") -> StoreCopy:
    return StoreCopy(old._client, new._client, "fares", source_uri=old.tracking_uri, target_uri=new.tracking_uri,
                     artifact_root=new.artifact_location, origin=origin, say=lines.append)


def test_a_model_is_copied_whole_with_its_numbers_and_only_once(tmp_path, template_db):
    old, new = store(tmp_path / "old", template_db), store(tmp_path / "new", template_db)
    parent = old.start_run(experiment="fares", run_name="cycle 2024-01")
    old.log_metric_steps(parent, [{"epoch": i, "loss": 1.0 / (i + 1)} for i in range(5)])
    old.log_params(parent, {"lr": 0.1})
    old.log_dict(parent, {"ok": True}, "validation.json")
    uri = old.log_model_dir(parent, str(model_dir(tmp_path)))
    old.end_run(parent, "FINISHED")
    child = old.start_run(experiment="fares-experiments", run_name="trial", parent_run_id=parent)
    old.end_run(child, "KILLED")
    v1 = old.register("fares", uri, parent, tags={"mlflow_run_id": parent})
    v2 = old.register("fares", uri, parent)
    v3 = old.register("fares", uri, parent)
    old.delete_version("fares", v2.version)
    old.set_alias("fares", "champion", v1.version)
    old.set_alias("fares", "challenger", v3.version)
    history.record(old, "fares", history.Move("champion", None, "1", history.now(), "cycle", run_id=parent))
    other = old.start_run(experiment="taxis", run_name="another model's")  # not this model's: stays
    old.end_run(other)

    lines: list[str] = []
    done = copier(old, new, lines).run()
    assert done.copied == {"experiments": 2, "runs": 2, "logged models": 1, "model links": 1,
                           "registered models": 1, "versions": 2, "aliases": 2}
    assert "experiment 'fares': 1 run(s), 0 already there, 1 to copy" in lines
    copy = done.runs[parent]
    run = new.get_run(copy)
    assert run.tags[MIGRATED_FROM] == parent and "modelcycle.migrating" not in run.tags
    assert (run.status, run.name, run.params) == ("FINISHED", "cycle 2024-01", {"lr": "0.1"})
    assert "validation.json" in run.artifacts
    steps = new._client.get_metric_history(copy, "loss")
    assert [(m.step, m.value) for m in steps] == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert new.get_run(done.runs[child]).parent_run_id == copy
    assert new.get_run(done.runs[child]).status == "KILLED"
    assert new._client.get_experiment_by_name("taxis") is None

    versions = new.list_versions("fares")
    assert [v.version for v in versions] == ["3", "1"]  # the gap of v2 kept
    assert all(v.run_id == copy for v in versions)
    assert new.get_version("fares", "1").tags["mlflow_run_id"] == copy
    assert new.get_alias("fares", "champion").version == "1" and new.get_alias("fares", "challenger").version == "3"
    assert history.moves(new, "fares")[-1].run_id == copy
    model_id = done.models[uri.removeprefix("models:/")]
    location = new._client.get_logged_model(model_id).artifact_location
    assert new.get_version("fares", "1").source == location
    stamped = Path(location.removeprefix("file://")) / "MLmodel"
    assert f"model_id: {model_id}" in stamped.read_text() and (stamped.parent / "weights.txt").read_text() == "42\n"

    again: list[str] = []
    second = copier(old, new, again).run()
    assert second.total_copied() == 0
    assert second.present == {"experiments": 2, "runs": 2, "logged models": 1, "model links": 1,
                              "registered models": 1, "versions": 2, "aliases": 2}
    assert [v.version for v in new.list_versions("fares")] == ["3", "1"]

    # cycles go on on the new store: a later copy does not move its aliases back
    v4 = new.register("fares", new.get_version("fares", "3").source, done.runs[parent])
    new.set_alias("fares", "champion", v4.version)
    later: list[str] = []
    assert copier(old, new, later).run().total_copied() == 0
    assert new.get_alias("fares", "champion").version == "4"
    assert any("has newer versions on the target (4)" in line for line in later), later

    with pytest.raises(RegistryError) as err:
        copier(old, new, [], origin="another-ws::fares").run()
    assert "already has a registered model 'fares' with 3 version(s) copied from another store" in err.value.message
    assert "delete the server's model 'fares'" in (err.value.hint or "")


def test_dataset_inputs_model_links_and_model_metrics_of_plain_mlflow_runs_are_copied(tmp_path, template_db):
    import pandas as pd
    from mlflow.data import from_pandas
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput, LoggedModelOutput, Metric

    old, new = store(tmp_path / "old", template_db), store(tmp_path / "new", template_db)
    client = old._client  # what a plain MLflow user calls, no modelcycle in between
    exp = client.create_experiment("fares", artifact_location=(tmp_path / "old" / "art").as_uri())
    frame = pd.DataFrame({"distance": [1.5, 3.0, 7.25], "fare": [6.0, 9.5, 21.0]})
    train = from_pandas(frame, source="s3://team/fares/2024-01.parquet", name="fares-2024-01", targets="fare")
    test = from_pandas(frame.tail(1), source="s3://team/fares/2024-02.parquet", name="fares-2024-02")
    trained = client.create_run(exp, run_name="train").info.run_id
    client.log_inputs(trained, [
        DatasetInput(train._to_mlflow_entity(), [InputTag("mlflow.data.context", "training")]),
        DatasetInput(test._to_mlflow_entity(), [InputTag("mlflow.data.context", "evaluation"), InputTag("k", "v")])])
    model = client.create_logged_model(exp, name="gbm", source_run_id=trained).model_id
    client.log_outputs(trained, [LoggedModelOutput(model, step=7)])
    client.log_batch(trained, metrics=[Metric("rmse", 2.5, 1_000, 7, model_id=model, dataset_name=train.name,
                                              dataset_digest=train.digest),
                                       Metric("rmse", 2.25, 2_000, 8, model_id=model)], synchronous=True)
    client.finalize_logged_model(model, "READY")
    pending = client.create_logged_model(exp, name="gbm-being-logged", source_run_id=trained).model_id  # not finalized
    client.set_terminated(trained)
    checked = client.create_run(client.create_experiment("fares-experiments"), run_name="evaluate").info.run_id
    client.log_inputs(checked, models=[LoggedModelInput(model)])
    client.log_metric(checked, "rmse", 3.0, timestamp=3_000, step=0, model_id=model, dataset_name=test.name,
                      dataset_digest=test.digest, synchronous=True)
    client.set_terminated(checked)

    before = (tmp_path / "old" / "mlflow.db").read_bytes()
    done = copier(old, new, []).run()
    assert {k: done.copied.get(k) for k in ("runs", "dataset inputs", "model links", "model metrics")} == {
        "runs": 2, "dataset inputs": 2, "model links": 2, "model metrics": 3}

    def inputs(reg: MlflowRegistry, run_id: str) -> list[tuple]:
        return sorted((d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source, d.dataset.schema,
                       d.dataset.profile, sorted((t.key, t.value) for t in d.tags))
                      for d in reg._client.get_run(run_id).inputs.dataset_inputs)

    copy_trained, copy_checked, copy_model = done.runs[trained], done.runs[checked], done.models[model]
    assert inputs(new, copy_trained) == inputs(old, trained)
    assert [d[-1] for d in inputs(new, copy_trained)] == [[("mlflow.data.context", "training")],
                                                          [("k", "v"), ("mlflow.data.context", "evaluation")]]
    target = new._client
    assert [(o.model_id, o.step) for o in target.get_run(copy_trained).outputs.model_outputs] == [(copy_model, 7)]
    assert [m.model_id for m in target.get_run(copy_checked).inputs.model_inputs] == [copy_model]
    assert target.get_run(copy_checked).outputs.model_outputs == []

    def model_metrics(reg: MlflowRegistry, model_id: str, runs: dict[str, str]) -> list[tuple]:
        return sorted((m.key, m.value, m.step, m.timestamp, runs.get(m.run_id, m.run_id), m.dataset_name,
                       m.dataset_digest) for m in reg._client.get_logged_model(model_id).metrics)

    assert model_metrics(new, copy_model, {}) == model_metrics(old, model, done.runs)
    assert [target.get_logged_model(done.models[m]).status.name for m in (model, pending)] == ["READY", "PENDING"]
    assert model_metrics(new, copy_model, {})[0] == ("rmse", 2.25, 8, 2_000, copy_trained, None, None)
    # the run's own history has each point once (a model metric is also a point of its run)
    assert [(m.step, m.value) for m in target.get_metric_history(copy_trained, "rmse")] == [(7, 2.5), (8, 2.25)]
    assert [(m.step, m.value) for m in target.get_metric_history(copy_checked, "rmse")] == [(0, 3.0)]

    again = copier(old, new, []).run()
    assert again.total_copied() == 0
    assert {k: again.present.get(k) for k in ("dataset inputs", "model links", "model metrics")} == {
        "dataset inputs": 2, "model links": 2, "model metrics": 3}
    assert len(target.get_run(copy_trained).outputs.model_outputs) == 1
    assert len(target.get_logged_model(copy_model).metrics) == 3
    assert (tmp_path / "old" / "mlflow.db").read_bytes() == before  # the old store is only read

    # logged in the old store after a copy (or missed by an older modelcycle): the next copy adds just that
    extra = from_pandas(frame.head(1), source="s3://team/fares/holdout.parquet", name="fares-holdout")
    client.log_inputs(checked, [DatasetInput(extra._to_mlflow_entity(), [InputTag("mlflow.data.context", "test")])])
    client.finalize_logged_model(pending, "FAILED")  # the model being logged ended, after the copy
    later = copier(old, new, []).run()
    assert later.copied == {"dataset inputs": 1}
    assert target.get_logged_model(done.models[pending]).status.name == "FAILED"
    assert inputs(new, copy_checked) == inputs(old, checked)


def test_what_a_run_received_in_the_old_store_after_a_copy_is_added_by_the_next(tmp_path, template_db):
    """A run still running when it was copied goes on logging in the old store: the next copy
    adds its new params, tags, metric points, files and its end, and keeps what the copy was
    given on the new store since."""
    old, new = store(tmp_path / "old", template_db), store(tmp_path / "new", template_db)
    live = old.start_run(experiment="fares", run_name="cycle 2024-01")
    old.log_metric_steps(live, [{"epoch": 0, "loss": 1.0, "r2": float("nan")}])  # a NaN is the same NaN
    old.log_params(live, {"lr": 0.1})
    old._client.set_tag(live, "stage", "training")
    old.log_dict(live, {"ok": True}, "validation.json")
    first = copier(old, new, []).run()
    copy = first.runs[live]
    assert new.get_run(copy).status == "RUNNING"

    new._client.set_tag(copy, "stage", "moved")  # work on the new store since the copy
    old.log_metric_steps(live, [{"epoch": 1, "loss": 0.5}])
    old.log_params(live, {"trees": 40})
    old._client.set_tag(live, "stage", "scored")
    old._client.set_tag(live, "modelcycle.decision", "promote")
    old.log_dict(live, {"rows": 3}, "reports/rows.json")
    old.end_run(live, "FINISHED")
    later = copier(old, new, []).run()
    assert later.copied == {"run updates": 1}
    run = new.get_run(copy)
    assert run.status == "FINISHED" and run.params == {"lr": "0.1", "trees": "40"}
    assert (run.tags["modelcycle.decision"], run.tags["stage"]) == ("promote", "moved")
    assert [(m.step, m.value) for m in new._client.get_metric_history(copy, "loss")] == [(0, 1.0), (1, 0.5)]
    assert len(new._client.get_metric_history(copy, "r2")) == 1
    assert [a.path for a in new._client.list_artifacts(copy, "reports")] == ["reports/rows.json"]
    assert [a.path for a in new._client.list_artifacts(copy) if not a.is_dir] == ["validation.json"]
    assert copier(old, new, []).run().total_copied() == 0
