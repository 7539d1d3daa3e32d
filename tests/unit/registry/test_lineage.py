"""What a migration compares before logging a run's dataset inputs and a logged model's metrics:
a dataset is one per name and digest in a run (tags kept), a metric is equal across stores when
its run is the copy of the same run (NaN included)."""

from __future__ import annotations

from types import SimpleNamespace

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, RunInputs

from modelcycle.registry.lineage import metric_key, missing_datasets


def run_with(*inputs: DatasetInput) -> SimpleNamespace:
    return SimpleNamespace(inputs=RunInputs(dataset_inputs=list(inputs)))


def dataset(name: str, digest: str, context: str) -> DatasetInput:
    return DatasetInput(Dataset(name, digest, "s3", '{"uri": "s3://b/x"}', '{"cols": 1}', '{"rows": 3}'),
                        [InputTag("mlflow.data.context", context)])


def test_only_the_datasets_the_copy_lacks_are_logged_with_their_tags():
    source = run_with(dataset("train", "d1", "training"), dataset("test", "d2", "evaluation"),
                      dataset("train", "d1", "training"))  # twice in the source: logged once
    copy = run_with(dataset("train", "d1", "training"))
    missing = missing_datasets(source, copy)
    assert [(d.dataset.name, d.dataset.digest, d.dataset.source, d.dataset.schema, d.dataset.profile,
             [(t.key, t.value) for t in d.tags]) for d in missing] == [
        ("test", "d2", '{"uri": "s3://b/x"}', '{"cols": 1}', '{"rows": 3}', [("mlflow.data.context", "evaluation")])]
    assert [d.dataset.name for d in missing_datasets(source, None)] == ["train", "test"]
    assert missing_datasets(SimpleNamespace(inputs=None), None) == []


def test_a_model_metric_matches_its_copy_by_the_copied_run_and_dataset():
    point = Metric("rmse", float("nan"), 1_000, 3, model_id="m-old", dataset_name="train", dataset_digest="d1",
                   run_id="old")
    copied = Metric("rmse", float("nan"), 1_000, 3, model_id="m-new", dataset_name="train", dataset_digest="d1",
                    run_id="new")
    assert metric_key(point, "new") == metric_key(copied, copied.run_id)
    assert metric_key(point, "new") != metric_key(Metric("rmse", 1.0, 1_000, 3, run_id="new"), "new")
