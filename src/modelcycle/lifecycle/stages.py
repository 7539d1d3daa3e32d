"""The cycle's stages as file-producing functions.

Each stage reads what the one before wrote and writes the outputs that the workspace's
``dvc.yaml`` declares, so DVC can version them (``dvc commit``) and ``dvc repro`` / ``dvc exp
run`` can re-run them (through ``modelcycle step <stage>``). The Prefect flow calls the same
functions and passes the frames along in memory as well.
"""

from __future__ import annotations

import contextlib
import json
import re
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from modelcycle import sources
from modelcycle.config import PARAMS_FILE, Window, Workspace
from modelcycle.errors import ConfigError, EmptyWindowError, disk_cause
from modelcycle.lifecycle import datasets, runtime
from modelcycle.sources import Source
from modelcycle.steps import evaluate as ev
from modelcycle.steps import split as sp
from modelcycle.steps import train as tr
from modelcycle.steps.trainers import Scorable, Trainer, trainer_for
from modelcycle.steps import validate as va
from modelcycle.versioning import partitions as parts

if TYPE_CHECKING:
    from modelcycle.registry.base import ModelWriter

log = logging.getLogger(__name__)

#: The data outputs of a workspace made now (:mod:`modelcycle.lifecycle.datasets`: a month's rows
#: once in ``data/raw/``, the sets as manifests); :func:`datasets.layout` says which a workspace has.
RAW = datasets.PARTITIONED.raw
CLEAN = datasets.PARTITIONED.clean
TRAIN = datasets.PARTITIONED.train
HOLDOUT = datasets.PARTITIONED.holdout
MODEL = "models/challenger"
VALIDATION = "reports/validation.json"
METRICS = "reports/metrics.json"
LEARNING_CURVE = "reports/learning_curve.csv"  # dvc.yaml's plots (modelcycle.versioning.setup.plots)
PREDICTIONS = "reports/predictions.csv"
STAGES = ["fetch", "validate", "prepare", "train", "evaluate"]


class BackgroundWrites:
    """Writes stage outputs on a spare core while the cycle goes on (training uses one core).
    ``close()`` (also on an error) makes sure every write is on disk.

    Made with ``hold=True``, it keeps the writes it is given until :meth:`release` (or
    :meth:`wait`): the cycle holds what its fetch, validation and split write (encoding the new
    month, hashing every row for the manifests' digests: seconds of one core at ten million rows)
    until the challenger's fit, which leaves a core idle, instead of letting them compete with
    the validation the cycle waits for."""

    def __init__(self, *, hold: bool = False) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelcycle-writes")
        self._pending: list[Any] = []
        self._held: list[Any] | None = [] if hold else None

    def submit(self, fn: Any) -> None:
        if self._held is not None:
            self._held.append(fn)
        else:
            self._pending.append(self._pool.submit(fn))

    def release(self) -> None:
        """Start the writes held so far, in the order they came; later ones start at once."""
        held, self._held = self._held, None
        for fn in held or ():
            self.submit(fn)

    def wait(self) -> None:
        """Block until every write is on disk (held ones released first); re-raise the first write error."""
        self.release()
        pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def _write_parquet(ws: Workspace, frame: pd.DataFrame, rel: str, writes: BackgroundWrites | None = None) -> None:
    """Write ``frame`` to ``rel``: in the background when ``writes`` is given, else now."""
    path = ws.path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        try:
            frame.to_parquet(path, index=False)
        except OSError as exc:  # Arrow's errors name no file: say which one
            disk = disk_cause(exc) or exc
            raise OSError(disk.errno, disk.strerror or str(exc), str(path)) from exc

    if writes is not None:
        writes.submit(write)
    else:
        write()


