"""Which distributions provide a module (for a model's pinned requirements): Python's own answer,
kept in modelcycle's cache folder until something is installed or removed."""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelcycle.registry import packaging


def _install(site: Path, dist: str, module: str) -> None:
    """A distribution as an installer leaves it: the module's folder and its ``.dist-info``."""
    (site / module).mkdir()
    (site / module / "__init__.py").write_text("")
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{module}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "site-packages"
    folder.mkdir()
    _install(folder, "demo-models", "demo_models")
    monkeypatch.syspath_prepend(str(folder))
    packaging._module_distributions.cache_clear()
    yield folder
    packaging._module_distributions.cache_clear()


def _fresh() -> dict[str, list[str]]:
    packaging._module_distributions.cache_clear()  # as a new process would
    return dict(packaging._module_distributions())


def test_the_answer_is_pythons_and_is_kept(site: Path, tmp_path: Path) -> None:
    first = _fresh()
    assert first["demo_models"] == ["demo-models"]
    assert first == importlib.metadata.packages_distributions()
    assert "demo-models==1.0" in packaging.pip_requirements_for({"demo_models"})

    kept_at = tmp_path / "cache" / "modelcycle" / "module-distributions.json"
    kept = json.loads(kept_at.read_text())
    kept["modules"]["only_in_the_cache"] = ["kept"]
    kept_at.write_text(json.dumps(kept))
    assert _fresh()["only_in_the_cache"] == ["kept"]  # the next process reads the kept answer


def test_an_install_is_seen_by_the_next_process(site: Path, tmp_path: Path) -> None:
    _fresh()
    kept_at = tmp_path / "cache" / "modelcycle" / "module-distributions.json"
    before = os.stat(site).st_mtime_ns
    _install(site, "other-models", "other_models")
    os.utime(site, ns=(before + 10**9, before + 10**9))  # the clock moved on since the answer was kept
    again = _fresh()
    assert again["other_models"] == ["other-models"]
    assert "other_models" in json.loads(kept_at.read_text())["modules"]

    for path in sorted(site.glob("other_models*")):
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    os.utime(site, ns=(before + 2 * 10**9, before + 2 * 10**9))
    assert "other_models" not in _fresh()  # uninstalled


def test_a_cache_folder_that_cannot_be_written_still_answers(site: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert _fresh()["demo_models"] == ["demo-models"]
