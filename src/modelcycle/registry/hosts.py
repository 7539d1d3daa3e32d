"""Where each cycle ran: the ``modelcycle.host`` and ``modelcycle.worker`` tags of its MLflow run.

Every cycle tags its run with the machine it ran on (``MODELCYCLE_HOST``, else the hostname) and,
when a `modelcycle worker` started it, with that worker's name; ``status`` and ``history`` read
them back here for the runs they show. A run made before the host tag existed, or one the search
does not return, has no host: the caller shows a dash. A cycle typed in a terminal has no worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from modelcycle.errors import ModelcycleError
from modelcycle.registry.base import Registry

#: the tag of a cycle's MLflow run naming the machine it ran on
HOST_TAG = "modelcycle.host"
#: the tag of a cycle's MLflow run naming the `modelcycle worker` that ran it (none when typed)
WORKER_TAG = "modelcycle.worker"
#: the tag of a run copied by `modelcycle backends migrate`: the run's id in the old store (as in
#: :mod:`modelcycle.registry.migrate`, which imports MLflow: not imported from there)
MIGRATED_FROM = "modelcycle.migrated_from"


class Ran(NamedTuple):
    """Where a cycle ran: the machine, and the worker that started it (None when none did, or
    for what is unknown)."""

    host: str | None = None
    worker: str | None = None


#: where a run without a host ran, or one not found: unknown
UNKNOWN = Ran()


def tags(host: str, worker: str | None) -> dict[str, str]:
    """The tags that say where a cycle runs: :data:`HOST_TAG`, and :data:`WORKER_TAG` when a
    worker started it."""
    return {HOST_TAG: host, **({WORKER_TAG: worker} if worker else {})}


def of_runs(reg: Registry, experiment: str, run_ids: Iterable[str | None]) -> dict[str, Ran]:
    """Where each run of ``run_ids`` that carries :data:`HOST_TAG` ran, by run id: one search of
    the experiment's runs (none at all when no run id is given)."""
    wanted = {r for r in run_ids if r}
    if not wanted:
        return {}
    found: dict[str, Ran] = {}
    for run in reg.find_runs(experiment, {}):
        host = run.tags.get(HOST_TAG)
        if not host:
            continue
        ran = Ran(host, run.tags.get(WORKER_TAG) or None)
        # a run copied by `backends migrate` answers for the id it had (the records of the past keep it)
        for ident in (run.run_id, run.tags.get(MIGRATED_FROM)):
            if ident in wanted:
                found[ident] = ran
    return found


def shown(reg: Registry, experiment: str, run_ids: Iterable[str | None]) -> dict[str, Ran]:
    """:func:`of_runs` for a command that shows them beside what it is for (``status``'s
    versions and decisions, ``history``'s moves): none when the runs cannot be read, so the rest
    is still shown."""
    try:
        return of_runs(reg, experiment, run_ids)
    except ModelcycleError:
        return {}
