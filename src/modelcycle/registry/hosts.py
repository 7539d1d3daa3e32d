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


def of_runs(reg: Registry, experiment: str, run_ids: Iterable[str | None]) -> dict[str, str]:
    """The host of each run of ``run_ids`` that carries :data:`HOST_TAG`, by run id: one search of
    the experiment's runs (none at all when no run id is given)."""
    wanted = {r for r in run_ids if r}
    if not wanted:
        return {}
    return {run.run_id: run.tags[HOST_TAG] for run in reg.find_runs(experiment, {})
            if run.run_id in wanted and run.tags.get(HOST_TAG)}
