"""``modelcycle doctor``: repair what stopped cycles left, then check every part of a workspace.

Each check gives a :class:`Finding`: what was looked at, whether it is fine, what was seen and,
for a problem, what to do. The caller holds the workspace lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelcycle.errors import ModelcycleError
from modelcycle.lifecycle import effects
from modelcycle.lifecycle.services import Services
from modelcycle.registry.base import CHAMPION


@dataclass(frozen=True)
class Finding:
    area: str
    ok: bool
    text: str
    hint: str | None = None


def _check(area: str, fn: Callable[[], Finding | None]) -> Finding | None:
    try:
        return fn()
    except ModelcycleError as exc:
        return Finding(area, False, exc.message, exc.hint)


def reached(area: str, check: Callable[[], str]) -> Finding:
    """A backend's finding: what ``check`` saw, or the ModelcycleError it raised."""
    return _check(area, lambda: Finding(area, True, check())) or Finding(area, True, "answers")


def examine(svc: Services, *, registry_check: Callable[[], str | None] | None = None,
            prefect_check: Callable[[], str] | None = None, remote_check: Callable[[], str] | None = None,
            dask_check: Callable[[], str] | None = None, moved: str | None = None) -> list[Finding]:
    """Repair, then check. ``registry_check`` / ``prefect_check`` / ``remote_check`` (the DVC
    remote) / ``dask_check`` (the scheduler the candidates train on, when they train on Dask)
    reach the backends with a short timeout (they raise a ModelcycleError naming the URL, or
    the setting, when they cannot);
    ``moved`` says where the workspace's store was pointed after a move or copy."""
    findings: list[Finding] = []

    def add(finding: Finding | None) -> None:
        if finding is not None:
            findings.append(finding)

    if moved:
        add(Finding("workspace", True, f"moved or copied: its MLflow store now points at its own artifacts ({moved})"))

    def committable() -> Finding | None:
        from modelcycle.lifecycle.services import refuse_literal_secrets

        refuse_literal_secrets(svc.ws)
        return None
    add(_check("config", committable))
    registry_ok = True
    if registry_check is not None:
        def reach_registry() -> Finding:
            said = registry_check()
            return Finding("MLflow", True, said or "answers")
        found = _check("MLflow", reach_registry)
        registry_ok = bool(found and found.ok)
        add(found)
    if prefect_check is not None:
        add(reached("Prefect", prefect_check))
    if remote_check is not None:
        add(reached("DVC remote", remote_check))
    if dask_check is not None:
        add(reached("Dask", dask_check))

    if registry_ok:
        def repair() -> Finding:
            said = effects.recover(svc, sweep=False)
            closed = effects.close_orphan_runs(svc, again=True)
            text = "; ".join(s for s in (said, closed) if s)
            return Finding("repair", True, f"repaired: {text}" if text else "no half-done cycle, no run left open")
        add(_check("repair", repair))
    else:
        add(Finding("repair", False, "skipped: the MLflow store does not answer",
                    "run `modelcycle doctor` again once it answers"))

    add(_check("git", lambda: _git(svc)))
    add(_check("DVC", lambda: _data(svc)))
    add(_check("plots", lambda: _plots(svc)))
    add(_check("data layout", lambda: _layout(svc)))
    if svc.ws.params.candidates:
        add(_check("candidates", lambda: _candidates(svc)))
    if registry_ok:
        add(_check("champion", lambda: _champion(svc)))

    def source() -> Finding:
        svc.source.check()
        return Finding("source", True, f"answers ({svc.source.describe()})")
    add(_check("source", source))
    return findings


def _git(svc: Services) -> Finding:
    ver = svc.versioning
    cleared = ver.clear_stale_locks()
    head = ver.head()
    branch = ver.branch()
    if head is not None and branch is None:
        return Finding("git", False, f"HEAD is detached at {head[:10]}: cycles refuse to run",
                       "`git switch main` (or `git switch -c NEW-BRANCH` to keep commits made there)")
    text = f"on {(branch or '').removeprefix('refs/heads/') or '?'}, HEAD {(head or 'none')[:10]}"
    if cleared:
        text += f"; removed lock file(s) a killed git left: {', '.join(cleared)}"
    return Finding("git", True, text)


