"""Several challengers at once (params.yaml ``candidates:``), trained through a Prefect task runner.

Each candidate is ``model:`` with its overrides. They train, and are scored on the held-out rows,
through Prefect's ThreadPoolTaskRunner (``orchestration.task_runner: threads``, the default) or
prefect-dask's DaskTaskRunner (``dask``: a LocalCluster of ``dask_workers`` processes, or the
scheduler at ``dask_address``). A Dask worker gets the trainer's kind, the
:class:`~modelcycle.steps.train.TrainSpec` and the rows (pickled), never the cycle's services,
and fits with one thread (LightGBM and BLAS) so that workers on one machine do not fight over
its cores. The gate (:func:`modelcycle.gate.choose`) then picks one; every candidate is logged
as a nested MLflow run of the cycle's run (:func:`log_runs`).

Outside a cycle, dvc.yaml's train stage (``modelcycle step train``: ``dvc repro``, ``dvc exp
run``) trains the candidates one after the other in its own process and lets the gate choose
the same way (:func:`step_train`). Before a cycle starts, :func:`modelcycle.lifecycle.runners.preflight`
checks that a configured Dask scheduler answers.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from modelcycle.config import Workspace
from modelcycle.errors import ConfigError, ModelcycleError, WorkspaceError
from modelcycle.gate import Choice, Policy
from modelcycle.lifecycle import runners, stages
from modelcycle.steps.evaluate import Scores
from modelcycle.steps.train import TrainSpec, Trained

TASK: dict[str, Any] = {"cache_policy": NONE, "persist_result": False}
CANDIDATE_TAG = "modelcycle.candidate"


@dataclass
class Trial:
    """One candidate, trained and scored on the held-out rows."""

    name: str
    params: dict[str, Any]
    trained: Trained
    scores: Scores
    seconds: float  # fit and scoring, in its worker


def specs(ws: Workspace) -> dict[str, TrainSpec]:
    """Each candidate's training spec (``model:`` with its overrides), every override checked
    against the estimator before anything trains: an error names the candidate and the key."""
    base = stages.train_spec(ws)
    out: dict[str, TrainSpec] = {}
    for name, overrides in ws.params.candidates.items():
        spec = replace(base, params={**base.params, **overrides})
        if ws.config.model.trainer == "sklearn":
            _check(spec, name, overrides)
        out[name] = spec
    return out


def _check(spec: TrainSpec, name: str, overrides: dict[str, Any]) -> None:
    from modelcycle.steps.imports import resolve
    from modelcycle.steps.train import check_params

    cls = resolve(spec.estimator, what="estimator", field="model.estimator")
    try:
        check_params(cls, spec.params, spec.estimator)
    except ConfigError as exc:
        message = exc.message
        for key in overrides:  # the key is the candidate's own: name it where the user wrote it
            message = message.replace(f"params.yaml `model.{key}`", f"params.yaml `candidates.{name}.{key}`")
        hint = f"fix `candidates.{name}` (or `model:`) in params.yaml; {exc.hint or ''}".rstrip("; ")
        raise ConfigError(f"params.yaml candidate '{name}': {message}", hint) from exc


def train_one(name: str, kind: str, spec: TrainSpec, train_rows: pd.DataFrame, holdout: pd.DataFrame,
              metric: str, threads: int | None) -> Trial:
    """Fit one candidate and score it on ``holdout``: runs in a thread or a Dask worker process."""
    from modelcycle.steps import evaluate as ev
    from modelcycle.steps.trainers import Scorable, trainer_for

    started = time.perf_counter()
    if spec.features and spec.root:  # a features.py in the workspace: importable in this process too
        from modelcycle.steps.imports import load_from

        module = spec.features.partition(":")[0] if ":" in spec.features else spec.features.rpartition(".")[0]
        load_from(Path(spec.root), module.split(".")[0])
    limit: Any = contextlib.nullcontext()
    if threads is not None:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        limit = threadpool_limits(limits=threads)
    trainer = trainer_for(kind)
    with limit:
        trained = trainer.fit(train_rows, spec)
        scores = ev.evaluate(Scorable(trainer, trained.model), holdout, target=spec.target, metric=metric)
    return Trial(name, dict(spec.params), trained, scores, time.perf_counter() - started)


train_candidate_task = task(name="train-candidate", **TASK)(train_one)


def task_runner(ws: Workspace, k: int) -> tuple[Any, int | None]:
    """The configured task runner (not started) and the threads each fit may use (None: the
    trainer's own default)."""
    o = ws.config.orchestration
    if o.task_runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=k), None
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise ConfigError(
            "modelcycle.yaml orchestration.task_runner is 'dask', but prefect-dask is not installed",
            runners.DASK_EXTRA) from exc
    if o.dask_address:
        return DaskTaskRunner(address=o.dask_address), 1
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": o.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None}), 1


