"""The torch trainer on tiny images: scikit-learn's 8x8 digits written as PNG files."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelcycle.errors import ConfigError, DataError
from modelcycle.steps.train import TrainSpec
from modelcycle.steps.trainers import trainer_for
from modelcycle.steps.trainers import torchparams as tp

torch = pytest.importorskip("torch", reason="the torch extra is not installed: pip install 'modelcycle[torch]'")

ROWS = 300  # 200 to train on, 100 to score


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    data = load_digits()
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i in range(ROWS):
        path = folder / f"{i:04d}.png"
        Image.fromarray((data.images[i] * 255 / 16).astype(np.uint8), mode="L").save(path)
        paths.append(str(path))
    return pd.DataFrame({"image": paths, "label": [str(t) for t in data.target[:ROWS]],
                         "added_at": pd.date_range("2024-01-01", periods=ROWS, freq="h")})


def spec(root: Path | None = None, seed: int = 7, **params: object) -> TrainSpec:
    return TrainSpec(estimator="", target="label", task="classification", input_columns=["image", "label", "added_at"],
                     feature_columns=["image"], params={"epochs": 3, "learning_rate": 0.01, **params}, seed=seed,
                     root=str(root) if root else None)


def weights(model: object) -> dict[str, np.ndarray]:
    return model.state  # type: ignore[attr-defined,no-any-return]


def test_it_learns_the_digits_well_above_chance_and_predicts_their_labels(digits: pd.DataFrame) -> None:
    trainer = trainer_for("torch")
    trained = trainer.fit(digits.iloc[:200], spec())
    scored = digits.iloc[200:].drop(columns=["label"])
    predictions = trainer.predict(trained.model, scored)
    assert set(predictions) <= {str(d) for d in range(10)}
    assert (predictions == digits["label"].iloc[200:].to_numpy()).mean() > 0.5  # chance is 0.1
    assert trainer.classes(trained.model) == [str(d) for d in range(10)]
    proba = trainer.predict(trained.model, scored, proba=True)
    assert proba.shape == (100, 10) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(np.asarray(trainer.classes(trained.model), dtype=object)[proba.argmax(axis=1)], predictions)
    assert trained.rows == 200 and trained.fit_seconds > 0
    assert [h["epoch"] for h in trained.history] == [1, 2, 3]
    assert set(trained.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy"}


def test_the_same_seed_gives_the_same_weights_and_another_seed_others(digits: pd.DataFrame) -> None:
    trainer = trainer_for("torch")
    rows = digits.iloc[:120]
    first, second = (trainer.fit(rows, spec(epochs=2)) for _ in range(2))
    other = trainer.fit(rows, spec(seed=8, epochs=2))
    assert first.history == second.history
    for key, value in weights(first.model).items():
        assert np.array_equal(value, weights(second.model)[key]), key
    assert any(not np.array_equal(v, weights(other.model)[k]) for k, v in weights(first.model).items())
    assert torch.get_num_threads() >= 1 and not torch.are_deterministic_algorithms_enabled()  # put back


def test_a_champion_loaded_while_a_challenger_trains_leaves_its_training_as_it_is(digits: pd.DataFrame) -> None:
    """A cycle scores the champion in one thread while the challenger trains in another: the
    champion's network, rebuilt from its saved weights, draws no random numbers, so the
    challenger's weights are those it gets alone."""
    import threading

    trainer = trainer_for("torch")
    rows = digits.iloc[:120]
    champion = trainer.fit(rows, spec(epochs=1)).model
    state = torch.get_rng_state()
    cloudpickle.loads(cloudpickle.dumps(champion)).network()
    assert torch.equal(state, torch.get_rng_state())
    alone = trainer.fit(rows, spec(epochs=2))
    done, loads = threading.Event(), [0]

    def load_champions() -> None:
        while not done.is_set():
            cloudpickle.loads(cloudpickle.dumps(champion)).predict(rows.iloc[:2])
            loads[0] += 1

    scorer = threading.Thread(target=load_champions)
    scorer.start()
    try:
        beside = trainer.fit(rows, spec(epochs=2))
    finally:
        done.set()
        scorer.join()
    assert loads[0] > 1
    assert beside.history == alone.history
    for key, value in weights(alone.model).items():
        assert np.array_equal(value, weights(beside.model)[key]), key


def test_the_best_epoch_is_kept_and_patience_stops_early(digits: pd.DataFrame) -> None:
    trainer = trainer_for("torch")
    rows = digits.iloc[:150]
    trained = trainer.fit(rows, spec(epochs=25, learning_rate=0.05, patience=2))
    losses = [h["val_loss"] for h in trained.history]
    assert trained.best_epoch == int(np.argmin(losses)) + 1
    assert len(losses) < 25, "the validation loss of 150 digits at a high rate should stop improving"
    assert len(losses) == trained.best_epoch + 2  # two epochs without a better val_loss, then it stopped
    # the kept weights are the best epoch's: their loss on the validation rows is the best one
    codes = np.array([int(v) for v in rows["label"]])
    _, val = tp.validation_rows(codes, 0.2, 7)
    proba = trainer.predict(trained.model, rows.iloc[val], proba=True)
    loss = -np.mean(np.log(proba[np.arange(len(val)), codes[val]]))
    assert loss == pytest.approx(min(losses), rel=1e-4)


