"""params.yaml ``candidates:`` and modelcycle.yaml ``orchestration:``: what loads, and errors that
name the candidate and the key."""

from pathlib import Path

import pytest

from modelcycle.config import load_config, load_params
from modelcycle.errors import ConfigError
from tests.unit.config.test_models import GOOD


def params(tmp_path: Path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_params(path)


def test_no_candidates_is_the_single_challenger(tmp_path):
    p = params(tmp_path, "model: {num_leaves: 31}\n")
    assert p.candidates == {}


def test_candidates_are_named_overrides_of_model(tmp_path):
    p = params(tmp_path, "model: {num_leaves: 31}\ncandidates:\n  base:\n  small: {num_leaves: 7}\n"
                         "  big: {num_leaves: 63, n_estimators: 400}\n")
    assert p.candidates == {"base": {}, "small": {"num_leaves": 7}, "big": {"num_leaves": 63, "n_estimators": 400}}
    assert list(p.candidates) == ["base", "small", "big"]  # the order written (ties go to the first)


@pytest.mark.parametrize("text,words", [
    ("candidates: [small, big]\n", ["candidates:", "a mapping of a name"]),
    ("candidates:\n  small: 7\n", ["candidate 'small' is 7", "small: {}"]),
    ("candidates:\n  2fast: {}\n", ["candidate name '2fast'", "starting with a letter"]),
    ("candidates:\n  deep: {model: {num_leaves: 7}}\n", ["candidate 'deep' key 'model' is a mapping"]),
    ("candidates: {" + ", ".join(f"c{i}: {{}}" for i in range(21)) + "}\n", ["21 candidates: at most 20"]),
])
def test_bad_candidates_are_named(tmp_path, text, words):
    with pytest.raises(ConfigError) as raised:
        params(tmp_path, text)
    assert "params.yaml" in raised.value.message
    for word in words:
        assert word in raised.value.message, raised.value.message


def test_orchestration_defaults_to_threads(tmp_path):
    (tmp_path / "modelcycle.yaml").write_text(GOOD)
    o = load_config(tmp_path / "modelcycle.yaml").orchestration
    assert o.task_runner == "threads" and o.dask_address is None and o.dask_workers == 2


def test_orchestration_dask_settings_are_checked(tmp_path):
    path = tmp_path / "modelcycle.yaml"
    path.write_text(GOOD + "orchestration: {task_runner: dask, dask_address: 'tcp://scheduler:8786'}\n")
    assert load_config(path).orchestration.dask_address == "tcp://scheduler:8786"
    path.write_text(GOOD + "orchestration: {task_runner: dask, dask_address: 'scheduler:8786'}\n")
    with pytest.raises(ConfigError, match="orchestration.dask_address: 'scheduler:8786' is not a Dask scheduler"):
        load_config(path)
    path.write_text(GOOD + "orchestration: {task_runner: ray}\n")
    with pytest.raises(ConfigError, match="orchestration.task_runner"):
        load_config(path)