def _read(ws: Workspace, which: str, stage: str) -> pd.DataFrame:
    """The ``which`` rows (raw, clean, train, holdout) the ``stage`` reads, in the workspace's layout."""
    rel = datasets.layout(ws).path(which)
    if not ws.path(rel).exists():
        raise ConfigError(f"{rel} does not exist, so the '{stage}' stage has no input",
                          "run the stages before it first: `dvc repro` runs them in order")
    return datasets.rows(ws, which)


def write_json(ws: Workspace, rel: str, payload: dict[str, Any]) -> None:
    path = ws.path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def set_window(ws: Workspace, window: Window) -> Workspace:
    """Record the cycle's window in params.yaml, editing only its top-level ``window:`` line (the
    user's comments, order and formatting stay as they are); the line is added if missing."""
    path = ws.path(PARAMS_FILE)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if ws.params.window != window.label or _WINDOW_LINE.search(text) is None:
        path.write_text(with_window(text, window.label), encoding="utf-8")
    return ws.reload_params()


_WINDOW_LINE = re.compile(r"^window:[^\n#]*?(?P<comment>[ \t]+#[^\n]*)?$", re.MULTILINE)


def with_window(text: str, label: str) -> str:
    """``text`` (a params.yaml) with its top-level ``window:`` set to ``label``, quoted when YAML
    would read it as something other than a string (a date, a number)."""
    value = yaml.safe_dump(label, default_flow_style=True).splitlines()[0]
    if _WINDOW_LINE.search(text):
        return _WINDOW_LINE.sub(lambda m: f"window: {value}{m.group('comment') or ''}", text, count=1)
    return text + ("" if not text or text.endswith("\n") else "\n") + f"window: {value}\n"


def params_window(ws: Workspace) -> Window:
    if not ws.params.window:
        raise ConfigError(f"{PARAMS_FILE} has no `window:`",
                          "set one (window: 2015-03) or run `modelcycle run --window 2015-03`")
    return Window.parse(ws.params.window)


def workspace_code(ws: Workspace) -> list[Path]:
    """The user's own modules a model needs: the feature builder's module when it lives in the
    workspace (``features:build`` for a ``features.py`` beside modelcycle.yaml). It is imported
    from there (the workspace does not go on ``sys.path``) and ships inside the logged model."""
    from modelcycle.steps.imports import load_from

    builder = ws.config.features.builder
    if not builder:
        return []
    module = builder.partition(":")[0] if ":" in builder else builder.rpartition(".")[0]
    found = load_from(ws.root, module.split(".")[0])
    return [found] if found is not None else []


def warm_up(ws: Workspace) -> None:
    """Import the estimator's and the feature builder's modules, the trainer, MLflow's model code
    and the source's query engine now, in this thread: a cycle would import them inside its first
    read, fit or save (seconds of one core), and there the challenger's fit and the champion's
    scoring run in two threads at once. Two threads importing one library at once can each find
    the other's modules half initialised (LightGBM's ``cannot import name 'CVBooster' from
    partially initialized module``). Once imported, calling this again costs nothing."""
    from modelcycle.errors import ConfigError
    from modelcycle.steps.imports import resolve

    workspace_code(ws)
    estimator = ws.config.model.estimator if ws.config.model.trainer == "sklearn" else None
    for path, what in ((estimator, "estimator"), (ws.config.features.builder, "feature builder")):
        if path:
            with contextlib.suppress(ConfigError):  # the cycle reports it where it happens
                resolve(path, what=what)
    if ws.config.model.trainer != "sklearn":
        with contextlib.suppress(ConfigError):  # its package missing (PyTorch): the cycle says so where it trains
            trainer(ws)
    import mlflow.pyfunc  # noqa: F401

    sources.warm_up(ws.config.source.kind)


def train_spec(ws: Workspace) -> tr.TrainSpec:
    workspace_code(ws)
    c = ws.config
    return tr.TrainSpec(
        estimator=c.model.estimator, target=c.data.target, task=c.data.task,
        input_columns=list(c.data.columns), features=c.features.builder,
        feature_columns=c.features.columns or (
            None if c.features.builder else
            [k for k in c.data.columns if k not in (c.data.target, c.data.timestamp)]),
        params=dict(ws.params.model), seed=ws.params.seed, root=str(ws.root))


