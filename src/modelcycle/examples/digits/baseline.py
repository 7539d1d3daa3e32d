"""The benchmark a CNN champion is measured against: a logistic regression on raw pixels.

:func:`logistic_regression` fits scikit-learn's ``LogisticRegression`` on the flattened pixels
(0..1) of the training rows' images and scores it on the held-out rows: the accuracy of the
champion on a cycle's held-out images can then be put beside that of the simplest reasonable
model trained on the same rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.errors import DataError


@dataclass(frozen=True)
class Baseline:
    """The logistic regression's accuracy on the held-out rows, and on how many rows it was fitted."""

    accuracy: float
    train_rows: int
    holdout_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": "logistic regression on raw pixels", "accuracy": self.accuracy,
                "train_rows": self.train_rows, "holdout_rows": self.holdout_rows}


def _located(cell: Any, root: Path | None) -> Any:
    """A relative path of ``cell`` as read from ``root``; any other cell (bytes, base64 text) as it is."""
    from modelcycle.steps import images

    if root is None or not isinstance(cell, (str, os.PathLike)):
        return cell
    text = os.fspath(cell).strip()
    path = Path(text)
    if path.is_absolute() or (isinstance(cell, str) and not (root / path).is_file()
                              and images.text_form(text, paths=False) != images.PATH):
        return cell
    return root / path


def pixels(rows: pd.DataFrame, *, image: str = "image", root: Path | None = None) -> np.ndarray:
    """The greyscale pixels of each row's image (``rows[image]``: a path, relative ones to
    ``root``, or bytes or base64 text, read as validation, training and serving read them:
    :func:`modelcycle.steps.images.open_image`), flattened and scaled to 0..1: an array of rows
    x pixels. DataError naming the row and the image when one cannot be read or has another size
    than the first."""
    from modelcycle.steps import images
    from modelcycle.steps.imagecheck import short_name

    if image not in rows.columns:
        raise DataError(f"the rows have no column '{image}'", f"their columns: {', '.join(map(str, rows.columns))}")
    out: list[np.ndarray] = []
    for position, cell in enumerate(rows[image]):
        located = _located(cell, root)
        path_like = isinstance(located, os.PathLike) or (
            isinstance(located, str) and images.text_form(located) == images.PATH)
        name = os.fspath(located).strip() if path_like else short_name(located)
        try:
            opened = images.open_image(located, row=position, column=image)
            array = np.asarray(opened.convert("L"), dtype=np.float64) / 255.0
        except images.CellError as exc:
            raise DataError(f"row {position}: cannot read the image {name}: {exc.detail}",
                            "give rows whose images passed validation") from exc
        if out and array.shape != out[0].shape:
            raise DataError(f"row {position}: the image {name} is {array.shape[1]}x{array.shape[0]}, "
                            f"the first one {out[0].shape[1]}x{out[0].shape[0]}",
                            "a logistic regression on raw pixels needs images of one size")
        out.append(array)
    if not out:
        raise DataError("no rows to read images from")
    return np.stack(out).reshape(len(out), -1)


def logistic_regression(train: pd.DataFrame, holdout: pd.DataFrame, *, image: str = "image",
                        target: str = "label", root: Path | None = None, seed: int = 0) -> Baseline:
    """Fit a logistic regression on the raw pixels of ``train``'s images and return its accuracy on
    ``holdout``'s (the same columns: ``image``, a file path, and ``target``, the class)."""
    from sklearn.linear_model import LogisticRegression

    for name, rows in (("training", train), ("held-out", holdout)):
        if target not in rows.columns:
            raise DataError(f"the {name} rows have no column '{target}'",
                            f"their columns: {', '.join(map(str, rows.columns))}")
    x_train, x_holdout = pixels(train, image=image, root=root), pixels(holdout, image=image, root=root)
    if x_train.shape[1] != x_holdout.shape[1]:
        raise DataError(f"the training images have {x_train.shape[1]} pixels, the held-out ones {x_holdout.shape[1]}",
                        "score rows of the same image size")
    y_train = train[target].astype(str).to_numpy()
    if len(np.unique(y_train)) < 2:
        raise DataError("the training rows hold a single class", "a classifier needs at least two classes")
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(x_train, y_train)
    predicted = model.predict(x_holdout)
    accuracy = float(np.mean(predicted == holdout[target].astype(str).to_numpy()))
    return Baseline(accuracy=accuracy, train_rows=len(train), holdout_rows=len(holdout))
