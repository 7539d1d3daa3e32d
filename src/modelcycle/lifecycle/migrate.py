"""``modelcycle backends migrate``: move a workspace's MLflow content to a team's tracking server.

The steps: refuse what cannot be migrated safely (the same store, an unreachable target, a cycle
in flight or interrupted), copy the model (:class:`modelcycle.registry.migrate.StoreCopy`) from a
private copy of the embedded SQLite database (so the old store, ``.modelcycle/mlflow.db`` and its
artifact folder, stays byte for byte as it was until the user removes it), verify the copy (runs,
versions and aliases counted on both sides, the champion loaded from the target) and say (or, with
``write_config``, make) the one change of modelcycle.yaml: ``backends.mlflow_tracking_uri``.

Run ids and logged model ids change on the target; how the workspace keeps working is said in
:mod:`modelcycle.registry.migrate` (references inside the store are rewritten, each copy carries
``modelcycle.migrated_from``). The references outside the store are records of the past (the
notifications log, reports, ``rolled-back`` records): they keep the old ids, which the target
finds by that tag. The one live reference, the journal of an unfinished cycle, is refused: the
interrupted cycle is finished or rolled back on the old store first.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from modelcycle.atomic import write_atomic
from modelcycle.config import CONFIG_FILE, Workspace, redact
from modelcycle.config.models import EMBEDDED_ARTIFACTS
from modelcycle.errors import RegistryError, WorkspaceError
from modelcycle.lifecycle import backends, lock
from modelcycle.lifecycle.journal import Journal
from modelcycle.registry.base import CHAMPION
from modelcycle.registry.migrate import MIGRATED_FROM, StoreCopy, Tally, model_experiments, runs_of, versions_of
from modelcycle.registry.stores import artifact_root, open_client, sqlite_path
from modelcycle.registry.translate import translate
from modelcycle.registry.workspace import relocate_store

KEY = "mlflow_tracking_uri"


@dataclass
class Migration:
    """What a migration did: the tally, the verification's findings, the config line."""

    source: str
    target: str
    dry_run: bool
    tally: Tally
    checks: list[str] = field(default_factory=list)
    config_line: str = ""
    config_written: bool = False


