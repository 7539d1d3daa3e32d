"""The digits workspace: its modelcycle.yaml and params, the images init writes, the next batch."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yaml

from modelcycle.cli import examples
from modelcycle.config import load_config
from modelcycle.config.models import ProjectConfig
from modelcycle.config.plugins import BUILTIN_SOURCES, BUILTIN_TRAINERS
from modelcycle.errors import ConfigError, SourceError
from modelcycle.examples.digits import release, workspace
from modelcycle.lifecycle import workspace as wsmod

#: What modelcycle must know before it can load the example's modelcycle.yaml.
MERGED = "images" in BUILTIN_SOURCES and "torch" in BUILTIN_TRAINERS and "act" in ProjectConfig.model_fields


def test_the_config_is_the_image_workspace_of_the_plan():
    config = yaml.safe_load(workspace.config_text(seed=5))
    assert config["source"] == {"kind": "images", "url": "data/images", "index": "data/images.csv"}
    data = config["data"]
    assert (data["timestamp"], data["target"], data["task"]) == ("added_at", "label", "classification")
    assert data["columns"] == {"image": "image", "label": "category", "added_at": "datetime"}
    assert data["rules"] == {"image": {"size": [8, 8], "modes": ["L"]}}
    assert config["model"] == {"trainer": "torch"} and config["metric"] == "accuracy"
    assert config["gate"]["threshold"] == 0.95 and config["act"] == {"keep_rejected": False}
    assert config["reference"] == {"factory": "modelcycle.examples.digits.scenario:DigitsReference",
                                   "params": {"seed": 5}}
    assert yaml.safe_load(workspace.config_text())["reference"]["params"] == {"seed": release.SEED}
    # every placeholder filled; only the comment's example of a password reference is left
    assert re.findall(r"\$\{(\w+)\}", workspace.config_text()) == ["MLFLOW_DB_PASSWORD"]


@pytest.mark.skipif(not MERGED, reason="needs the images source, the torch trainer and the act section")
def test_modelcycle_loads_the_config(tmp_path):
    (tmp_path / "modelcycle.yaml").write_text(workspace.config_text())
    config = load_config(tmp_path / "modelcycle.yaml")
    assert config.source.kind == "images" and config.model.trainer == "torch"


def fake_workspace(root: Path, seed: int = release.SEED) -> Any:
    source = SimpleNamespace(url=workspace.IMAGES, index=workspace.INDEX)
    config = SimpleNamespace(source=source, reference=SimpleNamespace(params={"seed": seed}))
    return SimpleNamespace(root=root, config=config, path=lambda p: root / p)


@pytest.fixture
def made(monkeypatch, tmp_path) -> dict[str, Any]:
    """create() with modelcycle's workspace creation replaced by one that runs the example's
    `prepare` on a folder (git, DVC and MLflow are the lifecycle's own tests' business)."""
    seen: dict[str, Any] = {}

    def create_from_config(root, text, *, model_params, history_months, prepare, force, progress):
        seen.update(root=root, text=text, model_params=model_params, history_months=history_months)
        ws = fake_workspace(root)
        prepare(ws)
        return ws

    monkeypatch.setattr(wsmod, "create_from_config", create_from_config)
    return seen


def test_init_writes_the_history_and_every_batch_with_the_cnns_params(made, tmp_path):
    said: list[str] = []
    ws = examples.create("digits", tmp_path, force=False, progress=said.append)
    index = pd.read_csv(tmp_path / "data/images.csv")
    assert len(index) == 1798 and index["added_at"].max() < "2015-07"
    assert (tmp_path / "data/images/7").is_dir() and ws.root == tmp_path
    assert made["model_params"] == {"epochs": 40, "batch_size": 32, "learning_rate": 0.003,
                                    "filters": [32, 64], "dropout": 0.5, "validation_fraction": 0.1,
                                    "image_size": 8, "channels": 1}
    assert made["history_months"] == 12 and made["text"] == workspace.config_text()
    assert said == ["writing scikit-learn's handwritten digits as PNG files into data/images "
                    "(history 2014-07..2014-12, batches 2015-01..2015-06)"]


def test_append_releases_the_next_batch_until_there_is_none(made, tmp_path):
    ws = workspace.create(tmp_path, batches=0)
    assert pd.read_csv(tmp_path / "data/images.csv")["added_at"].max() < "2015-01"
    assert examples.append("digits", ws) == ("2015-01", 150)
    for _ in range(5):
        examples.append("digits", ws)
    with pytest.raises(SourceError, match="already released"):
        examples.append("digits", ws)
    with pytest.raises(ConfigError, match="has 6 monthly batches, not 7"):
        workspace.create(tmp_path / "other", batches=7)


def test_the_example_is_found_by_name_with_its_first_window_and_months():
    assert "digits" in examples.names()
    package = examples.package("digits")
    assert package.FIRST_WINDOW == "2014-12" and package.DEMO_MONTHS == ("2015-01", "2015-06")
    assert "digits (scikit-learn's 1,797 handwritten 8x8 digits" in examples.about()
    with pytest.raises(ConfigError, match="the example 'digits' has no option --rows-per-month"):
        examples.create("digits", Path("nowhere"), force=False, progress=print, rows_per_month=1000)
