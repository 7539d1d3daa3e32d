"""The digits example's workspace: scikit-learn's handwritten digits as PNG files in class
folders, released monthly 2014-07..2015-06, a small CNN behind the seeds' 95% accuracy gate.

Built through the same seam a team's own template would use,
:func:`modelcycle.lifecycle.workspace.create_from_config`: the example's modelcycle.yaml
(``modelcycle.template.yaml`` beside this module) with the images and their index written into
``data/`` before init's first commit.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from modelcycle.config import Workspace
from modelcycle.errors import ConfigError

TEMPLATE = "modelcycle.template.yaml"
#: Where the images and their index are written (the template's ``source.url`` and ``source.index``).
IMAGES, INDEX = "data/images", "data/images.csv"
#: params.yaml ``model:`` of the torch trainer: a small CNN on 8x8 greyscale images.
MODEL_PARAMS: dict[str, Any] = {"epochs": 40, "batch_size": 32, "learning_rate": 0.003,
                                "filters": [32, 64], "dropout": 0.5, "validation_fraction": 0.1,
                                "image_size": 8, "channels": 1}
#: Months before a window a challenger also trains on: all the history for every batch.
HISTORY_MONTHS = 12


def config_text(*, seed: int | None = None, min_effect: float = 0.01) -> str:
    """The example's modelcycle.yaml."""
    template = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    from modelcycle.examples.digits.release import SEED

    return Template(template).substitute(seed=SEED if seed is None else seed, min_effect=min_effect)


def create(root: Path, *, seed: int | None = None, batches: int | None = None, min_effect: float = 0.01,
           force: bool = False, progress: Callable[[str], None] = lambda _: None) -> Workspace:
    """Create the digits workspace in ``root`` (``modelcycle init --example digits``, the demo):
    the history and the first ``batches`` monthly batches (all six by default) released."""
    from modelcycle.examples.digits import files, release
    from modelcycle.lifecycle.workspace import create_from_config

    seed = release.SEED if seed is None else int(seed)
    count = len(release.BATCH_MONTHS) if batches is None else int(batches)
    if not 0 <= count <= len(release.BATCH_MONTHS):
        raise ConfigError(f"the digits example has {len(release.BATCH_MONTHS)} monthly batches, not {batches}",
                          f"give a number from 0 to {len(release.BATCH_MONTHS)}")
    through = release.BATCH_MONTHS[count - 1] if count else release.HISTORY_MONTHS[-1]

    def images(ws: Workspace) -> None:
        progress(f"writing scikit-learn's handwritten digits as PNG files into {IMAGES} "
                 f"(history 2014-07..2014-12{f', batches 2015-01..{through}' if count else ''})")
        files.write(ws.path(IMAGES), ws.path(INDEX), seed=seed, through=through)

    return create_from_config(root, config_text(seed=seed, min_effect=min_effect),
                              model_params=dict(MODEL_PARAMS), history_months=HISTORY_MONTHS,
                              prepare=images, force=force, progress=progress)


def append(ws: Workspace) -> tuple[str, int]:
    """Release the next monthly batch into the workspace's images folder and index (``modelcycle
    demo DIR --append``): the month and its file count, with the workspace's own seed."""
    from modelcycle.examples.digits import files, release

    params = ws.config.reference.params if ws.config.reference else {}
    index = getattr(ws.config.source, "index", None) or INDEX
    return files.release_next(ws.path(ws.config.source.url), ws.path(index), seed=int(params.get("seed", release.SEED)))
