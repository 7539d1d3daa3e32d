"""The taxifare example's workspace: simulated New York cab rides 2009-01..2015-06 in a DuckDB
warehouse, the seeds' 2.5 MAE gate, the simulator's ground truth as the workspace's reference.

Built through the same seam a team's own template would use,
:func:`modelcycle.lifecycle.workspace.create_from_config`: the example's modelcycle.yaml
(``modelcycle.template.yaml`` beside this module) with the warehouse written before init's
first commit.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template

from modelcycle.config import Workspace

TEMPLATE = "modelcycle.template.yaml"
FIRST_MONTH, LAST_MONTH = "2009-01", "2015-06"
#: Where the warehouse is written (the template's ``source.url``).
WAREHOUSE = "warehouse.duckdb"


def config_text(*, rows_per_month: int, seed: int = 7, min_effect: float = 0.01) -> str:
    """The example's modelcycle.yaml."""
    template = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    return Template(template).substitute(seed=seed, rows_per_month=rows_per_month, min_effect=min_effect)


def create(root: Path, *, rows_per_month: int | None = None, seed: int = 7, min_effect: float = 0.01,
           force: bool = False, progress: Callable[[str], None] = lambda _: None) -> Workspace:
    """Create the taxifare workspace in ``root`` (``modelcycle init --example taxifare``, ``modelcycle demo``)."""
    from modelcycle.examples.taxifare import simulator
    from modelcycle.lifecycle.workspace import create_from_config

    rows = rows_per_month or simulator.DEFAULT_ROWS_PER_MONTH

    def warehouse(ws: Workspace) -> None:
        progress(f"simulating 78 months of cab rides ({rows} a month) into the DuckDB warehouse")
        simulator.write_warehouse(ws.state_dir / WAREHOUSE, FIRST_MONTH, LAST_MONTH,
                                  seed=seed, rows_per_month=rows)

    # a year of history: the challenger has seen every season (6 months leave the summer unseen,
    # and a model trained through a fare change then confuses the season with the new fares)
    return create_from_config(root, config_text(rows_per_month=rows, seed=seed, min_effect=min_effect),
                              model_params=dict(simulator.DEFAULT_MODEL_PARAMS), history_months=12,
                              prepare=warehouse, force=force, progress=progress)


def append(ws: Workspace) -> tuple[str, int]:
    """Append the month after the newest to the workspace's warehouse (``modelcycle demo DIR
    --append``): the month and its rides, simulated with the workspace's own seed and size."""
    from modelcycle.examples.taxifare import simulator

    params = ws.config.reference.params if ws.config.reference else {}
    return simulator.append_month(ws.path(ws.config.source.url), table=ws.config.source.table or "rides",
                                  seed=int(params.get("seed", 7)),
                                  rows_per_month=int(params.get("rows_per_month", simulator.DEFAULT_ROWS_PER_MONTH)))