def train_all(ws: Workspace, train_rows: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, Trial]:
    """Train and score every candidate through the configured task runner; the first failure
    raises, naming its candidate."""
    plans = specs(ws)
    runner, threads = task_runner(ws, len(plans))
    kind, metric = ws.config.model.trainer, ws.config.metric
    trials: dict[str, Trial] = {}
    try:
        with runner:
            futures = {name: runner.submit(train_candidate_task, parameters={
                "name": name, "kind": kind, "spec": spec, "train_rows": train_rows, "holdout": holdout,
                "metric": metric, "threads": threads}) for name, spec in plans.items()}
            for name, future in futures.items():
                try:
                    trials[name] = future.result()
                except ModelcycleError as exc:
                    raise type(exc)(f"candidate '{name}': {exc.message}", exc.hint) from exc
    except ModelcycleError:
        raise
    except OSError as exc:  # a scheduler that does not answer, a LocalCluster that cannot start
        address = ws.config.orchestration.dask_address
        if address is None:
            raise ConfigError(f"the Dask LocalCluster for the candidates did not start: {exc}",
                              "set orchestration.task_runner: threads, or fewer orchestration.dask_workers") from exc
        raise ConfigError(f"the Dask scheduler at {address} (orchestration.dask_address) cannot be reached: {exc}",
                          "start the scheduler, fix orchestration.dask_address, or set it to null "
                          "for a LocalCluster on this machine") from exc
    return trials


def log_runs(registry: Any, experiment: str, parent_run_id: str, trials: dict[str, Trial], choice: Choice) -> None:
    """One nested MLflow run per candidate under the cycle's run: its name and params, its score,
    its interval at the corrected level, whether it was chosen."""
    verdicts = {c.name: c for c in choice.candidates}
    for name, trial in trials.items():
        verdict = verdicts[name].to_dict()
        run_id = registry.start_run(experiment=experiment, run_name=f"candidate {name}",
                                    parent_run_id=parent_run_id,
                                    tags={CANDIDATE_TAG: name, "modelcycle.chosen": str(name == choice.name).lower(),
                                          "modelcycle.decision": verdict["outcome"]})
        registry.log_params(run_id, {f"model.{k}": v for k, v in trial.params.items()})
        metrics: dict[str, float] = {trial.scores.metric: trial.scores.value, "fit_seconds": trial.trained.fit_seconds,
                   **{k: float(verdict[k]) for k in ("improvement", "ci_low", "ci_high", "confidence") if k in verdict}}
        registry.log_metrics(run_id, metrics)
        registry.end_run(run_id)


@dataclass
class FannedOut:
    trained: Trained
    scores: Scores
    choice: Choice
    seconds: float  # the fan-out's wall time


def fan_out(svc: Any, run_id: str, split: Any, champion_scores: Any, *, data_problem: str | None,
            champion_problem: str | None) -> FannedOut:
    """Train every candidate, let the gate choose one (against the champion's scores, which
    ``champion_scores()`` waits for), save the chosen one as the cycle's challenger, and log each
    candidate's nested run."""
    from modelcycle.gate import choose
    from modelcycle.lifecycle.act import policy_of

    started = time.perf_counter()
    trials = train_all(svc.ws, split.train, split.holdout)
    seconds = time.perf_counter() - started
    champion = champion_scores()
    choice = choose(champion, {name: t.scores for name, t in trials.items()}, policy_of(svc),
                    data_problem=data_problem, champion_problem=champion_problem)
    chosen = trials[choice.name]
    stages.save_trained(svc.ws, chosen.trained, split.train, svc.registry.save_model)
    log_runs(svc.registry, svc.name, run_id, trials, choice)
    return FannedOut(chosen.trained, chosen.scores, choice, seconds)


