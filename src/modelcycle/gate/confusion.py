"""What two classifiers got right and wrong on the same held-out rows.

Beside the metric, the gate reports each model's confusion matrix and the *flips*: rows the
challenger gets wrong that the champion got right (negative flips: what a user would see break
after a promotion) and the reverse (positive flips). Two models with the same accuracy can still
disagree on many rows; the flips say how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelcycle.steps.evaluate import CLASSIFICATION_METRICS, Scores, sorted_labels

CONFUSION_FILE = "confusion.json"   # the MLflow artifact of both matrices


def plain(value: Any) -> Any:
    """A label as JSON writes it (numpy scalars become Python's)."""
    return value.item() if isinstance(value, np.generic) else value


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: list[Any]) -> list[list[int]]:
    """Counts of rows per (actual, predicted) label: ``matrix[i][j]`` rows of class ``labels[i]``
    predicted as ``labels[j]``."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for actual, predicted in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        i, j = index.get(actual), index.get(predicted)
        if i is not None and j is not None:   # a missing label (NaN) is in no cell
            matrix[i, j] += 1
    return matrix.tolist()


@dataclass(frozen=True)
class Comparison:
    """Both models' confusion matrices on the same rows, and the flips between them."""

    labels: list[Any]
    rows: int
    challenger: list[list[int]]
    champion: list[list[int]] | None = None
    negative_flips: int | None = None   # champion right, challenger wrong
    positive_flips: int | None = None   # champion wrong, challenger right

    def to_dict(self) -> dict[str, Any]:
        """The artifact's content (``confusion.json``): rows are actual classes, columns predicted."""
        return {"labels": [plain(v) for v in self.labels], "rows": self.rows,
                "axes": "rows: actual class, columns: predicted class",
                "challenger": self.challenger, "champion": self.champion,
                "negative_flips": self.negative_flips, "positive_flips": self.positive_flips}

    def sentence(self) -> str | None:
        """``negative flips: 7 of 300 (champion right, challenger wrong); positive flips: 19
        (champion wrong, challenger right)``; None without a champion."""
        if self.negative_flips is None:
            return None
        return (f"negative flips: {self.negative_flips} of {self.rows} (champion right, challenger wrong); "
                f"positive flips: {self.positive_flips} (champion wrong, challenger right)")


def _scored(s: Scores | None) -> bool:
    return s is not None and s.rows > 0 and len(s.y_pred) == s.rows == len(s.y_true)


def compare(champion: Scores | None, challenger: Scores) -> Comparison | None:
    """The comparison of two classifiers' predictions on the same rows (the champion may be None);
    None for a regression metric or scores without their predictions."""
    if challenger.metric not in CLASSIFICATION_METRICS or not _scored(challenger):
        return None
    champ = champion if _scored(champion) else None
    if champ is not None and not np.array_equal(champ.y_true, challenger.y_true):
        raise ValueError("champion and challenger must be scored on the same held-out rows")
    y = challenger.y_true
    labels = sorted_labels(y, challenger.y_pred, champ.y_pred if champ is not None else None)
    matrix = confusion_matrix(y, challenger.y_pred, labels)
    if champ is None:
        return Comparison(labels, challenger.rows, matrix)
    right_before, right_now = champ.y_pred == y, challenger.y_pred == y
    return Comparison(labels, challenger.rows, matrix, confusion_matrix(y, champ.y_pred, labels),
                      negative_flips=int((right_before & ~right_now).sum()),
                      positive_flips=int((~right_before & right_now).sum()))
