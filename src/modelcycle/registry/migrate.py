"""Copy a model's MLflow content from one store to another (``modelcycle backends migrate``).

What is copied, from a source client to a target client (both explicit ``MlflowClient``):

* the model's experiments (``<name>``, ``<name>-...``) with their tags; on a tracking server a new
  experiment gets no artifact location (the server's served artifacts);
* every run: name, status, start and end times, params, tags, each metric's full history (steps
  and timestamps, in ``log_batch`` chunks), its artifacts; parent runs are pointed at the copies;
  what a copied run received in the old store since is added by the next copy;
* MLflow 3 logged models (``models:/m-...``): created again with their artifacts (``MLmodel``
  re-stamped with the new ids), params and tags, finalized with their status (one still PENDING
  stays PENDING, and a later copy finalizes it once it has ended in the source);
* what ties runs to datasets and logged models (:mod:`modelcycle.registry.lineage`): each run's
  dataset inputs with their tags, its model inputs and outputs, each logged model's metrics;
* the registered model (description, tags), every version in order with the same number (a
  version deleted in the source leaves the same gap: a placeholder is created and deleted), its
  tags and description, pointing at the copied run and logged model; the aliases.

Run and logged-model ids change. Every copy carries ``modelcycle.migrated_from=<old id>`` (a run
tag, a logged model tag), which is also how a second copy finds what is already there (nothing is
copied twice). References inside the store are rewritten to the new ids: a version's
``mlflow_run_id`` tag, the ``run_id`` of each recorded alias move (:mod:`modelcycle.registry.history`),
``mlflow.parentRunId``. A run interrupted half-way is marked ``modelcycle.migrating`` and copied
again (the partial copy deleted) by the next migration.

The source store is only read. Errors are RegistryErrors (:func:`~modelcycle.registry.translate.translate`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelcycle.errors import RegistryError
from modelcycle.registry.history import MOVE_PREFIX
from modelcycle.registry.lineage import LineageCopy, dataset_inputs, log_datasets, missing_datasets
from modelcycle.registry.stores import artifact_files, experiment_folder, log_batches, redact_uri
from modelcycle.registry.translate import is_missing, translate

if TYPE_CHECKING:
    from mlflow import MlflowClient

MIGRATED_FROM = "modelcycle.migrated_from"
MIGRATING = "modelcycle.migrating"
#: the registered model's tag naming the store and model it was copied from
MODEL_ORIGIN = "modelcycle.migrated_from_store"
PARENT_TAG = "mlflow.parentRunId"
ENDED = ("FINISHED", "FAILED", "KILLED")  # a run's statuses once it has ended
PROGRESS_EVERY = 10  # runs between two progress lines of one experiment


@dataclass
class Tally:
    """What one migration did (or, dry, would do): per kind, copied and already there."""

    copied: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)     # old run id -> new
    models: dict[str, str] = field(default_factory=dict)   # old logged model id -> new

    def add(self, kind: str, copied: bool, n: int = 1) -> None:
        book = self.copied if copied else self.present
        book[kind] = book.get(kind, 0) + n

    def total_copied(self) -> int:
        return sum(self.copied.values())


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def model_experiments(client: MlflowClient, name: str) -> list[Any]:
    """The active experiments of model ``name`` in a store: ``<name>`` and ``<name>-...`` (the
    DVC experiments' ``<name>-experiments`` and any other modelcycle makes for it), oldest first."""
    from mlflow.entities import ViewType

    found = _pages(lambda t: client.search_experiments(view_type=ViewType.ACTIVE_ONLY, page_token=t))
    mine = [e for e in found if e.name == name or e.name.startswith(f"{name}-")]
    return sorted(mine, key=lambda e: (e.name != name, int(e.creation_time or 0), e.name))


def runs_of(client: MlflowClient, experiment_id: str) -> list[Any]:
    """Every active run of an experiment, oldest first."""
    from mlflow.entities import ViewType

    runs = list(_pages(lambda t: client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY,
                                                    max_results=1000, page_token=t)))
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def versions_of(client: MlflowClient, name: str) -> list[Any]:
    escaped = name.replace("'", "\\'")
    found = _pages(lambda t: client.search_model_versions(f"name = '{escaped}'", page_token=t))
    return sorted(found, key=lambda v: int(v.version))


def translate_move(value: str, runs: dict[str, str]) -> str:
    """A recorded alias move (a tag value) with its MLflow run id changed to the copy's."""
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if isinstance(data, dict) and data.get("run_id") in runs:
        data["run_id"] = runs[data["run_id"]]
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return value