def test_the_model_pickles_and_reads_paths_bytes_and_base64(digits: pd.DataFrame) -> None:
    trainer = trainer_for("torch")
    trained = trainer.fit(digits.iloc[:100], spec(epochs=1))
    rows = digits.iloc[200:205].drop(columns=["label"]).reset_index(drop=True)
    want = trainer.predict(trained.model, rows, proba=True)
    again = cloudpickle.loads(cloudpickle.dumps(trained.model))
    assert again._net is None
    raw = [Path(p).read_bytes() for p in rows["image"]]
    for cells in (list(rows["image"]), raw, [base64.b64encode(b).decode() for b in raw]):
        got = again.predict_proba(rows.assign(image=cells))
        assert np.allclose(got, want, atol=1e-6)
    assert again.input_columns == again.image_columns == ["image"]


def test_a_bad_image_names_its_row(digits: pd.DataFrame, tmp_path: Path) -> None:
    trainer = trainer_for("torch")
    rows = digits.iloc[:40].copy()
    rows.loc[13, "image"] = str(tmp_path / "gone.png")
    with pytest.raises(DataError, match=r"row 13 of 'image': the image file .*gone.png does not exist"):
        trainer.fit(rows, spec(epochs=1))


def test_a_frozen_backbone_keeps_its_weights_and_a_head_is_trained(digits: pd.DataFrame, tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 24), torch.nn.BatchNorm1d(24),
                                   torch.nn.ReLU())
    torch.jit.save(torch.jit.script(backbone), str(tmp_path / "backbone.pt"))
    before = {k: v.clone() for k, v in torch.jit.load(str(tmp_path / "backbone.pt")).state_dict().items()}
    trainer = trainer_for("torch")
    trained = trainer.fit(digits.iloc[:200], spec(tmp_path, backbone="backbone.pt", image_size=8, channels=1,
                                                  epochs=4, learning_rate=0.05))
    net = trained.model.network()
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, before[key]), key  # weights and batch-norm statistics untouched
    again = cloudpickle.loads(cloudpickle.dumps(trained.model))
    for key, value in again.network().backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    scored = digits.iloc[200:]
    accuracy = (trainer.predict(again, scored) == scored["label"].to_numpy()).mean()
    assert accuracy > 0.3  # a linear head on 24 random features, 4 epochs; chance is 0.1
    tuned = trainer.fit(digits.iloc[:200], spec(tmp_path, backbone="backbone.pt", fine_tune=True, epochs=2))
    tuned_net = cloudpickle.loads(cloudpickle.dumps(tuned.model)).network()
    assert not torch.equal(tuned_net.backbone.state_dict()["1.weight"], before["1.weight"])


def test_a_missing_or_unloadable_backbone_is_a_config_error_naming_it(digits: pd.DataFrame, tmp_path: Path) -> None:
    trainer = trainer_for("torch")
    with pytest.raises(ConfigError, match=r"model.backbone`: .*nowhere.pt does not exist"):
        trainer.fit(digits.iloc[:20], spec(tmp_path, backbone="nowhere.pt"))
    (tmp_path / "junk.pt").write_text("not torchscript")
    with pytest.raises(ConfigError, match=r"junk.pt is not a TorchScript file"):
        trainer.fit(digits.iloc[:20], spec(tmp_path, backbone="junk.pt"))


def test_unknown_or_wrong_params_are_config_errors_naming_the_key(digits: pd.DataFrame) -> None:
    trainer = trainer_for("torch")
    with pytest.raises(ConfigError, match=r"`model.epoch`: the torch trainer has no parameter 'epoch'; "
                                          r"did you mean 'epochs'\?") as caught:
        trainer.fit(digits.iloc[:20], spec(epoch=3))
    assert "batch_size" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match=r"`model.learning_rate` is '1e-3'") as caught:
        trainer.fit(digits.iloc[:20], spec(learning_rate="1e-3"))
    assert "without quotes" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match=r"`model.channels` is 2"):
        trainer.fit(digits.iloc[:20], spec(channels=2))
    assert tp.parse({"image_size": [8, 12]}).image_size == (8, 12)
    assert tp.parse({"image_size": 8}).image_size == (8, 8)


def test_without_pytorch_the_trainer_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    monkeypatch.delitem(sys.modules, "modelcycle.steps.trainers.torch", raising=False)
    with pytest.raises(ConfigError) as caught:
        trainer_for("torch")
    assert caught.value.message == "model.trainer: torch needs PyTorch: pip install 'modelcycle[torch]'"


def test_the_validation_rows_are_stratified_and_seeded() -> None:
    codes = np.array([0] * 50 + [1] * 10 + [2])
    train, val = tp.validation_rows(codes, 0.2, 3)
    assert sorted(np.concatenate([train, val])) == list(range(61))
    assert list(np.bincount(codes[val], minlength=3)) == [10, 2, 0]  # a class of one row stays in training
    assert np.array_equal(val, tp.validation_rows(codes, 0.2, 3)[1])
    assert not np.array_equal(val, tp.validation_rows(codes, 0.2, 4)[1])
