"""A workspace with a CSV source of labelled rides and a prediction log of known errors, shared by
the report's and the command's tests.

Every ride's label is ``y = 10 + trip_id``. Three version pairs served, an hour apart on 2025-03-04,
40 labelled rows each (requests of 10 rows):

* v1 with challenger v2: the champion is off by 1 on even ids and 2 on odd ones (MAE 1.5), the
  challenger by 0.5 (MAE 0.5): the challenger is better, by (1.5 - 0.5) / 1.5 = 2/3;
* v2 with challenger v3: the errors swapped (MAE 0.5 vs 1.5): worse, by (0.5 - 1.5) / 0.5 = -2;
* v3 with challenger v4: 1/2 against 2/1 on even/odd ids (MAE 1.5 both): no clear difference.

The first pair also served one request of 10 rows (ids 300-309) that the source has no label for,
and after the three pairs v4 served 5 rows (ids 400-404, labelled) without a challenger.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.config import Workspace
from modelcycle.registry.base import ModelVersion
from modelcycle.serving.shadow import ShadowLog, predictions_dir

CONFIG = """\
name: rides
source: {kind: files, url: "data/*.csv"}
data:
  timestamp: ts
  target: y
  columns: {trip_id: int, ts: datetime, x: float, y: float}
metric: mae
gate: {threshold: 2.5, resamples: 500}
"""

DAY = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
LABELLED = [range(0, 40), range(100, 140), range(200, 240), range(400, 405)]


def label(ids: Any) -> np.ndarray:
    return 10.0 + np.asarray(list(ids), dtype="float64")


def off_by(ids: Any, even: float, odd: float) -> np.ndarray:
    ids = np.asarray(list(ids))
    return label(ids) + np.where(ids % 2 == 0, even, odd)


class Lookup:
    """A challenger whose predictions are given per trip id."""

    def __init__(self, version: str, predictions: dict[int, float]) -> None:
        self.version = ModelVersion("rides", version, f"memory://v{version}")
        self.predictions = predictions

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.array([self.predictions[int(i)] for i in frame["trip_id"]])


def write_source(root: Path, *, when: datetime = DAY) -> None:
    """data/rides.csv: the labelled rides, stamped on the day they were served."""
    ids = [i for r in LABELLED for i in r]
    stamp = when.replace(tzinfo=None)
    frame = pd.DataFrame({"trip_id": ids, "ts": [stamp + timedelta(minutes=i) for i in range(len(ids))],
                          "x": [float(i) for i in ids], "y": label(ids)})
    (root / "data").mkdir(exist_ok=True)
    frame.to_csv(root / "data" / "rides.csv", index=False)


def make_workspace(root: Path, config: str = CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "modelcycle.yaml").write_text(config, encoding="utf-8")
    (root / "params.yaml").write_text("window: 2025-02\n", encoding="utf-8")
    write_source(root)
    return root


def serve_section(**fields: Any) -> SimpleNamespace:
    """A stand-in for modelcycle.yaml's `serve:` section (the fields the report reads)."""
    values = {"shadow": True, "key_columns": ["trip_id"], "label_column": None}
    values.update(fields)
    return SimpleNamespace(**values)


def with_serve(ws: Workspace, **fields: Any) -> Workspace:
    return dataclasses.replace(ws, config=ws.config.model_copy(update={"serve": serve_section(**fields)}))


def serve(root: Path, champion: str, challenger: Lookup | None, ids: list[range], champion_predictions: Any,
          at: datetime, key_columns: tuple[str, ...] = ("trip_id",), extra: dict[str, Any] | None = None,
          errors: int = 0) -> None:
    """Log requests of ``ids`` (one request per range) as the server would, at time ``at``; the
    challenger fails ``errors`` times."""
    log = ShadowLog(predictions_dir(root), challenger=lambda: challenger, key_columns=list(key_columns),
                    clock=lambda: at)
    log.start()
    for n, rows in enumerate(ids):
        frame = pd.DataFrame({"trip_id": list(rows), "x": [float(i) for i in rows], **(extra or {})})
        log.submit(f"{champion}-{at:%H%M}-{n}", frame, champion_predictions(rows), champion)
    log.close()
    assert log.counters()["errors"] == errors


def chunks(ids: range, size: int = 10) -> list[range]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def write_log(root: Path) -> None:
    """The prediction log the module docstring describes."""
    a = range(0, 40)
    serve(root, "1", Lookup("2", dict(zip(range(0, 310), label(range(0, 310)) - 0.5, strict=True))),
          [*chunks(a), range(300, 310)], lambda r: off_by(r, 1, 2), DAY)
    b = range(100, 140)
    serve(root, "2", Lookup("3", dict(zip(b, off_by(b, 1, 2), strict=True))), chunks(b),
          lambda r: label(r) + 0.5, DAY + timedelta(hours=1))
    c = range(200, 240)
    serve(root, "3", Lookup("4", dict(zip(c, off_by(c, 2, 1), strict=True))), chunks(c),
          lambda r: off_by(r, 1, 2), DAY + timedelta(hours=2))
    serve(root, "4", None, [range(400, 405)], lambda r: label(r), DAY + timedelta(hours=3))