# stages ----------------------------------------------------------------------------------------


def fetch_range(ws: Workspace, window: Window) -> tuple[Any, Any]:
    """The time range a cycle reads: its history months and the window, end excluded."""
    return window.history_start(ws.params.data.history_months), window.end


class Query:
    """The source's query for :func:`fetch_range`, started in a thread (it only reads); calling
    it waits for the rows and hands them over once: nothing here keeps them after that (the
    fetch stage puts them in the partitions' order, and the rows as they came are let go)."""

    def __init__(self, ws: Workspace, source: Source, window: Window) -> None:
        self._future: Future[pd.DataFrame] | None = runtime.beside(source.fetch, *fetch_range(ws, window),
                                                                   name="modelcycle-fetch")

    def __call__(self) -> pd.DataFrame:
        future, self._future = self._future, None
        if future is None:
            raise RuntimeError("the query's rows were handed over already")
        return future.result()


def fetch(ws: Workspace, source: Source, window: Window,
          rows: Callable[[], pd.DataFrame] | None = None, writes: BackgroundWrites | None = None) -> pd.DataFrame:
    """History + window rows from the source -> ``data/raw/<month>.parquet`` (or
    ``data/raw.parquet`` in a workspace of single files). ``rows`` returns the result of a query
    already started (see :func:`fetch_range`). Returns the rows in the order they are stored."""
    raw = rows() if rows is not None else source.fetch(*fetch_range(ws, window))
    ts = ws.config.data.timestamp
    in_window = 0
    if len(raw):
        in_window = int((parts.stamps(raw, ts) >= pd.Timestamp(window.start)).sum())
    if not in_window:
        raise EmptyWindowError(
            f"{source.describe()} has no rows for window {window} "
            f"({window.start:%Y-%m-%d} to {window.end:%Y-%m-%d}, end excluded)",
            "pick a window the source covers; `modelcycle status` shows the last window run")
    lay = datasets.layout(ws)
    if lay.partitioned:
        return datasets.write_raw(ws, raw, writes)
    _write_parquet(ws, raw, lay.raw, writes)
    return raw


def validate(ws: Workspace, raw: pd.DataFrame, window: Window,
             writes: BackgroundWrites | None = None) -> tuple[pd.DataFrame, va.ValidationReport]:
    """Schema check and value rules -> data/clean.json (data/clean.parquet in a workspace of
    single files) + reports/validation.json."""
    clean, report, kept = va.validate_rows(raw, ws.config.data, window_start=window.start,
                                           where=f"(window {window})")
    lay = datasets.layout(ws)
    if lay.partitioned:
        datasets.write_clean(ws, clean, report, kept, window, writes)
    else:
        _write_parquet(ws, clean, lay.clean, writes)
    write_json(ws, VALIDATION, report.to_dict())
    return clean, report


def prepare(ws: Workspace, clean: pd.DataFrame, window: Window, writes: BackgroundWrites | None = None) -> sp.Split:
    """Chronological split -> data/train.json + data/holdout.json (data/train.parquet +
    data/holdout.parquet in a workspace of single files)."""
    split = sp.chronological(clean, timestamp=ws.config.data.timestamp, window_start=window.start,
                             window_end=window.end,
                             holdout_fraction=ws.params.split.holdout_fraction,
                             window_label=window.label)
    lay = datasets.layout(ws)
    if lay.partitioned:
        datasets.write_split(ws, split, window, writes)
    else:
        _write_parquet(ws, split.train, lay.train, writes)
        _write_parquet(ws, split.holdout, lay.holdout, writes)
    return split


def trainer(ws: Workspace) -> Trainer:
    """The trainer ``model.trainer`` names (``sklearn`` by default)."""
    return trainer_for(ws.config.model.trainer)


