"""Making a workspace a git + DVC repository (:func:`init_workspace_repo`), the plots its
``dvc.yaml`` declares (:func:`plots_yaml`, :func:`add_plots`), and importing DVC's modules ahead
of a cycle that will need them (:func:`prewarm`)."""

from __future__ import annotations

import importlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from modelcycle.errors import VersioningError

from modelcycle.versioning.dvcgit import _quiet_dvc, _translate
from modelcycle.config.secrets import url_password
from modelcycle.versioning.remote import REMOTE_NAME, dvc_url, sync_remote
from modelcycle.versioning.gitcmd import _git, _out

log = logging.getLogger(__name__)


#: What the first versioning calls of a cycle import (:func:`prewarm`).
_FIRST_USE = ("dvc.repo", "dvc.repo.stage", "dvc.dependency.param", "dvc.scm", "dvc.lock", "dulwich.index",
              "ruamel.yaml", "dvc_data.hashfile.build", "dvc_data.hashfile.checkout", "dvc_data.hashfile.transfer",
              "pyarrow.parquet")


def prewarm() -> threading.Thread:
    """Import DVC in a daemon thread, so the first versioning call does not wait for it.

    Importing ``dvc.repo`` and the ``dvc_data`` modules the adapter uses costs 1.2-2 s in a cold
    process; start this when a cycle starts and it is done before ``act`` needs it. The modules
    DVC imports only on its first use are here too: its git backend (``dvc.scm``, dulwich), the
    YAML parser of ``dvc.yaml`` and ``dvc.lock``, its repository lock, and the Parquet writer of
    the month partitions (about 0.3 s, which the command pays while Prefect's server starts
    instead of in the cycle's first step).
    """

    def _import() -> None:
        try:
            for module in _FIRST_USE:
                importlib.import_module(module)
        except Exception:
            log.debug("prewarming DVC failed", exc_info=True)

    thread = threading.Thread(target=_import, name="modelcycle-dvc-prewarm", daemon=True)
    thread.start()
    return thread


def init_workspace_repo(root: str | os.PathLike[str], remote_url: str | None) -> None:
    """Make ``root`` a git repository with DVC initialised and a default remote.

    ``git init -b main`` unless ``root`` already is a repository's top level; ``dvc init`` unless
    ``.dvc/`` exists (its files are staged, as ``dvc init`` does); ``core.analytics false``;
    remote ``modelcycle`` = ``remote_url`` made the default (a local folder is created; one
    inside the workspace is stored relative, so the workspace can move; a URL with a password
    only in the git-ignored ``.dvc/config.local``); a repo-local git
    identity if none is configured. Safe to run again; creates no commit.
    """
    path = Path(root).resolve()
    path.mkdir(parents=True, exist_ok=True)
    top = _git(path, "rev-parse", "--show-toplevel", ok=(0, 128))
    if top.returncode != 0 or Path(_out(top)).resolve() != path:
        _git(path, "init", "-q", "-b", "main", ".")
    for key, default in (("user.name", "modelcycle"), ("user.email", "modelcycle@localhost")):
        if not _out(_git(path, "config", "--get", key, ok=(0, 1))):
            _git(path, "config", "--local", key, default)

    from_init = not (path / ".dvc").is_dir()
    try:
        with _quiet_dvc():
            from dvc.repo import Repo

            repo = Repo.init(str(path)) if from_init else Repo(str(path))
            try:
                secret = bool(remote_url and url_password(remote_url))
                with repo.config.edit("repo") as conf:
                    conf["core"]["analytics"] = False
                    if remote_url and not secret:
                        url = dvc_url(path, remote_url, create=True)
                        conf["remote"][REMOTE_NAME] = {"url": url}
                        conf["core"]["remote"] = REMOTE_NAME
                if secret:  # a URL with a password goes to the git-ignored config.local only
                    sync_remote(path, remote_url)
            finally:
                repo.close()
    except VersioningError:
        raise
    except Exception as exc:
        raise _translate(exc, "init", str(path)) from exc
    if from_init:
        _git(path, "add", "--", ".dvc/config")


#: The files the stages write for ``dvc plots show`` (see :mod:`modelcycle.lifecycle.stages`).
LEARNING_CURVE = "reports/learning_curve.csv"
PREDICTIONS = "reports/predictions.csv"