def _data(svc: Services) -> Finding:
    missing = svc.versioning.missing_data()
    cache, remote = missing.get("cache", []), missing.get("remote", [])
    if not cache and not remote:
        return Finding("DVC", True, "the committed data and model are in the cache and the remote")
    lost = sorted(set(cache) & set(remote))
    if lost:
        return Finding("DVC", False, f"the data of {', '.join(lost)} (the latest cycle's) is in neither the "
                       "DVC cache nor the remote: that cycle cannot be reproduced or restored",
                       "if another copy of the cache or the remote exists, point DVC at it and `dvc push`; "
                       "otherwise the next cycle records new data")
    if cache:
        return Finding("DVC", False, f"missing from the DVC cache: {', '.join(cache)} (the remote has it)",
                       "`dvc pull` brings it back")
    return Finding("DVC", False, f"not in the DVC remote: {', '.join(remote)}",
                   "`dvc push` sends it (check the remote's address and credentials)")


def _plots(svc: Services) -> Finding:
    """Add to dvc.yaml the plots `dvc plots show` draws that it lacks (a workspace made before
    dvc.yaml declared them, or whose trainer now learns in epochs)."""
    from modelcycle.lifecycle.stages import learns_in_epochs
    from modelcycle.versioning import setup

    added = setup.add_plots(svc.ws.root, svc.ws.config.data.task, epochs=learns_in_epochs(svc.ws))
    if added:
        return Finding("plots", True, f"added to dvc.yaml what `dvc plots show` draws: {', '.join(added)} "
                       "(the next cycle commits it, or `git commit dvc.yaml`)")
    return Finding("plots", True, "dvc.yaml declares what `dvc plots show` draws")


def _layout(svc: Services) -> Finding:
    """Move a dvc.yaml of single Parquet files per stage (a workspace made before month
    partitions) to the partitioned layout: each month's rows stored once."""
    from modelcycle.versioning import setup

    changed = setup.partition_pipeline(svc.ws.root)
    if changed:
        return Finding("data layout", True,
                       f"dvc.yaml now stores each month's rows once (data/raw/) and the data sets as manifests "
                       f"(stages {', '.join(changed)}); the next cycle commits it, or `git commit dvc.yaml`. "
                       "data/raw.parquet, clean, train and holdout.parquet may be deleted: the earlier cycles' tags "
                       "restore them with `dvc checkout`")
    return Finding("data layout", True, "each month's rows are stored once (data/raw/)")


def _candidates(svc: Services) -> Finding:
    """Make dvc.yaml's train stage depend on params.yaml's candidates (a workspace made before
    params.yaml could list them), so `dvc exp run -S candidates...` reruns it."""
    from modelcycle.versioning import setup

    if setup.track_candidates(svc.ws.root):
        return Finding("candidates", True, "dvc.yaml's train stage now depends on all of params.yaml (its "
                       "candidates included) and on the held-out rows; the next cycle commits it, or "
                       "`git commit dvc.yaml`")
    return Finding("candidates", True, "dvc.yaml's train stage reruns when params.yaml's candidates change")


def _champion(svc: Services) -> Finding:
    reg = svc.registry
    current = reg.get_alias(svc.name, CHAMPION)
    expected = reg.model_tags(svc.name).get(effects.CHAMPION_TAG)
    if current is not None:
        return Finding("champion", True, f"v{current.version} (window {current.tags.get('window', '?')})")
    if expected:
        return Finding("champion", False, f"modelcycle made v{expected} the champion, and no version holds the "
                       "alias now (deleted or moved away outside modelcycle): the next cycle escalates",
                       "`modelcycle promote --version N` names the champion")
    return Finding("champion", True, "none yet (the first cycle that meets the threshold promotes one)")
