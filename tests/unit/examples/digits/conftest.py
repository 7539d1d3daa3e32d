"""The digits example written once per test session (about a second) for the tests that only read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.examples.digits import files


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``images/`` and ``images.csv``: every month released, the default seed. Read only."""
    root = tmp_path_factory.mktemp("digits")
    files.write(root / "images", root / "images.csv")
    return root
