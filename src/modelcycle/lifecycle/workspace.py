"""Create a workspace: a git repository with DVC, modelcycle.yaml, params.yaml, dvc.yaml and the
embedded backends under ``.modelcycle/``.

``init`` is careful with what it writes:

* **No password in git.** A source URL's password goes to ``.env`` (mode 0600, git-ignored) and
  modelcycle.yaml refers to it as ``${MODELCYCLE_SOURCE_PASSWORD}``; a file that would still hold
  a literal password is neither written nor committed (:func:`modelcycle.config.literal_secrets`).
* **Private backends.** ``.modelcycle/`` (MLflow's database and artifacts, Prefect's home, the DVC
  remote, the demo warehouse) is created 0700.
* **All or nothing.** The source is read before anything is written; a failure at any later point
  removes what init created (the folder it made, or only the files it added beside existing
  ones, the previous ``.gitignore`` and ``.env`` restored).
* **No calendar features by default.** Columns that repeat a part of the timestamp (``month``,
  ``day_of_week``, ``hour``... found by name and by content on a sample of the source) are left
  out of ``features.columns``, with a warning and a comment in modelcycle.yaml.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import yaml

from modelcycle.config import CONFIG_FILE, ENV_FILE, PARAMS_FILE, STATE_DIR, Workspace, load_config
from modelcycle.config.secrets import (
    SOURCE_PASSWORD_VAR,
    find_literal_secrets,
    literal_secrets,
    literal_secrets_error,
    move_password,
    redact,
    references,
    resolve_references,
    url_password,
    write_env_values,
)
from modelcycle.errors import ConfigError, WorkspaceError
from modelcycle.lifecycle.sampling import (
    SAMPLE_ROWS,
    CalendarColumn,
    calendar_columns,
    calendar_warning,
    read_sample,
)

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
Warn = Callable[[str], None]

PARAMS_HEADER = ("# params.yaml: what the pipeline steps read (DVC params).\n"
                 "# `dvc exp run -S model.learning_rate=0.1` tries another value; "
                 "`window` is set by each cycle.\n")

#: The CI workflow init writes (GitHub Actions: pull, repro, `modelcycle report`, CML comment).
WORKFLOW = ".github/workflows/modelcycle.yml"
#: What init may add to a folder (and removes again when it fails).
INIT_FILES = (CONFIG_FILE, PARAMS_FILE, "dvc.yaml", ".dvc", ".dvcignore", STATE_DIR, ENV_FILE, ".gitignore",
              ".git", ".github", WORKFLOW)
#: Rows of the source read at init: the schema's types and the calendar-column check.


def _template(name: str) -> str:
    return resources.files("modelcycle.lifecycle").joinpath("templates", name).read_text(encoding="utf-8")


def _check_target(root: Path, force: bool) -> None:
    if (root / CONFIG_FILE).exists():
        raise WorkspaceError(f"{root} is already a modelcycle workspace ({CONFIG_FILE} exists)",
                             "use it as it is (`modelcycle status`), or pick another folder")
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root} exists and is not a folder")
    if root.exists() and any(p.name not in (".git",) for p in root.iterdir()) and not force:
        raise WorkspaceError(f"{root} is not empty",
                             "pick an empty or new folder, or pass --force to add a workspace beside "
                             "what is there (nothing existing is overwritten)")
    taken = [name for name in (PARAMS_FILE, "dvc.yaml") if (root / name).exists()]
    if taken:
        raise WorkspaceError(f"{root} already has {' and '.join(taken)}, which init would overwrite",
                             "move them aside (or pick another folder) and run init again")
    remote = os.environ.get("MODELCYCLE_DVC_REMOTE")
    if remote and url_password(remote):
        raise ConfigError(
            f"MODELCYCLE_DVC_REMOTE ({redact(remote)}) holds a password; init would write it into "
            ".dvc/config, which git keeps",
            "remove the password from that URL; after init give it to DVC alone with "
            "`dvc remote modify --local modelcycle password ...` (kept in the git-ignored .dvc/config.local)")


# ---------------------------------------------------------------------------------------------
# all or nothing
# ---------------------------------------------------------------------------------------------

class _Creation:
    """What init may change in ``root``, noted before it writes anything, so that a failure can
    put the folder back as it was."""

    def __init__(self, root: Path) -> None:
        self.root = root
        top: Path | None = None
        p = root
        while not p.exists() and p != p.parent:
            top, p = p, p.parent
        self.created_top = top  # the highest folder init creates (root or a missing parent)
        self.before: dict[str, bytes | bool | None] = {}
        self.dvc_config: bytes | None = None
        if top is None:
            for name in INIT_FILES:
                path = root / name
                if path.is_dir() and not path.is_symlink():
                    self.before[name] = True
                elif path.exists() or path.is_symlink():
                    self.before[name] = path.read_bytes() if path.is_file() else True
                else:
                    self.before[name] = None
            if (root / ".dvc" / "config").is_file():
                self.dvc_config = (root / ".dvc" / "config").read_bytes()

    def undo(self) -> list[str]:
        """Remove what init created; returns the names removed (for the message)."""
        if self.created_top is not None:
            if not self.created_top.exists():
                return []
            shutil.rmtree(self.created_top, ignore_errors=True)
            return [str(self.created_top)]
        added = [name for name, was in self.before.items()
                 if was is None and ((self.root / name).exists() or (self.root / name).is_symlink())]
        if self.before.get(".git") is not None:
            self._unstage([n for n in added if n != ".git"], [n for n, was in self.before.items()
                                                              if was is not None and n != ".git"])
        for name in added:
            path = self.root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for name, was in self.before.items():
            if isinstance(was, bytes) and (self.root / name).read_bytes() != was:
                (self.root / name).write_bytes(was)
        if self.dvc_config is not None and (self.root / ".dvc" / "config").exists():
            (self.root / ".dvc" / "config").write_bytes(self.dvc_config)
        return added

    def _unstage(self, added: list[str], existing: list[str]) -> None:
        """In a repository that was there before: take init's files out of the index again."""
        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=self.root, capture_output=True, timeout=60, check=False)

        if added:
            git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *added)
        for name in existing:  # one at a time: a path git does not know fails alone
            git("reset", "-q", "--", name)


