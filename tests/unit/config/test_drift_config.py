"""The `drift:` section of modelcycle.yaml: defaults, the columns it compares, its errors."""

from pathlib import Path

import pytest

from modelcycle.config import load_config
from modelcycle.errors import ConfigError
from modelcycle.steps.drift import DEFAULT_THRESHOLD

from .test_models import GOOD, write


def test_drift_defaults_compare_every_column_but_the_timestamp_target_included(tmp_path: Path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.drift.enabled is True
    assert cfg.drift.threshold == DEFAULT_THRESHOLD
    assert cfg.drift.min_rows == 500
    assert cfg.drift_columns() == {"y": "float", "x": "float"}


def test_drift_section_chooses_columns_threshold_and_can_be_off(tmp_path: Path):
    text = GOOD + "drift: {enabled: false, threshold: 0.25, columns: [x], min_rows: 50}\n"
    cfg = load_config(write(tmp_path, text))
    assert (cfg.drift.enabled, cfg.drift.threshold, cfg.drift.min_rows) == (False, 0.25, 50)
    assert cfg.drift_columns() == {"x": "float"}


def test_drift_columns_must_be_declared(tmp_path: Path):
    with pytest.raises(ConfigError, match="drift.columns name column.s. not in data.columns: price"):
        load_config(write(tmp_path, GOOD + "drift: {columns: [x, price]}\n"))


def test_a_misspelt_drift_key_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"drift.treshold: unknown key \(did you mean 'threshold'\?\)"):
        load_config(write(tmp_path, GOOD + "drift: {treshold: 0.2}\n"))


def test_a_threshold_of_zero_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="drift.threshold"):
        load_config(write(tmp_path, GOOD + "drift: {threshold: 0}\n"))


def test_both_workspace_templates_carry_the_drift_section(tmp_path: Path):
    import yaml

    from modelcycle.lifecycle import workspace
    from modelcycle.examples.taxifare import workspace as taxi

    root = Path(workspace.__file__).parent / "templates" / "generic.modelcycle.yaml"
    taxi_template = Path(taxi.__file__).parent / taxi.TEMPLATE
    for path in (root, taxi_template):
        text = path.read_text()
        start = text.index("\ndrift:\n")
        section = yaml.safe_load(text[start:].split("\n\n")[0])
        assert section == {"drift": {"enabled": True, "threshold": DEFAULT_THRESHOLD, "columns": None,
                                     "min_rows": 500}}, path