def learns_in_epochs(ws: Workspace) -> bool:
    """Whether the workspace's trainer reports a per-epoch history (every trainer but
    scikit-learn's), so the train stage writes a learning curve for dvc.yaml's plot."""
    return ws.config.model.trainer != "sklearn"


def model_settings(ws: Workspace) -> dict[str, str]:
    """What trains the challenger, as MLflow run params: the trainer, and the estimator for the
    scikit-learn trainer only (``model.estimator``'s default, LightGBM, means nothing to another)."""
    model = ws.config.model
    return {"trainer": model.trainer, **({"estimator": model.estimator} if model.trainer == "sklearn" else {})}


def model_label(ws: Workspace) -> str:
    """What trains the challenger, as a line names it: ``lightgbm:LGBMRegressor``, ``a torch model``."""
    model = ws.config.model
    return model.estimator if model.trainer == "sklearn" else f"a {model.trainer} model"


def train(ws: Workspace, train_rows: pd.DataFrame, save_model: ModelWriter) -> tr.Trained:
    """Fit the challenger with the workspace's trainer -> models/challenger (an MLflow pyfunc
    model directory, written by the trainer with ``save_model``, the registry's writer)."""
    trained = trainer(ws).fit(train_rows, train_spec(ws))
    save_trained(ws, trained, train_rows, save_model)
    return trained


def save_trained(ws: Workspace, trained: tr.Trained, train_rows: pd.DataFrame, save_model: ModelWriter) -> None:
    """A trained challenger -> models/challenger (the model a cycle logs, versions and registers)."""
    import shutil

    chosen = trainer(ws)
    path = ws.path(MODEL)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the last 5 rows, then the target left out (not a copy of every row without it)
    example = train_rows.tail(5).drop(columns=[ws.config.data.target]).reset_index(drop=True)
    chosen.save(trained, str(path), input_example=example, extra_code_paths=workspace_code(ws) or None,
                writer=save_model)
    write_learning_curve(ws, trained.history)


def write_learning_curve(ws: Workspace, history: list[dict[str, float]]) -> None:
    """The trainer's per-epoch history -> reports/learning_curve.csv (columns ``epoch`` and the
    history's keys), for ``dvc plots show``. A trainer without a history (scikit-learn's) writes
    none, and a file an earlier trainer left is removed: it would describe another model."""
    path = ws.path(LEARNING_CURVE)
    if not history:
        path.unlink(missing_ok=True)
        return
    frame = pd.DataFrame(history)
    if "epoch" not in frame.columns:
        frame.insert(0, "epoch", range(1, len(frame) + 1))
    frame = frame[["epoch", *[c for c in frame.columns if c != "epoch"]]]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def flat_metrics(challenger: ev.Scores, champion: ev.Scores | None) -> dict[str, float]:
    """reports/metrics.json of the evaluate stage: numbers only, at the top level, so that
    ``dvc exp show`` and ``dvc metrics diff`` show each in a column (named as in the cycles'
    MLflow runs: ``challenger_<metric>``, ``champion_<metric>``)."""
    found = {f"challenger_{challenger.metric}": challenger.value, "holdout_rows": float(challenger.rows)}
    if champion is not None:
        found[f"champion_{champion.metric}"] = champion.value
    return found


def evaluate(ws: Workspace, model: Any, holdout: pd.DataFrame) -> ev.Scores:
    """Score ``model`` (anything with ``predict(raw_frame)``: a loaded pyfunc) on ``holdout``."""
    return ev.evaluate(model, holdout, target=ws.config.data.target, metric=ws.config.metric)


def evaluate_trained(ws: Workspace, trained: tr.Trained, holdout: pd.DataFrame) -> ev.Scores:
    """Score a just-trained challenger on ``holdout``, predicting through its trainer."""
    return evaluate(ws, Scorable(trainer(ws), trained.model), holdout)