def _is_server(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def target_artifacts(ws: Workspace, target: str) -> str | None:
    """Where new experiments on the target keep artifacts, as ``Workspace.experiment_artifacts``
    says for that tracking URI: the server's choice, unless the user named an artifact store."""
    if ws.names_artifact_store:
        return ws.artifact_location
    if _is_server(target):
        return None
    return artifact_root(None, target)


def check_target(ws: Workspace, target: str) -> None:
    """The backends check of the target URI, fast: a RegistryError when it does not answer."""
    reach = backends.probe_mlflow(ws, target)
    if not reach.ok:
        raise RegistryError(f"MLflow {reach.problem()}",
                            "start the MLflow server (`mlflow server ...`) or fix the URL given to --to")


def _private_copy(ws: Workspace, db: Path, folder: Path) -> str:
    """A consistent copy of the SQLite store in ``folder`` (read with a read-only connection: the
    original is not written), its artifact locations pointed at this workspace's own folder when
    the workspace was moved; its URI."""
    if not db.is_file():
        raise RegistryError(f"there is no MLflow store to migrate: {db} does not exist",
                            "run a cycle first (`modelcycle run`), or point --to at the store you meant")
    copy = folder / "mlflow.db"
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(str(copy))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    artifacts = ws.config.backends.mlflow_artifacts or EMBEDDED_ARTIFACTS
    if "://" not in artifacts and not Path(artifacts).is_absolute():
        marker = "/" + Path(artifacts).as_posix().strip("/").removeprefix("./")
        relocate_store(copy, ws.artifact_location.rstrip("/"), marker)
    return f"sqlite:///{copy.as_posix()}"


def _refuse_unfinished(ws: Workspace) -> None:
    journal = Journal.open(ws)
    if journal is not None:
        raise WorkspaceError(
            f"the {journal.kind} {journal.window} of this workspace did not finish (its journal is {journal.path}); "
            "its MLflow run would be left behind on the old store",
            "repair it with `modelcycle doctor` (it finishes or rolls the cycle back), then migrate")


def migrate(ws: Workspace, target: str, *, dry_run: bool = False, write_config: bool = False,
            say: Callable[[str], None] = lambda _line: None) -> Migration:
    """Copy the workspace's model to the tracking store ``target`` (see the module doc)."""
    target = target.strip().rstrip("/")
    source = ws.local_tracking_uri
    if target == source.rstrip("/") or (not _is_server(target) and "://" not in target):
        raise RegistryError(f"--to {redact(target)} is " + ("the store this workspace uses already" if target ==
                            source.rstrip("/") else "not a tracking URI"),
                            "give the new tracking server's URL, e.g. --to http://team-mlflow:5000"
                            + ("; MLFLOW_TRACKING_URI names the store in use: unset it to migrate the workspace's "
                               "own store" if os.environ.get("MLFLOW_TRACKING_URI") else ""))
    check_target(ws, target)
    with lock.hold(ws.root, f"modelcycle backends migrate --to {redact(target)}", wait=False):
        _refuse_unfinished(ws)
        with tempfile.TemporaryDirectory(prefix="modelcycle-migrate-") as tmp:
            db = sqlite_path(source)
            read_from = _private_copy(ws, db.expanduser(), Path(tmp)) if db is not None else source
            registry_uri = read_from if db is not None else ws.registry_uri
            src = open_client(read_from, registry_uri)
            dst = open_client(target, target)
            copier = StoreCopy(src, dst, ws.config.name, source_uri=read_from, target_uri=target,
                               artifact_root=target_artifacts(ws, target), dry_run=dry_run, say=say,
                               origin=f"{ws.root.resolve()}::{ws.config.name}")
            tally = copier.run()
            done = Migration(redact(source), redact(target), dry_run, tally)
            if not dry_run:
                say("verifying the copy")
                done.checks = verify(src, dst, ws.config.name, target)
    done.config_line = f"  {KEY}: {target}"
    if write_config and not dry_run:
        write_tracking_uri(ws.root / CONFIG_FILE, target)
        done.config_written = True
    return done


def verify(src: Any, dst: Any, name: str, target: str) -> list[str]:
    """Compare the two stores: runs of each experiment, versions, aliases; load the champion from
    the target. A RegistryError names what differs."""
    from modelcycle.registry.mlflow import MlflowRegistry

    found: list[str] = []
    with translate(f"cannot verify the copy of '{name}' on {redact(target)}"):
        runs_old = runs_new = 0
        for exp in model_experiments(src, name):
            runs_old += len(runs_of(src, exp.experiment_id))
            there = dst.get_experiment_by_name(exp.name)
            if there is not None:
                runs_new += sum(1 for r in runs_of(dst, there.experiment_id)
                                if r.data.tags.get(MIGRATED_FROM))
        versions_old = [v.version for v in versions_of(src, name)]
        versions_new = [v.version for v in versions_of(dst, name)]
        aliases_old = _aliases(src, name)
        aliases_new = _aliases(dst, name)
    problems = []
    if runs_new != runs_old:
        problems.append(f"{runs_old} run(s) in the old store, {runs_new} copied ones on the target")
    if [str(v) for v in versions_old] != [str(v) for v in versions_new]:
        problems.append(f"versions {versions_old} in the old store, {versions_new} on the target")
    if aliases_old != aliases_new:
        problems.append(f"aliases {aliases_old} in the old store, {aliases_new} on the target")
    if problems:
        raise RegistryError("the copy on " + redact(target) + " differs from the old store: " + "; ".join(problems),
                            "run `modelcycle backends migrate` again (it copies what is missing); the old store "
                            "is unchanged")
    found.append(f"runs: {runs_old} in both stores")
    found.append(f"versions: {len(versions_old)} in both stores (the same numbers)")
    found.append("aliases: " + (", ".join(f"{a} -> v{v}" for a, v in sorted(aliases_old.items())) or "none")
                 + " in both stores")
    if CHAMPION in aliases_new:
        loaded = MlflowRegistry(target).load_alias(name, CHAMPION)
        found.append(f"the champion (v{loaded.version.version if loaded.version else '?'}) loads from the target")
    return found


def _aliases(client: Any, name: str) -> dict[str, str]:
    try:
        model = client.get_registered_model(name)
    except Exception as exc:
        from modelcycle.registry.translate import is_missing

        if is_missing(exc):
            return {}
        raise
    return {a: str(v) for a, v in (model.aliases or {}).items()}


def write_tracking_uri(config: Path, uri: str) -> None:
    """Change only the value of ``backends.mlflow_tracking_uri`` in modelcycle.yaml (a comment at
    the end of the line, and every other line, kept)."""
    text = config.read_text(encoding="utf-8")
    pattern = re.compile(rf"(?m)^(  {KEY}:)[ \t]+(?:'[^']*'|\"[^\"]*\"|[^#\n]*?)([ \t]+#[^\n]*)?[ \t]*$")
    found = pattern.findall(text)
    if len(found) != 1:
        raise WorkspaceError(f"cannot change backends.{KEY} in {config}: the line "
                             + ("is not there" if not found else "is there more than once"),
                             f"edit it by hand: backends: {KEY}: {uri}")
    new = pattern.sub(lambda m: f"{m.group(1)} {uri}{m.group(2) or ''}", text)
    write_atomic(config, new, keep_mode=True)