def train_stage(ws: Workspace, train_rows: pd.DataFrame, holdout: pd.DataFrame, save_model: Any,
                champion: Scores | None, policy: Policy, *, data_problem: str | None = None,
                champion_problem: str | None = None) -> tuple[Choice, dict[str, Trial]]:
    """The train stage of dvc.yaml (``modelcycle step train``) with candidates: train and score
    each one on ``holdout`` in this process, one after the other (no Prefect flow, no task
    runner: ``orchestration`` is for cycles), let the gate choose as a cycle does (the same
    held-out rows, the champion's scores, the same correction) and save the chosen one as
    models/challenger."""
    from modelcycle.gate import choose

    kind, metric = ws.config.model.trainer, ws.config.metric
    trials: dict[str, Trial] = {}
    for name, spec in specs(ws).items():
        try:
            trials[name] = train_one(name, kind, spec, train_rows, holdout, metric, None)
        except ModelcycleError as exc:
            raise type(exc)(f"candidate '{name}': {exc.message}", exc.hint) from exc
    choice = choose(champion, {name: t.scores for name, t in trials.items()}, policy,
                    data_problem=data_problem, champion_problem=champion_problem)
    stages.save_trained(ws, trials[choice.name].trained, train_rows, save_model)
    return choice, trials


def step_train(ws: Workspace, train_rows: pd.DataFrame, holdout: pd.DataFrame, save_model: Any) -> str:
    """``modelcycle step train`` with candidates: :func:`train_stage` against the champion the
    evaluate stage scores (the registry's champion alias), with the gate's settings and the
    window's validation report (reports/validation.json) as a cycle has them; returns the
    stage's summary: the choice, then a line per candidate."""
    from types import SimpleNamespace

    from modelcycle.lifecycle import checks, experiments
    from modelcycle.lifecycle.act import policy_of
    from modelcycle.registry.base import CHAMPION
    from modelcycle.registry.workspace import open_registry

    home = experiments.home(ws)
    registry = open_registry(home)
    champion = experiments.champion_scores(ws, registry, holdout)
    facade: Any = SimpleNamespace(ws=ws, registry=registry, name=ws.config.name)  # what the two helpers read
    champion_problem = None
    if champion is None:
        with contextlib.suppress(ModelcycleError):
            champion_problem = checks.champion_problem(facade, registry.get_alias(ws.config.name, CHAMPION))
    choice, trials = train_stage(ws, train_rows, holdout, save_model, champion, policy_of(facade),
                                 data_problem=_data_problem(ws), champion_problem=champion_problem)
    chosen = trials[choice.name]
    fit = sum(t.seconds for t in trials.values())
    head = (f"trained {len(trials)} candidates of {stages.model_label(ws)} on {chosen.trained.rows} rows in "
            f"{fit:.1f}s; '{choice.name}' ({choice.decision.outcome.value}) -> {stages.MODEL}")
    lines = [head, *(f"  {r}" for r in choice.decision.reasons)]
    from modelcycle.versioning import setup

    if not setup.tracks_candidates(ws.root):
        lines.append("note: dvc.yaml's train stage does not depend on params.yaml's candidates, so `dvc repro` "
                     "does not rerun it when they change: `modelcycle doctor` adds it")
    return "\n".join(lines)


def _data_problem(ws: Workspace) -> str | None:
    """Why the window's data is suspect, from the validate stage's report (None without one)."""
    import json

    from modelcycle.steps.validation_report import ValidationReport

    path = ws.path(stages.VALIDATION)
    if not path.is_file():
        return None
    try:
        report = ValidationReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:  # a JSONDecodeError is a ValueError
        raise WorkspaceError(f"{path} cannot be read as a validation report: {exc}",
                             "it is the validate stage's output: run `modelcycle step validate` "
                             "(or `dvc repro`) to write it again") from None
    return report.suspect(ws.config.data.max_invalid_fraction)
