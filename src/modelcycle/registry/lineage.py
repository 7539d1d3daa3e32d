"""What ties a model's runs to datasets and logged models, copied by ``backends migrate``
(:class:`~modelcycle.registry.migrate.StoreCopy`):

* a run's dataset inputs (``mlflow.log_input``): the dataset (name, digest, source type, source,
  schema, profile) and the input's tags (``mlflow.data.context``: ``training``, ``evaluation``...);
* a run's links to logged models: its model inputs (``run.inputs.model_inputs``) and outputs with
  their step (``run.outputs.model_outputs``);
* a logged model's metrics (``log_metric``/``log_batch`` with ``model_id``): key, value, step,
  timestamp, the run that logged them and the dataset name and digest where recorded.

Each is compared with what the target already has, so a second copy logs nothing and a copy made
before these were copied is completed. A dataset is one per name and digest in a run, as MLflow
keeps it. A link or metric naming a run or logged model outside the model's experiments (or one
deleted) is not copied: the target has nothing to point it at; it is said, not hidden.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: the tally's kinds of this module, in the order the CLI prints them
KINDS = ("dataset inputs", "model links", "model metrics")


def dataset_key(item: Any) -> tuple[str, str]:
    """What makes a run's dataset input one in MLflow: the dataset's name and digest."""
    return item.dataset.name, item.dataset.digest


def missing_datasets(source_run: Any, target_run: Any | None) -> list[Any]:
    """The dataset inputs of ``source_run`` that ``target_run`` (its copy, None: not made yet)
    lacks, as new entities (the same dataset and input tags)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    there = {dataset_key(d) for d in dataset_inputs(target_run)} if target_run is not None else set()
    out: list[Any] = []
    for item in dataset_inputs(source_run):
        if dataset_key(item) in there:
            continue
        there.add(dataset_key(item))
        ds = item.dataset
        out.append(DatasetInput(Dataset(ds.name, ds.digest, ds.source_type, ds.source, ds.schema, ds.profile),
                                [InputTag(t.key, t.value) for t in item.tags or []]))
    return out


def dataset_inputs(run: Any) -> list[Any]:
    """A run's dataset inputs (none for a run without inputs)."""
    return list(getattr(run.inputs, "dataset_inputs", None) or []) if run.inputs is not None else []


def log_datasets(client: MlflowClient, run_id: str, inputs: list[Any]) -> None:
    from mlflow.utils.validation import MAX_DATASETS_PER_BATCH

    for start in range(0, len(inputs), MAX_DATASETS_PER_BATCH):
        client.log_inputs(run_id, datasets=inputs[start:start + MAX_DATASETS_PER_BATCH])


def metric_key(m: Any, run_id: str | None) -> tuple[Any, ...]:
    """A logged model's metric as compared between stores (``run_id``: the run's id in that store)."""
    value = "nan" if math.isnan(m.value) else float(m.value)
    return m.key, value, int(m.step or 0), int(m.timestamp or 0), run_id, m.dataset_name, m.dataset_digest


@dataclass
class LineageCopy:
    """The links and model metrics of one copy: ``runs``/``models`` map the source's ids to the
    target's (what a dry run has not copied is absent); ``source_runs``/``source_models`` are every
    run and logged model of the model's experiments in the source."""

    source: MlflowClient
    target: MlflowClient
    runs: dict[str, str]
    models: dict[str, str]
    source_runs: set[str]
    source_models: list[Any]
    count: Callable[[str, bool, int], None]
    say: Callable[[str], None]
    dry_run: bool = False
    outside: set[str] = field(default_factory=set)  # ids the target has nothing for

    def run(self) -> None:
        for old in sorted(self.source_runs):
            self._links(old)
        for model in self.source_models:
            self._metrics(model)
        if self.outside:
            self.say(f"not copied: links and metrics naming {len(self.outside)} run(s) or logged model(s) outside "
                     f"this model's experiments or deleted ({', '.join(sorted(self.outside)[:5])}"
                     f"{', ...' if len(self.outside) > 5 else ''})")

    def _model(self, old: str) -> str | None:
        """The target's id of logged model ``old``; "" when not copied yet (a dry run); None when
        the target has none to link (a model outside the copy)."""
        if old in self.models:
            return self.models[old]
        if any(m.model_id == old for m in self.source_models):
            return ""
        self.outside.add(old)
        return None

    def _links(self, old: str) -> None:
        from mlflow.entities import LoggedModelInput, LoggedModelOutput

        run = self.source.get_run(old)  # model inputs only come with get_run, not search_runs
        inputs = [m.model_id for m in (run.inputs.model_inputs if run.inputs else None) or []]
        outputs = [(o.model_id, int(o.step or 0)) for o in (run.outputs.model_outputs if run.outputs else None) or []]
        if not inputs and not outputs:
            return
        new = self.runs.get(old)
        have_in: set[str] = set()
        have_out: set[tuple[str, int]] = set()
        if new:
            there = self.target.get_run(new)
            have_in = {m.model_id for m in (there.inputs.model_inputs if there.inputs else None) or []}
            have_out = {(o.model_id, int(o.step or 0))
                        for o in (there.outputs.model_outputs if there.outputs else None) or []}
        want_in = [m for m in (self._model(i) for i in dict.fromkeys(inputs)) if m is not None]
        want_out = [(m, step) for m, step in ((self._model(i), s) for i, s in dict.fromkeys(outputs))
                    if m is not None]
        new_in = [m for m in want_in if not m or m not in have_in]
        new_out = [(m, s) for m, s in want_out if not m or (m, s) not in have_out]
        self.count("model links", False, len(want_in) + len(want_out) - len(new_in) - len(new_out))
        self.count("model links", True, len(new_in) + len(new_out))
        if self.dry_run or not new or not (new_in or new_out):
            return
        if new_in:
            self.target.log_inputs(new, models=[LoggedModelInput(m) for m in new_in])
        if new_out:
            self.target.log_outputs(new, [LoggedModelOutput(m, step=s) for m, s in new_out])

    def _metrics(self, model: Any) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        points = list(model.metrics or [])
        if not points:
            return
        new = self.models.get(model.model_id)
        there = ({metric_key(m, m.run_id) for m in self.target.get_logged_model(new).metrics or []}
                 if new else set())
        todo: dict[str, list[Any]] = {}
        present = missing = 0
        for m in points:
            if m.run_id not in self.source_runs:
                self.outside.add(m.run_id)
                continue
            run = self.runs.get(m.run_id, "")
            if run and metric_key(m, run) in there:
                present += 1
                continue
            missing += 1
            todo.setdefault(run, []).append(Metric(m.key, m.value, m.timestamp, m.step, model_id=new,
                                                   dataset_name=m.dataset_name, dataset_digest=m.dataset_digest))
        self.count("model metrics", False, present)
        self.count("model metrics", True, missing)
        if self.dry_run or not new:
            return
        for run, metrics in todo.items():
            for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
                # also a point of the run's history, which the run's copy has already: MLflow keeps it once
                self.target.log_batch(run, metrics=metrics[start:start + MAX_METRICS_PER_BATCH], synchronous=True)