def model_tags(tags: dict[str, str], runs: dict[str, str]) -> dict[str, str]:
    """A registered model's tags as the target keeps them (moves pointing at the copied runs)."""
    return {k: (translate_move(v, runs) if k.startswith(MOVE_PREFIX) else v) for k, v in tags.items()}


def version_tags(tags: dict[str, str], runs: dict[str, str]) -> dict[str, str]:
    """A version's tags as the target keeps them (``mlflow_run_id`` naming the copied run)."""
    out = dict(tags)
    if out.get("mlflow_run_id") in runs:
        out["mlflow_run_id"] = runs[out["mlflow_run_id"]]
    return out


def restamp(model_dir: Path, model_id: str, run_id: str | None, location: str) -> None:
    """Write the new ids into a copied model's ``MLmodel`` (as :func:`log_model_dir` does)."""
    from mlflow.models import Model

    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return
    model = Model.load(str(mlmodel))
    model.model_id = model_id
    model.model_uuid = model_id
    model.artifact_path = location
    if run_id:
        model.run_id = run_id
    model.save(str(mlmodel))


class StoreCopy:
    """One copy of model ``name`` from ``source`` to ``target`` (see the module doc).

    ``artifact_root``: where new experiments of the target keep artifacts (None: the server
    decides). ``origin``: what identifies the source model (kept on the target's registered model,
    so a model of that name that came from elsewhere is refused). ``say``: one line of progress."""

    def __init__(self, source: MlflowClient, target: MlflowClient, name: str, *, source_uri: str, target_uri: str,
                 artifact_root: str | None, origin: str, dry_run: bool = False,
                 say: Callable[[str], None] = lambda _line: None) -> None:
        self.source, self.target, self.name = source, target, name
        self.source_uri, self.target_uri = source_uri, target_uri
        self.artifact_root, self.origin = artifact_root, origin
        self.dry_run, self.say = dry_run, say
        self.tally = Tally()
        self._parents: dict[str, str] = {}  # new run id -> old parent id
        self._locations: dict[str, str] = {}  # old logged model artifact location -> old model id
        self._source_runs: set[str] = set()  # every run of the model's experiments in the source
        self._source_models: list[Any] = []  # every logged model of them

    # -- the whole copy ---------------------------------------------------------------------

    def run(self) -> Tally:
        where = redact_uri(self.target_uri)
        with translate(f"cannot copy model '{self.name}' to {where}"):
            self._refuse_foreign_model()
            for exp in model_experiments(self.source, self.name):
                self._experiment(exp)
            self._fix_parents()
            LineageCopy(self.source, self.target, self.tally.runs, self.tally.models, self._source_runs,
                        self._source_models, count=self._count, say=self.say, dry_run=self.dry_run).run()
            self._registry()
        return self.tally

    def _count(self, kind: str, copied: bool, n: int) -> None:
        if n:
            self.tally.add(kind, copied, n)

    def _refuse_foreign_model(self) -> None:
        theirs = self._target_model()
        if theirs is None:
            return
        came_from = (theirs.tags or {}).get(MODEL_ORIGIN)
        if came_from == self.origin:
            return
        count = len(versions_of(self.target, self.name))
        raise RegistryError(
            f"{redact_uri(self.target_uri)} already has a registered model '{self.name}' with {count} version(s) "
            + ("copied from another store" if came_from else "that modelcycle did not copy from this workspace")
            + "; copying would mix two models' versions and aliases",
            f"use another server, rename this model (`name:` in modelcycle.yaml) before migrating, or delete "
            f"the server's model '{self.name}' if it is a leftover (MLflow UI: Models, '{self.name}', Delete)")

    def _target_model(self) -> Any:
        try:
            return self.target.get_registered_model(self.name)
        except Exception as exc:
            if is_missing(exc):
                return None
            raise

    # -- experiments and runs -----------------------------------------------------------------

    def _experiment(self, exp: Any) -> None:
        there = self.target.get_experiment_by_name(exp.name)
        if there is not None and there.lifecycle_stage == "deleted":
            raise RegistryError(
                f"the experiment '{exp.name}' is deleted on {redact_uri(self.target_uri)}",
                f"restore it there (`mlflow experiments restore --experiment-id {there.experiment_id}`) "
                "or delete it for good (`mlflow gc`), then migrate again")
        tags = {k: v for k, v in (exp.tags or {}).items() if not k.startswith("mlflow.")}
        if there is None:
            self.tally.add("experiments", True)
            if self.dry_run:
                exp_id = None
            else:
                location = f"{self.artifact_root}/{experiment_folder(exp.name)}" if self.artifact_root else None
                exp_id = self.target.create_experiment(exp.name, artifact_location=location, tags=tags or None)
        else:
            self.tally.add("experiments", False)
            exp_id = there.experiment_id
            for key, value in tags.items():
                if (there.tags or {}).get(key) != value and not self.dry_run:
                    self.target.set_experiment_tag(exp_id, key, value)
        done = self._copied_runs(exp_id) if exp_id else {}
        runs = runs_of(self.source, exp.experiment_id)
        self._source_runs.update(r.info.run_id for r in runs)
        todo = [r for r in runs if r.info.run_id not in done]
        self.tally.runs.update({old: there.info.run_id for old, there in done.items()})
        for run in runs:  # dataset inputs a former copy lacks (made before they were copied)
            there = done.get(run.info.run_id)
            if there is not None:
                self._resync(run, there)
            datasets = missing_datasets(run, there)
            self._count("dataset inputs", False, len(dataset_inputs(run)) - len(datasets))
            self._count("dataset inputs", True, len(datasets))
            if there is not None and datasets and not self.dry_run:
                log_datasets(self.target, there.info.run_id, datasets)
        self.tally.add("runs", False, len(runs) - len(todo))
        self.say(f"experiment '{exp.name}': {len(runs)} run(s), {len(runs) - len(todo)} already there, "
                 f"{len(todo)} to copy")
        for i, run in enumerate(todo, 1):
            self.tally.add("runs", True)
            if not self.dry_run:
                assert exp_id is not None
                self._run(run, exp_id)
            if i % PROGRESS_EVERY == 0 and i < len(todo):
                self.say(f"  {i}/{len(todo)} runs of '{exp.name}' copied")
        self._logged_models(exp, exp_id)

    def _copied_runs(self, exp_id: str) -> dict[str, Any]:
        """old id -> the copy, of the runs a former migration copied into ``exp_id``; partial copies
        (a migration interrupted in the middle of a run) are deleted, to be copied again."""
        from mlflow.entities import ViewType

        done: dict[str, Any] = {}
        for run in _pages(lambda t: self.target.search_runs([exp_id], run_view_type=ViewType.ACTIVE_ONLY,
                                                            max_results=1000, page_token=t)):
            tags = run.data.tags
            if tags.get(MIGRATED_FROM):
                done[tags[MIGRATED_FROM]] = run
            elif tags.get(MIGRATING) and not self.dry_run:
                self.target.delete_run(run.info.run_id)
        return done

    def _run(self, run: Any, exp_id: str) -> None:
        from mlflow.entities import Metric, Param, RunTag

        old = run.info.run_id
        tags = {k: v for k, v in run.data.tags.items() if k != PARENT_TAG}
        copy = self.target.create_run(exp_id, start_time=run.info.start_time, run_name=run.info.run_name,
                                      tags={**tags, MIGRATING: old})
        new = copy.info.run_id
        log_batches(self.target, new, params=[Param(k, v) for k, v in run.data.params.items()],
                    metrics=[Metric(m.key, m.value, m.timestamp, m.step)
                             for key in run.data.metrics for m in self.source.get_metric_history(old, key)])
        log_datasets(self.target, new, missing_datasets(run, None))
        if self.source.list_artifacts(old):
            with tempfile.TemporaryDirectory(prefix="modelcycle-migrate-") as tmp:
                local = self.source.download_artifacts(old, "", tmp)
                self.target.log_artifacts(new, local)
        if run.data.tags.get(PARENT_TAG):
            self._parents[new] = run.data.tags[PARENT_TAG]
        if run.info.status in ENDED:
            self.target.set_terminated(new, run.info.status, end_time=run.info.end_time)
        self.target.log_batch(new, tags=[RunTag(MIGRATED_FROM, old)], synchronous=True)
        self.target.delete_tag(new, MIGRATING)
        self.tally.runs[old] = new

    def _resync(self, run: Any, there: Any) -> None:
        """What the old store's run received after a former copy (a run still RUNNING then, a
        process that kept logging there): the params, tags and metric points the copy lacks, and,
        while the copy has not ended, its end and new artifacts. What the copy has already is
        never overwritten (work on the new store may have changed it). Counted as "run updates"."""
        from mlflow.entities import Metric, Param, RunTag

        old, new = run.info.run_id, there.info.run_id
        params = [Param(k, v) for k, v in run.data.params.items() if k not in there.data.params]
        own = (PARENT_TAG, MIGRATED_FROM, MIGRATING)
        tags = [RunTag(k, v) for k, v in run.data.tags.items() if k not in own and k not in there.data.tags]
        points: list[Any] = []
        for key, value in run.data.metrics.items():
            if key in there.data.metrics and repr(there.data.metrics[key]) == repr(value):  # nan too
                continue  # the same latest value: nothing logged since
            have = {(m.step, m.timestamp, repr(m.value)) for m in self.target.get_metric_history(new, key)}
            points += [Metric(m.key, m.value, m.timestamp, m.step) for m in self.source.get_metric_history(old, key)
                       if (m.step, m.timestamp, repr(m.value)) not in have]
        live = there.info.status == "RUNNING"
        ended = live and run.info.status in ENDED
        new_files = self._new_artifacts(old, new) if live else []
        if not (params or tags or points or ended or new_files):
            return
        self.tally.add("run updates", True)
        if self.dry_run:
            return
        log_batches(self.target, new, params=params, tags=tags, metrics=points)
        for path in new_files:
            with tempfile.TemporaryDirectory(prefix="modelcycle-migrate-") as tmp:
                local = self.source.download_artifacts(old, path, tmp)
                self.target.log_artifact(new, local, str(Path(path).parent) if "/" in path else None)
        if ended:
            self.target.set_terminated(new, run.info.status, end_time=run.info.end_time)

    def _new_artifacts(self, old: str, new: str) -> list[str]:
        """The files of run ``old`` that run ``new`` does not have (paths in the run)."""
        return sorted(artifact_files(self.source, old).keys() - artifact_files(self.target, new).keys())

    def _fix_parents(self) -> None:
        for new, parent in self._parents.items():
            self.target.set_tag(new, PARENT_TAG, self.tally.runs.get(parent, parent))

    # -- logged models --------------------------------------------------------------------------

    def _logged_models(self, exp: Any, exp_id: str | None) -> None:
        models = list(_pages(lambda t: self.source.search_logged_models([exp.experiment_id], page_token=t)))
        self._source_models.extend(models)
        done: dict[str, Any] = {}
        if exp_id:
            for m in _pages(lambda t: self.target.search_logged_models([exp_id], page_token=t)):
                if (m.tags or {}).get(MIGRATED_FROM):
                    done[m.tags[MIGRATED_FROM]] = m
                elif (m.tags or {}).get(MIGRATING) and not self.dry_run:  # a partial copy: made again
                    self.target.delete_logged_model(m.model_id)
        for model in sorted(models, key=lambda m: (m.creation_timestamp or 0, m.model_id)):
            self._locations[model.artifact_location.rstrip("/")] = model.model_id
            if model.model_id in done:
                copy = done[model.model_id]
                self.tally.models[model.model_id] = copy.model_id
                self.tally.add("logged models", False)
                ended = _final(model)
                if _final(copy) is None and ended is not None and not self.dry_run:  # it ended since the copy
                    self.target.finalize_logged_model(copy.model_id, ended)
                continue
            self.tally.add("logged models", True)
            if not self.dry_run:
                assert exp_id is not None
                self._logged_model(model, exp_id)

    def _logged_model(self, model: Any, exp_id: str) -> None:
        from mlflow.artifacts import download_artifacts

        run_id = self.tally.runs.get(model.source_run_id) if model.source_run_id else None
        tags = {k: v for k, v in (model.tags or {}).items() if not k.startswith("mlflow.")}
        params = dict(model.params or {})
        copy = self.target.create_logged_model(exp_id, name=model.name, source_run_id=run_id,
                                               tags={**tags, MIGRATING: model.model_id}, params=params or None,
                                               model_type=model.model_type)
        if self.source.list_logged_model_artifacts(model.model_id):  # a model may have no files
            with tempfile.TemporaryDirectory(prefix="modelcycle-migrate-") as tmp:
                local = Path(download_artifacts(artifact_uri=model.artifact_location, dst_path=tmp,
                                                tracking_uri=self.source_uri))
                restamp(local, copy.model_id, run_id, copy.artifact_location)
                self.target.log_model_artifacts(copy.model_id, str(local))
        ended = _final(model)
        if ended is not None:  # one still being logged stays so; a later copy finalizes it as it ended
            self.target.finalize_logged_model(copy.model_id, ended)
        self.target.set_logged_model_tags(copy.model_id, {MIGRATED_FROM: model.model_id})
        self.target.delete_logged_model_tag(copy.model_id, MIGRATING)
        self.tally.models[model.model_id] = copy.model_id

    # -- the registered model -----------------------------------------------------------------

    def _registry(self) -> None:
        try:
            mine = self.source.get_registered_model(self.name)
        except Exception as exc:
            if is_missing(exc):
                self.say(f"no registered model '{self.name}' in the old store: no versions to copy")
                return
            raise
        theirs = self._target_model()
        tags = model_tags(dict(mine.tags or {}), self.tally.runs)
        if theirs is None:
            self.tally.add("registered models", True)
            if self.dry_run:
                theirs_versions: dict[str, Any] = {}
            else:
                self.target.create_registered_model(self.name, tags={**tags, MODEL_ORIGIN: self.origin},
                                                    description=mine.description or None)
                theirs_versions = {}
        else:
            self.tally.add("registered models", False)
            theirs_versions = {str(v.version): v for v in versions_of(self.target, self.name)}
        versions = versions_of(self.source, self.name)
        self.say(f"model '{self.name}': {len(versions)} version(s), "
                 f"{sum(str(v.version) in theirs_versions for v in versions)} already there")
        for mv in versions:
            if str(mv.version) in theirs_versions:
                self.tally.add("versions", False)
                continue
            self.tally.add("versions", True)
            if not self.dry_run:
                self._version(mv)
        newer = [n for n in theirs_versions if int(n) > max((int(v.version) for v in versions), default=0)]
        if newer:  # cycles ran on the target since a former migration: its aliases are not moved back
            self.say(f"model '{self.name}' has newer versions on the target ({', '.join(sorted(newer, key=int))}) "
                     "than in the old store: its aliases and tags are left as the target has them")
            return
        present = dict(theirs.aliases or {}) if theirs is not None else {}
        for alias, version in (mine.aliases or {}).items():
            same = str(present.get(alias)) == str(version)
            self.tally.add("aliases", not same)
            if not same and not self.dry_run:
                self.target.set_registered_model_alias(self.name, alias, str(version))
        if theirs is None or self.dry_run:
            return
        current = dict(theirs.tags or {})
        for key, value in tags.items():
            if current.get(key) != value:
                self.target.set_registered_model_tag(self.name, key, value)
        if (mine.description or "") != (theirs.description or ""):
            self.target.update_registered_model(self.name, description=mine.description or "")

    def _version(self, mv: Any) -> None:
        """Create version ``mv`` on the target with the same number: versions created meanwhile
        for numbers deleted in the source are deleted again (the same gap)."""
        old_model = getattr(mv, "model_id", None) or self._locations.get(mv.source.rstrip("/"))
        model_id = self.tally.models.get(old_model) if old_model else None
        run_id = self.tally.runs.get(mv.run_id) if mv.run_id else None
        source = mv.source
        if model_id:
            source = self.target.get_logged_model(model_id).artifact_location
        elif run_id and mv.source.startswith("runs:/"):
            source = mv.source.replace(f"runs:/{mv.run_id}", f"runs:/{run_id}", 1)
        elif run_id:
            root = self.source.get_run(mv.run_id).info.artifact_uri.rstrip("/")
            if mv.source.startswith(root + "/"):
                source = self.target.get_run(run_id).info.artifact_uri.rstrip("/") + mv.source[len(root):]
        tags = version_tags(dict(mv.tags or {}), self.tally.runs)
        wanted = int(mv.version)
        while True:
            made = self.target.create_model_version(
                self.name, source, run_id=run_id, tags=tags, description=mv.description or None,
                model_id=model_id if run_id else None, await_creation_for=300)
            number = int(made.version)
            if number == wanted:
                return
            if number > wanted:
                raise RegistryError(
                    f"version {wanted} of '{self.name}' cannot keep its number on {redact_uri(self.target_uri)}: "
                    f"the server gave it number {number} (a version {wanted} was made and deleted there before)",
                    f"delete the server's model '{self.name}' (MLflow UI: Models) and migrate again")
            self.target.delete_model_version(self.name, str(number))  # a gap of the source


def _final(model: Any) -> Literal["READY", "FAILED"] | None:
    """How a logged model ended: FAILED, READY (an unspecified status too), or None while it is
    PENDING (still being logged, or its process died before it finalized it)."""
    status = str(getattr(model.status, "name", model.status) or "").split(".")[-1].upper()
    return None if status == "PENDING" else "FAILED" if status == "FAILED" else "READY"
