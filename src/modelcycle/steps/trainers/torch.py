"""The ``torch`` trainer: an image classifier in PyTorch (``model.trainer: torch``).

It reads the workspace's image column (:func:`~modelcycle.steps.trainers.torchparams.image_column`;
each cell a path, bytes or base64 text, see :mod:`modelcycle.steps.images`) and the target's
class labels, and trains, with the settings of params.yaml ``model:``
(:mod:`~modelcycle.steps.trainers.torchparams`):

* by default a small CNN (a 3x3 convolution, ReLU and 2x2 max-pooling per ``filters`` entry,
  then dropout and a linear layer);
* with ``backbone: <file>``, transfer learning: a local TorchScript file (``torch.jit.save`` of
  any module mapping an N x C x H x W image batch to N x F features; nothing is downloaded) whose
  weights stay frozen (unless ``fine_tune: true``) under a linear head that is trained.

Training holds back a seeded, stratified ``validation_fraction`` of the training rows, logs
``train_loss``, ``val_loss`` and ``val_accuracy`` per epoch (``Trained.history``) and keeps the
weights of the epoch with the lowest ``val_loss`` (``Trained.best_epoch``; ``patience`` stops
early). It is deterministic on CPU: params.yaml's ``seed`` seeds the weights, dropout and the
shuffling, deterministic algorithms are enforced and the thread count is fixed while it trains,
so the same seed and data give the same weights.

The trained model is a :class:`TorchImageModel`, the picklable pipeline object the registry's
writer saves inside the generic pyfunc: it keeps the network's weights as NumPy arrays (and the
backbone as TorchScript bytes) and rebuilds the network when first used after unpickling.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from modelcycle.errors import ConfigError, DataError, ModelError
from modelcycle.steps import images
from modelcycle.steps.train import Trained, TrainSpec
from modelcycle.steps.trainers import PipelineWriter
from modelcycle.steps.trainers import torchparams as tp

_PREDICT_BATCH = 256


class SmallCNN(nn.Module):
    """Per ``filters`` entry a 3x3 convolution, ReLU and 2x2 max-pooling; then a linear layer."""

    def __init__(self, channels: int, size: tuple[int, int], classes: int, filters: Sequence[int],
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width, (h, w) = channels, size
        for out in filters:
            layers += [nn.Conv2d(width, out, kernel_size=3, padding=1), nn.ReLU()]
            if h >= 2 and w >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * h * w, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BackboneNet(nn.Module):
    """A backbone (images -> features) under a linear head; the backbone stays in eval mode and
    its weights are not trained unless ``fine_tune``."""

    def __init__(self, backbone: nn.Module, features: int, classes: int, fine_tune: bool) -> None:
        super().__init__()
        self.backbone, self.fine_tune = backbone, fine_tune
        self.head = nn.Linear(features, classes)
        for p in self.backbone.parameters():
            p.requires_grad_(fine_tune)

    def train(self, mode: bool = True) -> BackboneNet:
        super().train(mode)
        if not self.fine_tune:
            self.backbone.eval()  # frozen: batch-norm statistics and dropout stay as they are
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.backbone(x), 1))


def _script(data: bytes) -> nn.Module:
    module: nn.Module = torch.jit.load(io.BytesIO(data), map_location="cpu")  # type: ignore[no-untyped-call]
    return module


def _script_bytes(module: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()


def backbone_path(ref: str, root: str | None) -> Path:
    """The backbone file: relative to the workspace (``root``), else to the current directory."""
    path = Path(ref).expanduser()
    if path.is_absolute():
        return path
    tried = [Path(root) / path] if root else []
    tried.append(Path.cwd() / path)
    return next((p for p in tried if p.exists()), tried[0])


def load_backbone(ref: str, root: str | None, channels: int, size: tuple[int, int]) -> tuple[nn.Module, bytes, int]:
    """The TorchScript backbone ``ref`` names, its file's bytes and its number of features; a
    ConfigError naming the file when it is missing, not TorchScript or maps images to no features."""
    path = backbone_path(ref, root)
    where = f"params.yaml `model.backbone`: {path}"
    hint = ("give the path (relative to the workspace) of a file written with torch.jit.save(torch.jit.script(m)) "
            "or torch.jit.save(torch.jit.trace(m, example)) of a module mapping N x C x H x W images to N x F features")
    if not path.is_file():
        raise ConfigError(f"{where} does not exist", hint)
    data = path.read_bytes()
    try:
        module = _script(data)
    except Exception as exc:  # torch raises RuntimeError, ValueError or its own errors for a bad file
        raise ConfigError(f"{where} is not a TorchScript file torch can load ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})", hint) from exc
    try:
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(2, channels, *size))
        if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != 2:
            raise ValueError(f"it returned {type(out).__name__} {tuple(getattr(out, 'shape', ()))}, "
                             "not one feature row per image")
    except Exception as exc:  # the user's module: report its own error
        raise ConfigError(f"{where} does not map a batch of {channels} x {size[0]} x {size[1]} images to features "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                          "set `image_size` and `channels` under `model:` to what the backbone takes") from exc
    return module, data, int(out[0].numel())


class TorchImageModel:
    """The trained classifier as the registry saves it (see the trainers' module doc): raw
    records in (``input_columns``: the image column, a path, bytes or base64 text per cell),
    class labels out (``predict``), class probabilities in the order of ``classes``
    (``predict_proba``). Picklable with CloudPickle: the network is rebuilt from ``arch``,
    ``state`` (NumPy weights) and ``backbone_script`` (TorchScript bytes) when first used."""

    task = "classification"
    features = None

    def __init__(self, *, image_column: str, target: str, classes: list[Any], image_size: tuple[int, int],
                 channels: int, arch: dict[str, Any], state: dict[str, np.ndarray],
                 backbone_script: bytes | None, metadata: dict[str, Any]) -> None:
        self.image_column, self.target, self.classes = image_column, target, classes
        self.input_columns = [image_column]
        self.image_columns = [image_column]
        self.image_size, self.channels = image_size, channels
        self.arch, self.state, self.backbone_script, self.metadata = arch, state, backbone_script, metadata
        self._net: nn.Module | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_net"] = None
        return state

    def network(self) -> nn.Module:
        """The network in eval mode (built once)."""
        if self._net is None:
            backbone = _script(self.backbone_script) if self.backbone_script else None
            # Built on the meta device, then given the saved weights: building draws no random
            # numbers, so a champion loaded while a challenger trains in another thread leaves the
            # training's seeded random stream (weights, shuffles, dropout) as it is.
            with torch.device("meta"):
                net = build_network(self.arch, self.channels, self.image_size, len(self.classes), backbone)
            target = net.head if isinstance(net, BackboneNet) else net
            target.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()}, assign=True)
            self._net = net.eval()
        return self._net

    def pixels(self, frame: pd.DataFrame) -> np.ndarray:
        """The images of ``frame``'s image column as N x C x H x W pixels in [0, 1]."""
        if self.image_column not in frame.columns:
            raise DataError(f"the records have no column '{self.image_column}', which the model reads its images from",
                            f"send a '{self.image_column}' column holding file paths, bytes or base64 text")
        return images.batch(frame[self.image_column].tolist(), self.image_size, self.channels,
                            column=self.image_column, rows=list(frame.index))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        net = self.network()
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(frame), _PREDICT_BATCH):  # a batch of images in memory at a time
                pixels = self.pixels(frame.iloc[start:start + _PREDICT_BATCH])
                out.append(torch.softmax(net(torch.from_numpy(pixels)), dim=1).double().numpy())
        return np.concatenate(out) if out else np.empty((0, len(self.classes)))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        labels = np.asarray(self.classes)
        if labels.dtype.kind in "US":
            labels = labels.astype(object)
        return labels[np.argmax(self.predict_proba(frame), axis=1)] if len(frame) else labels[:0]