def _all_or_nothing(root: Path, build: Callable[[], Workspace], progress: Progress) -> Workspace:
    record = _Creation(root)
    try:
        return build()
    except BaseException:
        removed = record.undo()
        if removed:
            progress(f"init did not finish; removed what it had created in {root}")
        raise


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def _params_text(model_params: dict[str, Any], *, history_months: int = 6,
                 holdout_fraction: float = 0.3, seed: int = 42) -> str:
    body = {"window": None, "seed": seed, "data": {"history_months": history_months},
            "split": {"holdout_fraction": holdout_fraction}, "model": model_params}
    return PARAMS_HEADER + yaml.safe_dump(body, sort_keys=False)


def _write_gitignore(root: Path) -> None:
    """Add the template's lines the workspace's .gitignore lacks (the embedded backends, .env)."""
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    have = {line.strip() for line in existing.splitlines()}
    template = _template("gitignore").splitlines()
    missing = [line for line in template if line.strip() and not line.startswith("#") and line.strip() not in have]
    if not missing:
        return
    if existing:
        added: list[str] = []
        comment = None
        for line in template:  # each missing line with the comment that explains it
            if line.startswith("#"):
                comment = line
            elif line in missing:
                if comment is not None:
                    added.append(comment)
                    comment = None
                added.append(line)
        text = existing + ("\n" if not existing.endswith("\n") else "") + "\n".join(added) + "\n"
    else:
        text = "\n".join(template) + "\n"
    gitignore.write_text(text, encoding="utf-8")


def _pipeline(epochs: bool, curve: str) -> str:
    """The workspace's dvc.yaml stages; a trainer that learns in epochs also declares its learning
    curve as the train stage's output, so each cycle versions it with the model (and a rolled-back
    cycle puts it back)."""
    text = _template("dvc.yaml")
    if not epochs:
        return text
    model = "      - models/challenger\n"
    assert model in text, "the dvc.yaml template's train stage lost its model output"
    return text.replace(model, model + f"      - {curve}:\n          cache: false\n", 1)


def _write_workflow(root: Path, progress: Progress) -> bool:
    """Write the CI workflow unless the folder has one by that name already (left as it is)."""
    path = root / WORKFLOW
    if path.exists() or path.is_symlink():
        progress(f"{WORKFLOW} exists: left as it is")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_template("github-workflow.yml"), encoding="utf-8")
    return True


