"""Where the stages put a cycle's rows, and how a cycle's exact rows are read back.

A workspace's ``dvc.yaml`` declares one of two layouts (:func:`layout`):

* **partitioned** (workspaces made since): the fetched rows in ``data/raw/``, one Parquet file
  per month (:mod:`modelcycle.versioning.partitions`), and the clean, training and held-out sets
  as manifests ``data/clean.json``, ``data/train.json``, ``data/holdout.json`` (git keeps them;
  DVC keeps each month's file once, whatever number of cycles read it);
* **single files** (workspaces made before): ``data/raw.parquet``, ``data/clean.parquet``,
  ``data/train.parquet``, ``data/holdout.parquet``, each written whole by every cycle. They keep
  working as they are; ``modelcycle doctor`` moves their dvc.yaml to the partitioned layout
  (:func:`modelcycle.versioning.setup.partition_pipeline`), and the next cycle commits it.

:func:`rows` gives a data set of the checked-out cycle as a table, in either layout: after
``git checkout <tag> && dvc checkout``, ``rows(Workspace.load("."), "train")`` is exactly the
rows that cycle trained on (rebuilt from the partitions with the manifest's selection, and
checked against the digest the cycle recorded).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelcycle.config import Window, Workspace
from modelcycle.errors import ConfigError, disk_cause
from modelcycle.sources.base import ORDERED
from modelcycle.versioning import partitions as parts
from modelcycle.versioning.partitions import Manifest

if TYPE_CHECKING:
    from modelcycle.steps.split import Split
    from modelcycle.steps.validate import ValidationReport

log = logging.getLogger(__name__)

#: What :func:`rows` can read.
SETS = ("raw", "clean", "train", "holdout")


@dataclass(frozen=True)
class Layout:
    """The stage outputs of the cycle's data, workspace-relative."""

    raw: str
    clean: str
    train: str
    holdout: str
    partitioned: bool

    def path(self, which: str) -> str:
        return str(getattr(self, which))

    @property
    def lineage(self) -> str:
        """The output whose DVC hash names a cycle's data (a model version's ``dvc_data_hash``):
        the partitions' folder (its listing pins every month's file; the manifests are in git
        with the commit), or the clean rows' file in a workspace of single files."""
        return self.raw if self.partitioned else self.clean


PARTITIONED = Layout("data/raw", "data/clean.json", "data/train.json", "data/holdout.json", partitioned=True)
SINGLE_FILES = Layout("data/raw.parquet", "data/clean.parquet", "data/train.parquet", "data/holdout.parquet",
                      partitioned=False)


