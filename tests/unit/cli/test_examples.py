"""`init --example` and `demo` find the examples by name; the demo deletes only a folder it built."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.cli import demo, examples
from modelcycle.cli.main import main
from modelcycle.errors import ConfigError


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out = capsys.readouterr()
    code = exit_.value.code if isinstance(exit_.value.code, int) else (0 if exit_.value.code is None else 1)
    return code, out.out, out.err


def test_the_examples_are_the_packages_beside_the_core():
    assert "taxifare" in examples.names()
    assert examples.package("taxifare").FIRST_WINDOW == "2014-12"
    assert "taxifare (simulated New York cab rides 2009-2015" in examples.about()


def test_init_help_lists_the_examples(capsys):
    code, out, _ = cli(capsys, "init", "--help")
    assert code == 0
    assert "taxifare (simulated New York cab rides" in " ".join(out.split())


def test_an_unknown_example_or_option_is_named_and_nothing_is_created(tmp_path, capsys):
    with pytest.raises(ConfigError) as err:
        examples.package("imagenette")
    assert err.value.message == "there is no example 'imagenette'" and "taxifare" in err.value.hint
    code, _, errors = cli(capsys, "init", str(tmp_path / "ws"), "--example", "imagenette")
    assert code != 0 and "there is no example 'imagenette'" in errors and "examples: digits, taxifare" in errors
    with pytest.raises(ConfigError, match="the example 'taxifare' has no option --pixels"):
        examples.create("taxifare", tmp_path / "ws", force=False, progress=print, pixels=64)
    assert not (tmp_path / "ws").exists()


def test_the_demo_refuses_a_workspace_it_did_not_build(tmp_path, capsys):
    """A taxifare workspace of one's own, even one whose modelcycle.yaml has the `simulation:`
    section of the older demo, is not the demo's to delete."""
    root = tmp_path / "mine"
    root.mkdir()
    (root / "modelcycle.yaml").write_text("name: taxifare\nsimulation:\n  seed: 7\n  rows_per_month: 1000\n")
    (root / "notes.txt").write_text("my work")
    code, _, errors = cli(capsys, "demo", str(root))
    assert code != 0
    assert "is not a demo workspace" in errors and ".modelcycle/demo.json" in errors
    assert (root / "notes.txt").read_text() == "my work" and (root / "modelcycle.yaml").exists()
    assert not demo._is_demo(root)


def test_the_demo_marks_the_folder_it_builds(tmp_path):
    root = tmp_path / "demo"
    demo._mark(root, "digits")
    assert demo._is_demo(root) and (root / Path(".modelcycle/demo.json")).is_file()
    assert demo._example_of(root) == "digits"  # --append adds to the example it was built from
    (root / ".modelcycle/demo.json").write_text('{"built_by": "modelcycle demo"}')  # an older demo's marker
    assert demo._example_of(root) == "taxifare"
