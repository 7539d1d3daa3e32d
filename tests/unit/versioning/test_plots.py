"""The plots a workspace's dvc.yaml declares for `dvc plots show`, and how an older dvc.yaml gets them."""

from __future__ import annotations

from importlib import resources

import yaml

from modelcycle.versioning import setup


def names(plots: list[dict]) -> list[str]:
    return [next(iter(p)) for p in plots]


def test_a_classifier_gets_the_challengers_confusion_matrix():
    (confusion,) = setup.plots("classification", epochs=False)
    spec = confusion["confusion"]
    assert spec["template"] == "confusion" and spec["x"] == "actual"
    assert spec["y"] == {"reports/predictions.csv": "challenger"}


def test_a_regressor_gets_predicted_against_actual_for_both_models():
    (scatter,) = setup.plots("regression", epochs=False)
    spec = scatter["predicted_vs_actual"]
    assert spec["template"] == "scatter" and spec["x"] == "actual"
    assert spec["y"] == {"reports/predictions.csv": ["challenger", "champion"]}


def test_only_a_trainer_that_learns_in_epochs_gets_a_learning_curve():
    assert names(setup.plots("classification", epochs=True)) == ["confusion", "learning_curve"]
    curve = setup.plots("regression", epochs=True)[1]["learning_curve"]
    assert curve["x"] == "epoch" and curve["y"] == {"reports/learning_curve.csv": ["train_loss", "val_loss"]}


def test_the_text_init_appends_is_the_same_plots():
    text = setup.plots_yaml("classification", epochs=True)
    assert text.startswith("# `dvc plots show`")
    assert yaml.safe_load(text) == {"plots": setup.plots("classification", epochs=True)}


OLDER = resources.files("modelcycle.lifecycle").joinpath("templates", "dvc.yaml").read_text()


def test_an_older_dvc_yaml_gets_the_plots_it_lacks_and_keeps_the_rest(tmp_path):
    (tmp_path / "dvc.yaml").write_text(OLDER)
    assert setup.add_plots(tmp_path, "regression", epochs=False) == ["predicted_vs_actual"]
    text = (tmp_path / "dvc.yaml").read_text()
    assert text.startswith(OLDER)  # the file as it was, the plots after it
    data = yaml.safe_load(text)
    assert data["stages"] == yaml.safe_load(OLDER)["stages"]
    assert data["plots"] == setup.plots("regression", epochs=False)
    assert setup.add_plots(tmp_path, "regression", epochs=False) == []  # again: nothing to add
    assert (tmp_path / "dvc.yaml").read_text() == text


def test_a_trainer_switched_to_epochs_adds_the_learning_curve_beside_the_users_own_plots(tmp_path):
    (tmp_path / "dvc.yaml").write_text(OLDER + "plots:\n  - mine.csv: {x: a}\n  - predicted_vs_actual: {x: b}\n")
    assert setup.add_plots(tmp_path, "regression", epochs=True) == ["learning_curve"]
    plots = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["plots"]
    assert plots[:2] == [{"mine.csv": {"x": "a"}}, {"predicted_vs_actual": {"x": "b"}}]  # the user's, untouched
    assert names(plots[2:]) == ["learning_curve"]


def test_no_dvc_yaml_is_left_alone(tmp_path):
    assert setup.add_plots(tmp_path, "regression", epochs=True) == []
    assert not (tmp_path / "dvc.yaml").exists()