def layout(ws: Workspace) -> Layout:
    """The layout the workspace's dvc.yaml declares: single files when a stage writes
    ``data/raw.parquet`` (a workspace made before partitions), else partitioned."""
    import yaml

    path = ws.path("dvc.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return PARTITIONED  # the versioning step names what is wrong with dvc.yaml
    stages = data.get("stages") if isinstance(data, dict) else None
    for stage in (stages or {}).values():
        for out in (stage or {}).get("outs") or [] if isinstance(stage, dict) else []:
            name = next(iter(out)) if isinstance(out, dict) else out
            if name == SINGLE_FILES.raw:
                return SINGLE_FILES
    return PARTITIONED


Writes = Any  # stages.BackgroundWrites (not imported: stages imports this module)


def _run(job: Callable[[], object], writes: Writes | None, what: str) -> None:
    def guarded() -> None:
        try:
            job()
        except OSError as exc:  # Arrow's and json's errors may name no file: say which one
            disk = disk_cause(exc) or exc
            raise OSError(disk.errno, disk.strerror or str(exc), what) from exc

    if writes is not None:
        writes.submit(guarded)
    else:
        guarded()


def write_raw(ws: Workspace, raw: pd.DataFrame, writes: Writes | None = None) -> pd.DataFrame:
    """The fetched rows -> ``data/raw/<month>.parquet``; returns them in the partitions' order
    (what validation then reads, so that a rebuild from the files gives the same rows)."""
    arranged, spans = parts.arrange(raw, ws.config.data.timestamp, ordered=bool(raw.attrs.get(ORDERED)))
    arranged.attrs.update(raw.attrs)
    folder = ws.path(PARTITIONED.raw)
    memo = ws.state_dir / "partitions.json"
    _run(lambda: parts.write(folder, arranged, spans, memo), writes, str(folder))
    return arranged


def _manifest(ws: Workspace, kind: str, window: Window, frame: pd.DataFrame, rows: int,
              selection: dict[str, Any]) -> Manifest:
    return Manifest(kind=kind, window=window.label, folder=PARTITIONED.raw,
                    partitions=parts.listing(ws.path(PARTITIONED.raw)), rows=rows,
                    digest=parts.digest(frame), selection=selection)


def write_clean(ws: Workspace, clean: pd.DataFrame, report: ValidationReport, kept: np.ndarray, window: Window,
                writes: Writes | None = None) -> None:
    """The validated rows -> ``data/clean.json``: the partitions, the rows validation dropped
    (``[start, stop)`` positions in the partitions read in order) and each rule's count, a digest
    of the rows."""
    selection = {"validated_by": "data.columns and data.rules of modelcycle.yaml",
                 "rows_in": report.rows_in, "dropped": dict(report.dropped),
                 "dropped_rows": parts.ranges(~np.asarray(kept, dtype=bool))}
    path = ws.path(PARTITIONED.clean)
    _run(lambda: _manifest(ws, "clean", window, clean, len(clean), selection).write(path), writes, str(path))


def write_split(ws: Workspace, split: Split, window: Window, writes: Writes | None = None) -> None:
    """The split -> ``data/train.json`` and ``data/holdout.json``: the partitions, the rows
    validation dropped (as ``data/clean.json`` says), the boundary, and a digest of each set's
    rows (computed off the cycle's path when ``writes`` is given)."""
    fraction = ws.params.split.holdout_fraction
    selection = {"window_start": window.start.isoformat(), "window_end": window.end.isoformat(),
                 "cut": pd.Timestamp(split.cut).isoformat(), "holdout_fraction": fraction,
                 "history_rows": split.history_rows, "fresh_rows": split.fresh_train_rows}
    for kind, frame in (("train", split.train), ("holdout", split.holdout)):
        path = ws.path(PARTITIONED.path(kind))

        def job(kind: str = kind, frame: pd.DataFrame = frame, path: Path = path) -> None:
            # the validation's selection, from data/clean.json (written before, by the same writer)
            clean = Manifest.read(ws.path(PARTITIONED.clean), PARTITIONED.clean)
            _manifest(ws, kind, window, frame, len(frame), {**clean.selection, **selection}).write(path)

        _run(job, writes, str(path))


# -- reading ------------------------------------------------------------------------------------


def rows(ws: Workspace, which: str) -> pd.DataFrame:
    """The checked-out cycle's ``which`` rows (raw, clean, train or holdout) as a table.

    In the partitioned layout the rows are rebuilt from ``data/raw/`` with the manifest's
    selection (validation under the workspace's data contract, the split at the recorded
    boundary) and compared with the digest the cycle recorded: a difference (the contract changed
    since the manifest was written) is an error, never other rows."""
    from modelcycle.errors import VersioningError

    if which not in SETS:
        raise ConfigError(f"there is no data set '{which}'", f"the sets are: {', '.join(SETS)}")
    lay = layout(ws)
    rel = lay.path(which)
    if not lay.partitioned:
        path = ws.path(rel)
        if not path.exists():
            raise ConfigError(f"{rel} does not exist", "run the stages that write it first: `dvc repro` runs them "
                              "in order, `dvc checkout` brings back a committed cycle's")
        return pd.read_parquet(path)
    if which == "raw":
        return parts.read(ws.path(rel), where=rel)
    manifest = Manifest.read(ws.path(rel), rel)
    if manifest.folder != PARTITIONED.raw:
        raise VersioningError(f"{rel} names partitions in {manifest.folder}, not {PARTITIONED.raw}",
                              f"restore it with `git checkout -- {rel}`")
    raw = parts.read(ws.path(manifest.folder), manifest.partitions, where=rel)
    frame = _select(ws, raw, manifest, which)
    parts.check_digest(frame, manifest, rel)
    return frame


def _select(ws: Workspace, raw: pd.DataFrame, manifest: Manifest, which: str) -> pd.DataFrame:
    from modelcycle.steps import split as sp
    from modelcycle.steps import validate as va

    window = Window.parse(manifest.window)
    clean, _report, kept = va.validate_rows(raw, ws.config.data, window_start=window.start,
                                            where=f"(window {window}, rebuilt from {manifest.folder})")
    recorded = manifest.selection.get("dropped_rows")
    if recorded is not None and parts.ranges(~kept) != recorded:
        from modelcycle.errors import VersioningError

        raise VersioningError(
            f"validation now drops other rows of {manifest.folder} than the cycle of {manifest.window} did "
            f"({int((~kept).sum())} rows, the cycle {sum(b - a for a, b in recorded)})",
            "the data contract (modelcycle.yaml data.columns, data.rules) changed since: check out the cycle's "
            "tag whole (`git checkout <tag> && dvc checkout`) to rebuild its rows")
    if which == "clean":
        return clean
    fraction = float(manifest.selection.get("holdout_fraction", ws.params.split.holdout_fraction))
    split = sp.chronological(clean, timestamp=ws.config.data.timestamp, window_start=window.start,
                             window_end=window.end, holdout_fraction=fraction, window_label=window.label)
    return split.train if which == "train" else split.holdout