def _make_state_dir(root: Path) -> Path:
    state = root / STATE_DIR
    state.mkdir(mode=0o700, exist_ok=True)
    os.chmod(state, 0o700)
    return state


def _finish(root: Path, config_text: str, params_text: str, progress: Progress, *,
            env_values: dict[str, str] | None = None,
            before_commit: Callable[[Workspace], None] | None = None) -> Workspace:
    from modelcycle.lifecycle import stages
    from modelcycle.registry.workspace import open_registry
    from modelcycle.versioning import dvcgit, setup

    config_path = root / CONFIG_FILE
    found = find_literal_secrets(yaml.safe_load(config_text) or {})
    if found:  # before the file exists at all
        raise literal_secrets_error(config_path, found)
    root.mkdir(parents=True, exist_ok=True)
    _write_gitignore(root)  # .env and .modelcycle/ are ignored before either exists
    if env_values:
        write_env_values(root / ENV_FILE, env_values)
    config_path.write_text(config_text, encoding="utf-8")
    load_config(config_path)
    (root / PARAMS_FILE).write_text(params_text, encoding="utf-8")
    ws = Workspace.load(root)
    epochs = stages.learns_in_epochs(ws)
    plots = setup.plots_yaml(ws.config.data.task, epochs=epochs)
    (root / "dvc.yaml").write_text(_pipeline(epochs, setup.LEARNING_CURVE) + "\n" + plots, encoding="utf-8")
    workflow = _write_workflow(root, progress)
    state = _make_state_dir(root)
    for sub in ("mlartifacts", "prefect"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    progress("initialising git and DVC")
    setup.init_workspace_repo(str(root), ws.dvc_remote)
    progress("creating the MLflow tracking database")
    open_registry(ws).experiment_id(ws.config.name)
    if before_commit is not None:
        before_commit(ws)
    for name in (CONFIG_FILE, PARAMS_FILE):
        found = literal_secrets(root / name)
        if found:
            raise literal_secrets_error(root / name, found)
    dvcgit.commit_paths(str(root), [CONFIG_FILE, PARAMS_FILE, "dvc.yaml", ".gitignore", ".dvc", ".dvcignore",
                                    *([WORKFLOW] if workflow else [])],
                        f"modelcycle init: {ws.config.name}")
    return ws


def create_from_config(root: Path, config_text: str, *, model_params: dict[str, Any] | None = None,
                       history_months: int = 6, prepare: Callable[[Workspace], None] | None = None,
                       force: bool = False, progress: Progress = lambda _: None) -> Workspace:
    """A workspace from a complete modelcycle.yaml text: an example's (``modelcycle init --example``)
    or a team's own template. The text is checked as init checks its own (a literal password is
    refused, the config must load); params.yaml gets ``model_params`` and ``history_months``.
    ``prepare(ws)`` runs before the first commit, with the workspace's git, DVC and MLflow set up:
    an example writes its data into ``.modelcycle/`` there. All or nothing, as init."""
    _check_target(root, force)
    params = _params_text(dict(model_params or {}), history_months=history_months)
    return _all_or_nothing(root, lambda: _finish(root, config_text, params, progress, before_commit=prepare),
                           progress)


# ---------------------------------------------------------------------------------------------
# reading the source
# ---------------------------------------------------------------------------------------------

def _features_block(columns: list[str], left_out: list[CalendarColumn], timestamp: str) -> str:
    header = ("features:\n"
              "  builder: null      # or an import path such as features:build (a features.py beside this file)\n")
    if not left_out:
        return header + "  columns: null      # null: every column except the target and the timestamp\n"
    named = ", ".join(f"{c.column} ({c.what})" for c in left_out)
    example = next((c for c in left_out if c.part in ("hour", "month", "day_of_week")), left_out[0])
    period = {"hour": "24", "month": "12", "day_of_week": "7"}.get(example.part, "P")
    text = (f"Left out: columns that repeat the calendar date of {timestamp}: {named}. A model given "
            "them extrapolates by calendar date across windows: each new window brings dates it never "
            "trained on. To use one anyway, add it to `columns` below; better, encode it cyclically in a "
            f"features.py builder, e.g. sin and cos of 2*pi*{example.column}/{period} (see `builder`).")
    wrapped = textwrap.wrap(text, width=94, break_long_words=False, break_on_hyphens=False)
    listed = yaml.safe_dump(columns, default_flow_style=True, width=10**6).strip()
    return header + "".join(f"  # {line}\n" for line in wrapped) + f"  columns: {listed}\n"


def _yaml_key(name: str) -> str:
    return yaml.safe_dump({name: 0}, width=10**6).split(":")[0] if name else "''"


# ---------------------------------------------------------------------------------------------
# init from the user's own source
# ---------------------------------------------------------------------------------------------

def create_from_source(root: Path, *, name: str, kind: str, url: str, table: str | None,
                       timestamp: str, target: str, task: str, metric: str, threshold: float,
                       estimator: str | None = None, force: bool = False,
                       password_variable: str = SOURCE_PASSWORD_VAR,
                       progress: Progress = lambda _: None, warn: Warn = lambda _: None) -> Workspace:
    """A workspace for the user's own table; the schema is read from the source.

    A password in ``url`` is written to ``.env`` as ``password_variable`` and modelcycle.yaml
    refers to it; columns that repeat a part of the timestamp are left out of the features
    (``warn`` is told about each). Nothing is left behind when it fails."""
    _check_target(root, force)
    config_url, password = move_password(url, password_variable)
    env_values = {password_variable: password} if password is not None else None
    open_url = url if password is not None else _resolve_given(url, root)
    progress(f"reading the first {SAMPLE_ROWS:,} rows of {redact(open_url)}" + (f" ({table})" if table else ""))
    sample = read_sample(kind, open_url, table, root, timestamp)
    columns = sample.columns
    for col, what in ((timestamp, "--timestamp"), (target, "--target")):
        if col not in columns:
            raise ConfigError(f"the source has no column '{col}' (given as {what})",
                              f"its columns are: {', '.join(columns)}")
    candidates = [c for c in columns if c not in (timestamp, target)]
    left_out = calendar_columns(sample.rows, timestamp, candidates)
    kept = [c for c in candidates if c not in {f.column for f in left_out}]
    if left_out and not kept:
        warn(f"every feature column repeats a part of '{timestamp}' ("
             + ", ".join(f"{f.column}: {f.what}" for f in left_out)
             + "); they stay in, but a model given them extrapolates by calendar date across windows")
        left_out = []
    for found in left_out:
        warn(calendar_warning(found, timestamp, len(sample.rows)))
    if estimator is None:
        estimator = "lightgbm:LGBMRegressor" if task == "regression" else "lightgbm:LGBMClassifier"
    config = Template(_template("generic.modelcycle.yaml")).substitute(
        name=name, kind=kind, url=_yaml_scalar(config_url),
        table_line=f"  table: {_yaml_scalar(table)}\n" if table else "",
        timestamp=_yaml_scalar(timestamp), target=_yaml_scalar(target), task=task,
        columns="\n".join(f"    {_yaml_key(c)}: {t}" for c, t in columns.items()),
        features=_features_block(kept, left_out, timestamp).rstrip("\n"),
        estimator=estimator, metric=metric, threshold=threshold)
    params = {"n_estimators": 200, "learning_rate": 0.05} if estimator.startswith("lightgbm") else {}
    return _all_or_nothing(root, lambda: _finish(root, config, _params_text(params), progress,
                                                 env_values=env_values), progress)


def _resolve_given(url: str, root: Path) -> str:
    """The URL given to init with its own ``${VAR}`` references resolved (environment, or a
    ``.env`` already in the folder)."""
    try:
        return str(resolve_references({"source": {"url": url}}, config_file=root / CONFIG_FILE)["source"]["url"])
    except ConfigError:
        missing = [n for n in references({"source": {"url": url}}).get("source.url", [])
                   if n not in os.environ]
        name = missing[0] if missing else "NAME"
        raise ConfigError(f"--source refers to ${{{name}}}, which is not set",
                          f"set it in the environment first (export {name}=...), or give the URL with its "
                          "password: init moves the password to .env") from None


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar (quoted when YAML would read it otherwise)."""
    return yaml.safe_dump(value, width=10**6).removesuffix("\n...\n").strip()
