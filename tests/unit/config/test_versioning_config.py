"""modelcycle.yaml's `versioning.push`: required by default, best-effort when the user allows it,
anything else an error naming the key and the choices; `modelcycle config` explains it."""

from pathlib import Path

import pytest

from modelcycle.config import load_config
from modelcycle.errors import ConfigError
from tests.unit.config.test_models import GOOD, write


def test_a_failed_push_fails_the_cycle_unless_the_file_says_otherwise(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).versioning.push == "required"


def test_best_effort_is_read(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD + "versioning: {push: best-effort}\n"))
    assert cfg.versioning.push == "best-effort"


def test_another_value_names_the_key_and_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "versioning: {push: sometimes}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.message
    assert "versioning.push" in err.value.message
    assert "'required' or 'best-effort'" in err.value.message and "sometimes" in err.value.message


def test_a_misspelt_key_is_suggested(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"versioning.pusj: unknown key \(did you mean 'push'\?\)"):
        load_config(write(tmp_path, GOOD + "versioning: {pusj: best-effort}\n"))


def test_modelcycle_config_describes_the_setting() -> None:
    from typer.testing import CliRunner

    from modelcycle.cli.main import _register, app

    _register()
    out = CliRunner().invoke(app, ["config"], env={"COLUMNS": "300"}).output
    lines = out.splitlines()
    at = next(i for i, x in enumerate(lines) if "versioning.push" in x)
    assert "'required'" in lines[at]
    assert "best-effort" in " ".join(lines[at:at + 4])
