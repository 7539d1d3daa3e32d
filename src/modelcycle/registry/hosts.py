"""Which machine ran each cycle: the ``modelcycle.host`` tag of the cycle's MLflow run.

Every cycle tags its run with the machine it ran on (``MODELCYCLE_HOST``, else the hostname);
``status`` and ``history`` read it back here for the runs they show. A run made before the tag
existed, or one the search does not return, has no host: the caller shows a dash.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelcycle.registry.base import Registry

#: the tag of a cycle's MLflow run naming the machine it ran on
HOST_TAG = "modelcycle.host"
#: the tag of a run copied by `modelcycle backends migrate`: the run's id in the old store (as in
#: :mod:`modelcycle.registry.migrate`, which imports MLflow: not imported from there)
MIGRATED_FROM = "modelcycle.migrated_from"


def of_runs(reg: Registry, experiment: str, run_ids: Iterable[str | None]) -> dict[str, str]:
    """The host of each run of ``run_ids`` that carries :data:`HOST_TAG`, by run id: one search of
    the experiment's runs (none at all when no run id is given)."""
    wanted = {r for r in run_ids if r}
    if not wanted:
        return {}
    found: dict[str, str] = {}
    for run in reg.find_runs(experiment, {}):
        host = run.tags.get(HOST_TAG)
        if not host:
            continue
        # a run copied by `backends migrate` answers for the id it had (the records of the past keep it)
        for ident in (run.run_id, run.tags.get(MIGRATED_FROM)):
            if ident in wanted:
                found[ident] = host
    return found