def build_network(arch: dict[str, Any], channels: int, size: tuple[int, int], classes: int,
                  backbone: nn.Module | None) -> nn.Module:
    if arch["kind"] == "backbone":
        if backbone is None:
            raise ModelError("the model's backbone is missing", "train the model again")
        return BackboneNet(backbone, int(arch["features"]), classes, bool(arch["fine_tune"]))
    return SmallCNN(channels, size, classes, arch["filters"], float(arch["dropout"]))


def _classes(labels: pd.Series) -> list[Any]:
    values = [v.item() if isinstance(v, np.generic) else v for v in pd.unique(labels)]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _losses(net: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``net`` (eval mode) on ``X``, ``y``."""
    net.eval()
    total, right = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            logits = net(X[start:start + batch_size])
            target = y[start:start + batch_size]
            total += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
            right += int((logits.argmax(dim=1) == target).sum())
    return total / max(len(X), 1), right / max(len(X), 1)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train_network(net: nn.Module, X: torch.Tensor, y: torch.Tensor, Xv: torch.Tensor, yv: torch.Tensor,
                  p: tp.TorchParams, seed: int) -> tuple[list[dict[str, float]], int]:
    """Train ``net`` in place; returns the history and the best epoch, whose weights it ends with."""
    generator = torch.Generator().manual_seed(seed)
    trainable = [q for q in net.parameters() if q.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=p.learning_rate, weight_decay=p.weight_decay)
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state, waited = float("inf"), 1, _state(net), 0
    for epoch in range(1, p.epochs + 1):
        net.train()
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for start in range(0, len(X), p.batch_size):
            idx = order[start:start + p.batch_size]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(net(X[idx]), y[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += loss.item() * len(idx)
        val_loss, val_accuracy = _losses(net, Xv, yv, max(p.batch_size, _PREDICT_BATCH))
        history.append({"epoch": epoch, "train_loss": total / len(X), "val_loss": val_loss,
                        "val_accuracy": val_accuracy})
        if not np.isfinite(val_loss) and epoch == 1:
            raise ModelError(f"training diverged: the validation loss is {val_loss} after the first epoch",
                             "lower `learning_rate` under `model:` in params.yaml")
        if val_loss < best_loss:
            best_loss, best_epoch, best_state, waited = val_loss, epoch, _state(net), 0
        else:
            waited += 1
            if p.patience is not None and waited >= p.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return history, best_epoch


class _Deterministic:
    """Seeded, deterministic, fixed-thread PyTorch inside the block; the caller's global RNG,
    determinism setting and thread count are put back after it."""

    def __init__(self, seed: int, threads: int) -> None:
        self.seed, self.threads = seed, threads

    def __enter__(self) -> None:
        self._rng = torch.random.fork_rng(devices=[])
        self._rng.__enter__()
        self._was = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
        torch.manual_seed(self.seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc: Any) -> None:
        torch.use_deterministic_algorithms(self._was[0])
        torch.set_num_threads(self._was[1])
        self._rng.__exit__(*exc)


def fit(train: pd.DataFrame, spec: TrainSpec) -> Trained:
    """Train the image classifier on ``train`` (see the module doc)."""
    p = tp.parse(spec.params)  # params.yaml mistakes surface before any work
    column = tp.image_column(spec)
    if spec.task != "classification":
        raise ConfigError(f"the torch trainer trains classifiers, and data.task is {spec.task}",
                          "set `data: {task: classification}` in modelcycle.yaml, or use the sklearn trainer")
    for needed in (column, spec.target):
        if needed not in train.columns:
            raise DataError(f"the training rows have no column '{needed}'", "check data.columns in modelcycle.yaml")
    if len(train) < 2:
        raise DataError(f"there are {len(train)} rows to train on; the torch trainer needs at least two")
    labels = train[spec.target]
    if labels.isna().any():
        raise DataError(f"{int(labels.isna().sum())} training rows have no '{spec.target}'",
                        "give every image a label, or let validation drop the rows without one")
    classes = _classes(labels)
    if len(classes) < 2:
        raise DataError(f"the training rows hold a single class of '{spec.target}' ({classes[0]!r})",
                        "a classifier needs at least two classes: widen the window or the history")
    started = time.perf_counter()
    cells = train[column].tolist()
    first = images.open_image(cells[0], row=train.index[0], column=column)
    size = p.image_size or tp.default_size(*first.size)
    channels = p.channels or images.channels_of(first)
    pixels = images.batch(cells, size, channels, column=column, rows=list(train.index))
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[v.item() if isinstance(v, np.generic) else v] for v in labels], dtype=np.int64)
    fit_rows, val_rows = tp.validation_rows(codes, p.validation_fraction, spec.seed)
    script: bytes | None = None
    with _Deterministic(spec.seed, p.threads):
        if p.backbone:
            backbone, script, width = load_backbone(p.backbone, spec.root, channels, size)
            arch: dict[str, Any] = {"kind": "backbone", "features": width, "fine_tune": p.fine_tune,
                                    "file": p.backbone}
            net = build_network(arch, channels, size, len(classes), backbone)
        else:
            arch = {"kind": "cnn", "filters": list(p.filters), "dropout": p.dropout}
            net = build_network(arch, channels, size, len(classes), None)
        X, y = torch.from_numpy(pixels), torch.from_numpy(codes)
        try:
            history, best_epoch = train_network(net, X[fit_rows], y[fit_rows], X[val_rows], y[val_rows], p,
                                                spec.seed)
        except RuntimeError as exc:
            raise ModelError(f"training the torch model failed: {exc}",
                             "check `image_size`, `channels` and the backbone under `model:` in params.yaml") from exc
    if isinstance(net, BackboneNet):
        state = {k: v.numpy().copy() for k, v in _state(net.head).items()}
        if p.fine_tune:
            script = _script_bytes(net.backbone)
    else:
        state = {k: v.numpy().copy() for k, v in _state(net).items()}
    model = TorchImageModel(
        image_column=column, target=spec.target, classes=classes, image_size=size, channels=channels, arch=arch,
        state=state, backbone_script=script,
        metadata={"trainer": "torch", "params": dict(spec.params), "train_rows": len(train),
                  "validation_rows": len(val_rows), "best_epoch": best_epoch, "seed": spec.seed})
    model._net = net
    return Trained(model=model, fit_seconds=time.perf_counter() - started, rows=len(train), history=history,
                   best_epoch=best_epoch)


def pip_requirements() -> list[str]:
    """The model's own requirements beyond what its pickle names: torch pinned to the installed
    release (never unpinned: that pulls a CUDA build of several GB) and Pillow, which reads the images."""
    import importlib.metadata

    pins = [f"torch=={torch.__version__.split('+', 1)[0]}"]
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # Pillow is a dependency
        pins.append(f"pillow=={importlib.metadata.version('pillow')}")
    return pins


def portable_example(model: TorchImageModel, example: pd.DataFrame) -> pd.DataFrame:
    """``example`` with each image as the base64 text of a PNG of the model's size, so that the
    saved input example does not name files of this machine."""
    frame = example[[c for c in model.input_columns if c in example.columns]].copy()
    column = model.image_column
    if column in frame.columns:
        pixels = images.batch(frame[column].tolist(), model.image_size, model.channels, column=column,
                              rows=list(frame.index))
        frame[column] = [images.to_base64_png(images.from_array(p)) for p in pixels]
    return frame.reset_index(drop=True)


class TorchTrainer:
    """:class:`modelcycle.steps.trainers.Trainer` for image classifiers in PyTorch."""

    def fit(self, train: pd.DataFrame, spec: TrainSpec) -> Trained:
        return fit(train, spec)

    def predict(self, model: Any, frame: pd.DataFrame, *, proba: bool = False) -> np.ndarray:
        return np.asarray(model.predict_proba(frame) if proba else model.predict(frame))

    def classes(self, model: Any) -> list[Any] | None:
        return list(model.classes)

    def save(self, trained: Trained, path: str, *, input_example: pd.DataFrame,
             extra_code_paths: Sequence[Any] | None, writer: PipelineWriter) -> None:
        model: TorchImageModel = trained.model
        writer(model, path, input_example=portable_example(model, input_example), extra_code_paths=extra_code_paths,
               extra_pip_requirements=pip_requirements())