def write_predictions(ws: Workspace, challenger: ev.Scores, champion: ev.Scores | None = None) -> None:
    """Both models' predictions on the held-out rows -> reports/predictions.csv: one row per
    held-out row, columns ``actual``, ``challenger``, ``champion`` (empty without a champion),
    for `dvc plots` (a confusion matrix, predicted vs actual) and for a look at the rows."""
    n = challenger.rows
    if champion is not None and champion.rows != n:
        raise ValueError("champion and challenger must be scored on the same held-out rows")
    empty = pd.Series([None] * n, dtype="object")
    frame = pd.DataFrame({
        "actual": pd.Series(challenger.y_true) if len(challenger.y_true) == n else empty,
        "challenger": pd.Series(challenger.y_pred) if len(challenger.y_pred) == n else empty,
        "champion": pd.Series(champion.y_pred) if champion is not None and len(champion.y_pred) == n else empty})
    path = ws.path(PREDICTIONS)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@dataclass
class FloorReport:
    noise_floor: float
    seconds: float


def noise_floor(ws: Workspace, holdout: pd.DataFrame) -> FloorReport | None:
    """The best score achievable on these rows, from the workspace's `reference` (None without
    one, or when it knows no floor for the metric)."""
    import time

    from modelcycle.lifecycle import reference

    ref = reference.load(ws)
    started = time.perf_counter()
    floor = reference.noise_floor(ws, ref, holdout) if ref is not None else None
    return None if floor is None else FloorReport(floor, time.perf_counter() - started)


# `modelcycle step <stage>`: the dvc.yaml commands ---------------------------------------------


def run_stage(ws: Workspace, stage: str) -> str:
    """Run one stage from files (as `dvc repro` does); returns a one-line summary."""
    from modelcycle.registry.workspace import open_registry
    from modelcycle.sources import build_source

    window = params_window(ws)
    lay = datasets.layout(ws)
    if stage == "fetch":
        raw = fetch(ws, build_source(ws.config, ws.root), window)
        return f"fetched {len(raw)} rows ({window} and {ws.params.data.history_months} months before) -> {lay.raw}"
    if stage == "validate":
        _, report = validate(ws, _read(ws, "raw", stage), window)
        return f"{report.summary()} -> {lay.clean}"
    if stage == "prepare":
        split = prepare(ws, _read(ws, "clean", stage), window)
        return f"{split.describe()} -> {lay.train}, {lay.holdout}"
    if stage == "train":
        registry = open_registry(ws)
        if ws.params.candidates:  # several challengers: the gate chooses, as in a cycle
            from modelcycle.lifecycle import fanout

            return fanout.step_train(ws, _read(ws, "train", stage), _read(ws, "holdout", stage), registry.save_model)
        trained = train(ws, _read(ws, "train", stage), registry.save_model)
        return f"trained {model_label(ws)} on {trained.rows} rows in {trained.fit_seconds:.1f}s -> {MODEL}"
    if stage == "evaluate":
        from modelcycle.lifecycle import experiments

        registry = open_registry(experiments.home(ws))
        model = registry.load_model(str(ws.path(MODEL)))
        holdout = _read(ws, "holdout", stage)
        scores = evaluate(ws, model, holdout)
        champion = experiments.champion_scores(ws, registry, holdout)
        write_predictions(ws, scores, champion)
        write_json(ws, METRICS, flat_metrics(scores, champion))
        line = f"challenger {scores.metric} {scores.value:.4f} on {scores.rows} held-out rows"
        if champion is not None:
            line += f" (champion {champion.value:.4f})"
        line += f" -> {METRICS}, {PREDICTIONS}"
        recorded = experiments.record(ws, registry, scores, champion)
        return line + (f"\n{recorded}" if recorded else "")
    raise ConfigError(f"there is no stage '{stage}'", f"the stages are: {', '.join(STAGES)}")
