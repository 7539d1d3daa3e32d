"""The ``torch`` trainer's settings, read from params.yaml ``model:`` (no PyTorch here).

Every key is optional::

    model:
      epochs: 10               # passes over the training rows
      batch_size: 32
      learning_rate: 0.001     # Adam's step size
      weight_decay: 0.0        # Adam's L2 penalty
      image_size: 28           # or [height, width]; default: the first training image's size,
                               # scaled down to at most 64 pixels a side
      channels: 1              # 1 (grayscale) or 3 (RGB); default: the first training image's
      patience: 3              # stop after this many epochs without a better val_loss (default: never)
      validation_fraction: 0.2 # the share of the training rows held back to pick the best epoch
      filters: [16, 32]        # the small CNN's convolution widths, one 3x3 conv + 2x2 pool each
      dropout: 0.25            # before the CNN's last layer
      threads: 1               # CPU threads while training (results are reproducible per count)
      backbone: backbone.pt    # transfer learning: a local TorchScript file, images -> features
      fine_tune: false         # train the backbone's weights too (default: frozen)

The seed is params.yaml's top-level ``seed``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from modelcycle.errors import ConfigError
from modelcycle.steps.train import TrainSpec

#: The largest side of the default image size (the first training image's, scaled down).
DEFAULT_MAX_SIDE = 64


@dataclass(frozen=True)
class TorchParams:
    """The torch trainer's params.yaml ``model:`` values (see the module doc)."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    patience: int | None = None
    validation_fraction: float = 0.2
    filters: tuple[int, ...] = (16, 32)
    dropout: float = 0.25
    threads: int = 1
    backbone: str | None = None
    fine_tune: bool = False


NAMES = [f.name for f in fields(TorchParams)]


def _where(key: str) -> str:
    return f"params.yaml `model.{key}`"


def _problem(key: str, value: Any, expected: str) -> ConfigError:
    hint = f"give `{key}` {expected} under `model:` in params.yaml, or remove it to use the default"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            pass
        else:
            hint = f"write the number without quotes and with a dot (e.g. `{key}: {float(value)!r}`)"
    return ConfigError(f"{_where(key)} is {value!r}, but the torch trainer expects {expected} there", hint)


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _problem(key, value, f"a whole number of at least {minimum}")
    return int(value)


def _float(key: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and (value > low if low_open else value >= low) and value <= high:
        return float(value)
    bound = f"{'more than' if low_open else 'at least'} {low:g}" + (f" and at most {high:g}" if high < 1e300 else "")
    raise _problem(key, value, f"a number {bound}")


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _int("image_size", value[0], 1), _int("image_size", value[1], 1)
    if isinstance(value, (list, tuple)):
        raise _problem("image_size", value, "one number (a square) or two, [height, width]")
    side = _int("image_size", value, 1)
    return side, side


def parse(params: dict[str, Any]) -> TorchParams:
    """The settings of params.yaml ``model:``; a ConfigError naming a key that is unknown (with
    the closest known one) or a value of the wrong kind."""
    unknown = [str(k) for k in params if str(k) not in NAMES]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, NAMES, n=1, cutoff=0.6)
        mean = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{_where(key)}: the torch trainer has no parameter '{key}'{mean}",
                          f"fix or remove the key under `model:` in params.yaml; the torch trainer takes "
                          f"{', '.join(NAMES)}")
    values: dict[str, Any] = {}
    for key, value in params.items():
        if value is None and key in ("image_size", "channels", "patience", "backbone"):
            continue
        if key in ("epochs", "batch_size", "patience", "threads"):
            values[key] = _int(key, value, 1)
        elif key == "learning_rate":
            values[key] = _float(key, value, 0.0, 1e308, low_open=True)
        elif key == "weight_decay":
            values[key] = _float(key, value, 0.0, 1e308)
        elif key == "validation_fraction":
            values[key] = _float(key, value, 0.0, 0.5, low_open=True)
        elif key == "dropout":
            values[key] = _float(key, value, 0.0, 0.95)
        elif key == "image_size":
            values[key] = _size(value)
        elif key == "channels":
            if isinstance(value, bool) or value not in (1, 3):
                raise _problem(key, value, "1 (grayscale) or 3 (RGB)")
            values[key] = int(value)
        elif key == "filters":
            items = value if isinstance(value, (list, tuple)) else [value]
            if not items:
                raise _problem(key, value, "a list of positive whole numbers, e.g. [16, 32]")
            values[key] = tuple(_int(key, v, 1) for v in items)
        elif key == "backbone":
            if not isinstance(value, str) or not value.strip():
                raise _problem(key, value, "the path of a TorchScript file (text)")
            values[key] = value.strip()
        elif key == "fine_tune":
            if not isinstance(value, bool):
                raise _problem(key, value, "true or false")
            values[key] = value
    return TorchParams(**values)


def image_column(spec: TrainSpec) -> str:
    """The column holding the images: the only feature column, else the one named ``image``."""
    if spec.features:
        raise ConfigError(f"features.builder ({spec.features}) is set, but the torch trainer reads the images "
                          "themselves and builds no features", "remove features.builder from modelcycle.yaml")
    candidates = spec.feature_columns or [c for c in spec.input_columns if c != spec.target]
    if len(candidates) == 1:
        return candidates[0]
    if "image" in candidates:
        return "image"
    raise ConfigError(f"the torch trainer reads one image column, but the features are {', '.join(candidates)}",
                      "name it alone: `features: {columns: [<the image column>]}` in modelcycle.yaml")


def default_size(width: int, height: int) -> tuple[int, int]:
    """(H, W): an image's own size, scaled down to at most :data:`DEFAULT_MAX_SIDE` a side."""
    scale = min(1.0, DEFAULT_MAX_SIDE / max(width, height, 1))
    return max(1, round(height * scale)), max(1, round(width * scale))


def validation_rows(codes: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows to train on and of the validation rows: ``fraction`` of each class
    (stratified; a class of one row stays in training), drawn with ``seed``; at least one row."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for code in np.unique(codes):
        members = rng.permutation(np.flatnonzero(codes == code))
        take = min(int(round(fraction * len(members))), len(members) - 1)
        held.append(members[:take])
    val = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    if len(val) == 0 and len(codes) > 1:
        val = np.array([int(rng.integers(len(codes)))])
    train = np.setdiff1d(np.arange(len(codes)), val)
    return train.astype(np.int64), val.astype(np.int64)