def plots(task: str, epochs: bool) -> list[dict[str, Any]]:
    """The top-level ``plots:`` of a workspace's dvc.yaml: the challenger's confusion matrix
    (classification) or its predictions against the actual values, beside the champion's
    (regression), from ``reports/predictions.csv``; the learning curve from
    ``reports/learning_curve.csv`` when the trainer learns in ``epochs`` (a trainer without a
    history writes no such file, and a plot of a missing file is an error in ``dvc plots show``).

    They are top-level plots, not stage outputs: DVC puts their files in each experiment's
    commit, and a cycle, which versions the stage outputs, does not need to write them."""
    found: list[dict[str, Any]] = []
    if task == "classification":
        found.append({"confusion": {
            "template": "confusion", "x": "actual", "y": {PREDICTIONS: "challenger"},
            "title": "Confusion matrix of the challenger on the held-out rows",
            "x_label": "actual", "y_label": "predicted"}})
    else:
        found.append({"predicted_vs_actual": {
            "template": "scatter", "x": "actual", "y": {PREDICTIONS: ["challenger", "champion"]},
            "title": "Predicted vs actual on the held-out rows",
            "x_label": "actual", "y_label": "predicted"}})
    if epochs:
        found.append({"learning_curve": {
            "template": "linear", "x": "epoch", "y": {LEARNING_CURVE: ["train_loss", "val_loss"]},
            "title": "Learning curve", "x_label": "epoch", "y_label": "loss"}})
    return found


def plots_yaml(task: str, epochs: bool) -> str:
    """:func:`plots` as the text appended to a dvc.yaml, with a comment."""
    import yaml

    class Indented(yaml.SafeDumper):  # list items indented under their key, as dvc.yaml's stages are
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)

    body = yaml.dump({"plots": plots(task, epochs)}, Dumper=Indented, sort_keys=False, default_flow_style=False)
    return ("# `dvc plots show` draws these from the files the stages write "
            "(`dvc plots diff` compares experiments)\n" + body)


def add_plots(root: str | os.PathLike[str], task: str, epochs: bool) -> list[str]:
    """Add to the workspace's dvc.yaml the :func:`plots` it lacks (by name), keeping the rest of
    the file as it is: a dvc.yaml without ``plots:`` (made before dvc.yaml declared them) gets
    :func:`plots_yaml` appended, byte for byte; one with its own ``plots:`` gets the missing
    entries added to that list (DVC's own YAML editor keeps its comments). Returns the names
    added; an absent dvc.yaml is left absent."""
    import yaml

    path = Path(root) / "dvc.yaml"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise VersioningError(f"cannot read {path}: {exc}",
                              "fix dvc.yaml (`dvc repro --dry` names the problem)") from exc
    if not isinstance(data, dict):
        raise VersioningError(f"{path} is not a mapping of `stages:`", "fix dvc.yaml")
    if "plots" not in data:
        path.write_text(text + ("" if text.endswith("\n") else "\n") + "\n" + plots_yaml(task, epochs),
                        encoding="utf-8")
        return [next(iter(entry)) for entry in plots(task, epochs)]
    if not isinstance(data["plots"], list):
        raise VersioningError(f"{path}: `plots:` is not a list", "fix dvc.yaml (see `dvc plots --help`)")
    have = {name for entry in data["plots"] for name in (entry if isinstance(entry, dict) else {entry: None})}
    missing = [entry for entry in plots(task, epochs) if next(iter(entry)) not in have]
    if not missing:
        return []
    from dvc.utils.serialize import modify_yaml

    try:
        with modify_yaml(str(path)) as editing:
            editing["plots"].extend(missing)
    except Exception as exc:
        raise _translate(exc, "adding plots to dvc.yaml", str(root)) from exc
    return [next(iter(entry)) for entry in missing]


#: A dvc.yaml of single files (a workspace made before month partitions) -> the partitioned one:
#: each old path and what takes its place (see :mod:`modelcycle.lifecycle.datasets`).
SINGLE_TO_PARTITIONED = {"data/raw.parquet": "data/raw", "data/clean.parquet": "data/clean.json",
                         "data/train.parquet": "data/train.json", "data/holdout.parquet": "data/holdout.json"}
