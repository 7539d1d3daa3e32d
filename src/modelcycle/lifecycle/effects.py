"""The side effects of a cycle, one undo function each, and crash recovery.

A cycle changes four things outside its own process memory, in this order:

=====================  ==========================================  ===============================
effect                 what it does                                undone by
=====================  ==========================================  ===============================
``workspace``          writes the stage outputs and params.yaml    :func:`restore_workspace`
``commit``             DVC commit, git commit and tag, DVC push    :func:`restore_workspace`
``register``           a new model version in the registry         :func:`unregister`
``alias:challenger``   moves the challenger alias                  :func:`restore_alias`
``alias:champion``     moves the champion alias (promote only)     :func:`restore_alias`
``reject``             records the window as rolled back           :func:`forget_rejection`
=====================  ==========================================  ===============================

A challenger that is not promoted, with ``act.keep_rejected: false``, takes the other way: the
cycle undoes ``workspace`` itself (:func:`restore_workspace`, the undo every rollback uses),
then ``reject`` is its last side effect and commits it (see :mod:`modelcycle.lifecycle.act`).

:func:`perform` journals the intent, runs the side effect and journals it done, with SIGINT and
SIGTERM held back meanwhile (a signal takes effect between two side effects). The last one
done commits the cycle. Three callers undo, all through :func:`undo`: the act block's Prefect
transaction hooks, the cycle's own rollback when it fails or is interrupted
(:func:`roll_back`), and :func:`recover` when a journal outlives its process (the next cycle,
``modelcycle doctor``). Recovery also closes what the dead process left open: its MLflow run
(``KILLED``) and Prefect flow run (``CRASHED``), found by the journal or by the process tag
every cycle's runs carry.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from uuid import UUID
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelcycle import tracepoints
from modelcycle.errors import ModelcycleError, RegistryError
from modelcycle.lifecycle import interrupts, rolledback, runtime
from modelcycle.lifecycle.journal import DONE, INTENT, Journal
from modelcycle.lifecycle.services import Services
from modelcycle.registry import history
from modelcycle.registry.base import CHAMPION, Registry
from modelcycle.registry.base import CHAMPION_TAG as CHAMPION_TAG  # re-exported: its home was here

log = logging.getLogger(__name__)
T = TypeVar("T")

CYCLE_TAG = "modelcycle.cycle"          # on the cycle's MLflow run and model version
PROCESS_TAG = "modelcycle.process"      # on the cycle's MLflow run: host:pid:start
FLOW_PROCESS_TAG = "modelcycle-process"  # Prefect flow-run tag prefix: modelcycle-process:host:pid:start
FLOW_NAMES = ("modelcycle-cycle", "modelcycle-backtest")


# -- the process a run belongs to ----------------------------------------------------------


def process_id() -> str:
    """``host:pid:start`` of this process (start: psutil's create time, whole seconds)."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{int(psutil.Process().create_time())}"


def process_gone(ident: str) -> bool:
    """Is the process named by :func:`process_id` gone? Another host's is never assumed gone."""
    from modelcycle.lifecycle.lock import process_alive

    host, _, rest = ident.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not process_alive(int(pid), host, float(start) if start.isdigit() else None)


# -- undo, one function per side effect ----------------------------------------------------


def restore_workspace(svc: Services, journal: Journal) -> None:
    """Put git (HEAD, tags, index), the owned files and the DVC outputs back as they were."""
    svc.versioning.restore(journal.state)


def unregister(svc: Services, journal: Journal) -> None:
    """Delete the model version(s) the cycle registered, also one whose registration never
    answered (found by the cycle's run)."""
    versions: set[str] = set()
    effect = journal.effect("register")
    if effect is not None and effect.info.get("version"):
        versions.add(str(effect.info["version"]))
    if journal.run_id:
        versions.update(v.version for v in svc.registry.find_versions(svc.name, journal.run_id))
    for version in sorted(versions, key=int):
        svc.registry.delete_version(svc.name, version)


def restore_alias(svc: Services, journal: Journal, alias: str) -> None:
    """Point ``alias`` back at the version it had before the cycle moved it (or remove it)."""
    effect = journal.effect(f"alias:{alias}")
    if effect is None:
        return
    before = effect.info.get("before")
    reg = svc.registry
    holder = reg.get_alias(svc.name, alias)
    current = holder.version if holder else None
    if current != before:
        if before is None:
            reg.delete_alias(svc.name, alias)
        else:
            reg.set_alias(svc.name, alias, before)
        history.record(reg, svc.name, undo_move(journal, alias, current, before))
    else:
        # put back already (an undo repeated after its record failed): the history follows
        recorded = history.last(history.moves(reg, svc.name), alias)
        if recorded is not None and recorded.after != before and _made_by(recorded, journal):
            history.record(reg, svc.name, undo_move(journal, alias, recorded.after, before))
    if alias == CHAMPION and "tag_before" in effect.info:
        reg.set_model_tags(svc.name, {CHAMPION_TAG: effect.info["tag_before"] or ""})


def move_alias(svc: Services, journal: Journal, alias: str, version: str,
               record: Callable[[str | None], history.Move], *, commit: bool) -> str | None:
    """Point ``alias`` at ``version`` as one journaled side effect (``alias:<alias>``, undone by
    :func:`restore_alias`): the champion's tag follows it, and the move (``record(before)``)
    goes to the alias history, or, when the alias held ``version`` already, to the version's
    tags alone. Returns the version the alias held before."""
    reg = svc.registry
    held = reg.get_alias(svc.name, alias)
    before = held.version if held else None
    intent: dict[str, Any] = {"before": before, "to": version}
    if alias == CHAMPION:
        intent["tag_before"] = reg.model_tags(svc.name).get(CHAMPION_TAG)

    def act() -> None:
        reg.set_alias(svc.name, alias, version)
        if alias == CHAMPION:
            reg.set_model_tags(svc.name, {CHAMPION_TAG: version})
        if before != version:
            history.record(reg, svc.name, record(before))
        else:  # pointed again at the version that holds it: no move, the version notes who and why
            reg.set_version_tags(svc.name, version, history.version_tags(record(before)))

    perform(journal, f"alias:{alias}", act, intent=intent, commit=commit)
    return before


_BY_KIND = {"cycle": "cycle", "promote": "human", "rollback": "rollback"}


def _made_by(move: history.Move, journal: Journal) -> bool:
    """Whether ``move`` is the one ``journal``'s change recorded (its kind, since it began)."""
    from datetime import datetime

    if move.by != _BY_KIND.get(journal.kind):
        return False
    try:
        return datetime.fromisoformat(move.time).timestamp() >= int(journal.data.get("started") or 0)
    except ValueError:
        return False


def _change(journal: Journal) -> str:
    """``journal``'s change in words: the cycle for a window, or the command that moved an alias."""
    return f"the cycle for {journal.window}" if journal.kind == "cycle" else f"`modelcycle {journal.kind}`"


def undo_move(journal: Journal, alias: str, current: str | None, before: str | None) -> history.Move:
    """The history's record of an alias put back by a rollback of ``journal``'s change."""
    return history.Move(alias, current, before, history.now(), "undo",
                        reason=f"{_change(journal)} did not finish and was rolled back",
                        window=journal.window if journal.kind == "cycle" else None,
                        flow_run_id=journal.flow_run_id, run_id=journal.run_id)


def forget_rejection(svc: Services, journal: Journal) -> None:
    """Forget that the cycle's window was rolled back: it counts as not processed again."""
    rolledback.forget(svc.ws, journal.window)


UNDO: dict[str, Callable[[Services, Journal], None]] = {
    "workspace": restore_workspace,
    "commit": restore_workspace,
    "register": unregister,
    "alias:challenger": lambda svc, j: restore_alias(svc, j, "challenger"),
    "alias:champion": lambda svc, j: restore_alias(svc, j, CHAMPION),
    "reject": forget_rejection,
}


def undo(svc: Services, journal: Journal, name: str) -> bool:
    """Undo side effect ``name`` if the journal says it may have happened; True if it did. A
    committed cycle is never undone (a failure after its commit point leaves its changes)."""
    effect = journal.effect(name)
    if journal.committed or effect is None or effect.status not in (INTENT, DONE):
        return False
    with interrupts.deferred():
        UNDO[name](svc, journal)
        journal.undone(name)
    return True


# -- doing ---------------------------------------------------------------------------------


def perform(journal: Journal, name: str, action: Callable[[], T], *, intent: dict[str, Any] | None = None,
            result: Callable[[T], dict[str, Any]] | None = None, commit: bool = False) -> T:
    """Journal the intent of ``name``, run ``action``, journal it done (with ``result(value)``);
    ``commit`` marks the cycle committed in that same write. Signals wait meanwhile."""
    with interrupts.deferred(_say_finishing(name)):
        tracepoints.reach(f"before:{name}")
        journal.intent(name, **(intent or {}))
        value = action()
        tracepoints.reach(f"did:{name}")
        journal.done(name, result(value) if result else None, last=commit)
        tracepoints.reach(f"after:{name}")
    return value


_WHAT = {"commit": "the git commit and DVC snapshot", "register": "the model's registration",
         "alias:challenger": "the challenger alias", "alias:champion": "the champion alias",
         "reject": "the record of the rolled-back window"}


def _say_finishing(name: str) -> Callable[[int, interrupts.Held], None]:
    def on_signal(_signum: int, held: interrupts.Held) -> None:
        if len(held) == 1:
            from modelcycle.console import err_console

            err_console.print(f"[muted]stopping once {_WHAT.get(name, name)} is done, then rolling back[/muted]")
    return on_signal


# -- rolling back --------------------------------------------------------------------------


@dataclass
class Rollback:
    """What a rollback undid, in words."""

    undone: list[str] = field(default_factory=list)
    version: str | None = None

    def describe(self) -> str:
        parts = []
        if "commit" in self.undone:
            parts.append("the git commit and tag")
        if "workspace" in self.undone or "commit" in self.undone:
            parts.append("the DVC outputs and params.yaml")
        if "register" in self.undone:
            parts.append(f"model version {self.version}" if self.version else "the model version")
        if any(u.startswith("alias:") for u in self.undone):
            parts.append("the aliases")
        if "reject" in self.undone:
            parts.append("the record of the rolled-back window")
        return ", ".join(parts) if parts else "nothing had changed"


def roll_back(svc: Services, journal: Journal) -> Rollback:
    """Undo every side effect the journal marks intent or done, newest first. A failure is
    raised after the others were tried (the journal then stays for ``modelcycle doctor``)."""
    done = Rollback()
    register = journal.effect("register")
    if register is not None and register.info.get("version"):
        done.version = str(register.info["version"])
    problems: list[str] = []
    for effect in reversed(journal.effects()):
        try:
            if undo(svc, journal, effect.name):
                done.undone.append(effect.name)
        except ModelcycleError as exc:
            problems.append(f"{effect.name}: {exc.message}")
    if problems:
        raise RegistryError("the rollback did not finish: " + "; ".join(problems),
                            "run `modelcycle doctor` once the backends answer again; it repeats "
                            "the rollback safely")
    return done


def close_run(registry: Registry, run_id: str | None, status: str, tags: dict[str, str]) -> None:
    """End an MLflow run with ``status`` and ``tags``; a registry that does not answer is logged."""
    if not run_id:
        return
    try:
        registry.set_tags(run_id, tags)
        registry.end_run(run_id, status)
    except ModelcycleError:
        log.debug("could not close MLflow run %s", run_id, exc_info=True)


# -- recovery ------------------------------------------------------------------------------


def recover(svc: Services, *, sweep: bool = True) -> str | None:
    """Repair what a dead cycle left in this workspace; a sentence saying what was done, or
    None. The caller holds the workspace lock. A journal whose owner still runs is left alone."""
    journal = Journal.open(svc.ws)
    said: list[str] = []
    if journal is not None:
        if journal.owner_alive():
            from modelcycle.errors import WorkspaceError

            raise WorkspaceError(
                f"a cycle for {journal.window} is running: {journal.owner()} started it and still runs",
                "wait for it to finish; modelcycle only repairs a cycle whose process is gone")
        _wait_for_orphans(svc.ws.root)
        cleared = svc.versioning.clear_stale_locks()
        if cleared:
            said.append(f"removed the lock file(s) a killed git left: {', '.join(cleared)}")
        said.append(_repair(svc, journal))
    if sweep:
        closed = close_orphan_runs(svc)
        if closed:
            said.append(closed)
    return "; ".join(said) or None


def _repair(svc: Services, journal: Journal) -> str:
    what = _change(journal)
    status_tags = {"modelcycle.recovered": "", "modelcycle.error": f"the process running the cycle "
                   f"({journal.owner()}) stopped before the cycle ended"}
    if journal.committed:
        status_tags["modelcycle.recovered"] = "committed: the cycle's changes stand"
        _close_dead(svc, journal, status_tags)
        journal.end()
        return f"{what} had committed before its process stopped; its bookkeeping is now closed"
    rollback = roll_back(svc, journal)
    status_tags["modelcycle.recovered"] = f"rolled back: {rollback.describe()}"
    _close_dead(svc, journal, status_tags)
    journal.end()
    return f"{what} stopped midway; rolled back {rollback.describe()}"


def _close_dead(svc: Services, journal: Journal, tags: dict[str, str]) -> None:
    run_ids = {journal.run_id} if journal.run_id else set()
    try:
        run_ids.update(r.run_id for r in svc.registry.find_runs(svc.name, {CYCLE_TAG: journal.cycle},
                                                                 status="RUNNING"))
    except ModelcycleError:
        log.debug("could not search the dead cycle's runs", exc_info=True)
    for run_id in run_ids:
        close_run(svc.registry, run_id, "KILLED", tags)
    if journal.flow_run_id:
        crash_flow_runs([journal.flow_run_id], "the process running this cycle stopped; "
                        "modelcycle's recovery closed it")


def _wait_for_orphans(root: Any, timeout: float = 10.0) -> None:
    """A killed cycle's git child may still be finishing its write: wait for it (briefly)."""
    import psutil

    root = str(root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = []
        for proc in psutil.process_iter(["name", "cwd"]):
            try:
                if proc.info["name"] in ("git", "git-remote-http") and proc.info["cwd"] == root:
                    busy.append(proc)
            except (psutil.Error, KeyError):
                continue
        if not busy:
            return
        psutil.wait_procs(busy, timeout=0.5)


_swept: set[str] = set()


def sweep_beside(svc: Services) -> Callable[[], str | None]:
    """:func:`close_orphan_runs` in a thread beside the cycle (what dead processes left running
    does not change what this cycle does; searching for it costs a cycle's setup 0.2-0.6 s);
    returns the function that waits for it and says what it closed."""
    done = runtime.beside(close_orphan_runs, svc, name="modelcycle-sweep")  # with Prefect's settings

    def wait() -> str | None:
        try:
            said = done.result()
        except Exception as exc:  # noqa: BLE001 - bookkeeping of other processes never fails a cycle
            log.warning("could not close what stopped processes left running: %s", exc)
            return None
        if said:
            log.warning("%s", said)
        return said

    return wait


def close_orphan_runs(svc: Services, *, again: bool = False) -> str | None:
    """Close runs left RUNNING by cycles whose process is gone (once per process and
    workspace, unless ``again``): MLflow runs (``KILLED``) by their process tag, and Prefect
    flow runs (``CRASHED``) by theirs."""
    key = str(svc.ws.root)
    if key in _swept and not again:
        return None
    _swept.add(key)
    closed_runs = 0
    try:
        for run in svc.registry.find_runs(svc.name, {}, status="RUNNING"):
            if PROCESS_TAG in run.tags and process_gone(run.tags[PROCESS_TAG]):
                close_run(svc.registry, run.run_id, "KILLED", {
                    "modelcycle.recovered": "closed: the process running this cycle stopped"})
                closed_runs += 1
    except ModelcycleError:
        log.debug("could not search for orphan MLflow runs", exc_info=True)
    crashed = crash_orphan_flow_runs()
    parts = []
    if closed_runs:
        parts.append(f"{closed_runs} MLflow run(s) marked KILLED")
    if crashed:
        parts.append(f"{crashed} Prefect flow run(s) marked CRASHED")
    return ("closed what stopped processes left running: " + ", ".join(parts)) if parts else None


# -- Prefect flow runs ---------------------------------------------------------------------


def crash_flow_runs(ids: list[str], message: str) -> int:
    """Mark these flow runs (and a parent flow run, for a backtest's month) CRASHED unless they
    are final already; returns how many changed."""
    try:
        from prefect import get_client
        from prefect.states import Crashed
    except ImportError:  # pragma: no cover - prefect is a dependency
        return 0
    changed = 0
    try:
        with get_client(sync_client=True) as client:
            todo = list(ids)
            seen: set[str] = set()
            while todo:
                run_id = todo.pop()
                if run_id in seen:
                    continue
                seen.add(run_id)
                run = client.read_flow_run(UUID(run_id))
                if run.parent_task_run_id:
                    parent = client.read_task_run(run.parent_task_run_id)
                    if parent.flow_run_id:
                        todo.append(str(parent.flow_run_id))
                if run.state is not None and not run.state.is_final():
                    client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                    changed += 1
    except Exception:
        log.debug("could not mark flow runs %s crashed", ids, exc_info=True)
    return changed


def crash_orphan_flow_runs() -> int:
    """Flow runs not yet final whose process tag names a process that is gone -> CRASHED."""
    try:
        from prefect import get_client
        from prefect.client.schemas.filters import (
            FlowFilter,
            FlowFilterName,
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort
    except ImportError:  # pragma: no cover
        return 0
    dead: list[str] = []
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_NAMES))),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                    any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]))),
                sort=FlowRunSort.ID_DESC, limit=200)  # the server refuses a filter without a sort
            for run in runs:
                tags = [t for t in run.tags if t.startswith(FLOW_PROCESS_TAG + ":")]
                if tags and process_gone(tags[0][len(FLOW_PROCESS_TAG) + 1:]):
                    dead.append(str(run.id))
    except Exception:
        log.debug("could not search for orphan flow runs", exc_info=True)
        return 0
    if not dead:
        return 0
    return crash_flow_runs(dead, "the process running this flow stopped; modelcycle's recovery closed it")
