"""The pure helpers of scripts/screenshots.py (`make screenshots`); the script itself drives
Chromium and real servers and is run by hand, not by the suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image, ImageDraw

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"


@pytest.fixture(scope="module")
def shots() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONFIG = """metric: mae

gate:
  threshold: 2.5
  min_effect: 0.01        # smaller gains are not worth a deployment

drift:
  enabled: true
  threshold: 0.1      # a column drifts when its PSI is above this
"""


def test_the_gate_threshold_changes_and_nothing_else(shots: ModuleType) -> None:
    changed = shots.with_gate_threshold(CONFIG, "0.5")
    assert changed == CONFIG.replace("threshold: 2.5", "threshold: 0.5")


def test_a_gate_threshold_after_other_keys_keeps_its_comment(shots: ModuleType) -> None:
    text = "gate:   # the rule\n  min_effect: 0.01\n\n  threshold: 2.5   # MAE\ndrift:\n  threshold: 0.1\n"
    assert shots.with_gate_threshold(text, "0.5") == text.replace("2.5   # MAE", "0.5   # MAE")


def test_no_gate_threshold_is_said(shots: ModuleType) -> None:
    with pytest.raises(SystemExit, match="no gate.threshold"):
        shots.with_gate_threshold("drift:\n  threshold: 0.1\n", "0.5")


def test_a_blank_page_is_told_from_a_drawn_one(shots: ModuleType, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), "white").save(blank)
    assert shots.blankness(blank) is not None

    drawn = tmp_path / "drawn.png"
    img = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(img)
    for i in range(40):
        draw.rectangle((i * 10, i * 7, i * 10 + 60, i * 7 + 20), fill=(i * 6, 255 - i * 6, (i * 37) % 256))
    img.save(drawn)
    assert shots.blankness(drawn) is None


def test_the_screenshots_in_the_readme_exist(shots: ModuleType) -> None:
    readme = (SCRIPT.parents[1] / "README.md").read_text()
    for name in ("prefect-runs", "prefect-approval", "mlflow-experiment", "mlflow-model"):
        assert f"docs/screenshots/{name}.png" in readme
        assert (SCRIPT.parents[1] / "docs" / "screenshots" / f"{name}.png").stat().st_size > 20_000