_MANIFESTS = {"data/clean.json", "data/train.json", "data/holdout.json"}


def partition_pipeline(root: str | os.PathLike[str]) -> list[str]:
    """Move a dvc.yaml that writes single Parquet files per stage to the month partitions: the
    fetch stage writes ``data/raw`` (a folder), the others manifests that git keeps
    (``cache: false``), and a stage reading a manifest also depends on ``data/raw``. The rest of
    the file (comments, other stages, the user's own deps and outs) stays as it is (DVC's own
    YAML editor). Returns the stages changed (none for a dvc.yaml already partitioned, or
    absent). The next cycle commits dvc.yaml and writes the new outputs; the single files of
    earlier cycles stay in the DVC cache (their tags restore them) and may be deleted from the
    workspace."""
    path = Path(root) / "dvc.yaml"
    if not path.is_file() or "data/raw.parquet" not in path.read_text(encoding="utf-8"):
        return []
    from dvc.utils.serialize import modify_yaml

    changed: list[str] = []

    def renamed(entries: Any, *, outs: bool) -> tuple[list[Any], bool]:
        found, touched = [], False
        for entry in entries or []:
            name = next(iter(entry)) if isinstance(entry, dict) else entry
            new = SINGLE_TO_PARTITIONED.get(str(name))
            if new is None:
                found.append(entry)
                continue
            touched = True
            found.append({new: {"cache": False}} if outs and new in _MANIFESTS else new)
        return found, touched

    try:
        with modify_yaml(str(path)) as editing:
            for name, stage in (editing.get("stages") or {}).items():
                if not isinstance(stage, dict):
                    continue
                outs, touched_outs = renamed(stage.get("outs"), outs=True)
                deps, touched_deps = renamed(stage.get("deps"), outs=False)
                first = next((i for i, d in enumerate(deps) if d in _MANIFESTS), None)
                if touched_deps and "data/raw" not in deps and first is not None:
                    deps.insert(first, "data/raw")  # a manifest's rows are in the partitions
                if touched_outs:
                    stage["outs"] = outs
                if touched_deps:
                    stage["deps"] = deps
                if touched_outs or touched_deps:
                    changed.append(str(name))
    except Exception as exc:
        raise _translate(exc, "moving dvc.yaml to month partitions", str(root)) from exc
    return changed


def tracks_candidates(root: str | os.PathLike[str]) -> bool:
    """Whether the workspace's dvc.yaml reruns its train stage when params.yaml's ``candidates``
    change (the stage tracks all of params.yaml, or names ``candidates``); True without a dvc.yaml
    or a train stage (nothing to rerun)."""
    import yaml

    path = Path(root) / "dvc.yaml"
    try:
        stage = ((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages") or {}).get("train")
    except (OSError, yaml.YAMLError, AttributeError):
        return True
    if not isinstance(stage, dict):
        return True
    for entry in stage.get("params") or []:
        if entry == "candidates":
            return True
        if isinstance(entry, dict) and any(k == "params.yaml" and (not v or "candidates" in v)
                                           for k, v in entry.items()):
            return True
    return False


def track_candidates(root: str | os.PathLike[str]) -> bool:
    """Make the train stage of the workspace's dvc.yaml (one made before params.yaml could list
    ``candidates:``) depend on all of params.yaml and on the held-out rows, as ``init`` writes it
    now, so ``dvc exp run -S candidates.big.num_leaves=63`` reruns it; the rest of the file stays
    as it is (DVC's own YAML editor). Returns whether it changed anything."""
    if tracks_candidates(root):
        return False
    from dvc.utils.serialize import modify_yaml

    try:
        with modify_yaml(str(Path(root) / "dvc.yaml")) as editing:
            stage = editing["stages"]["train"]
            stage["params"] = [{"params.yaml": None}]
            deps = stage.get("deps") or []
            train = next((d for d in deps if isinstance(d, str) and d.startswith("data/train.")), None)
            holdout = None if train is None else train.replace("data/train.", "data/holdout.")
            if holdout is not None and holdout not in deps:
                deps.insert(deps.index(train) + 1, holdout)
                stage["deps"] = deps
    except Exception as exc:
        raise _translate(exc, "making dvc.yaml's train stage depend on params.yaml's candidates", str(root)) from exc
    return True
