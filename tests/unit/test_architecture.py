"""The layers of DESIGN.md, enforced: import-linter's contracts in pyproject.toml must hold."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 5 kept, 0 broken" in proc.stdout


def test_the_examples_contract_covers_every_module_but_the_examples():
    """A package added to modelcycle later is part of the core: the contract that keeps the core
    (the CLI included) from importing the examples must name it."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    examples = next(c for c in contracts if c.get("forbidden_modules") == ["modelcycle.examples"])
    package = ROOT / "src" / "modelcycle"
    modules = {f"modelcycle.{p.stem}" for p in package.iterdir()
               if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert "modelcycle.cli" in modules and "modelcycle.lifecycle" in modules
    assert modules - {"modelcycle.examples"} == set(examples["source_modules"])
    # the root package cannot be a source module of the contract (the examples are inside it)
    assert "examples" not in (package / "__init__.py").read_text()


def test_the_entry_point_contract_covers_every_verb():
    """A verb added later must reach the root options through Click's context too."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    verbs = next(c for c in contracts if c.get("forbidden_modules") == ["modelcycle.cli.main"])
    modules = {f"modelcycle.cli.{p.stem}" for p in (ROOT / "src" / "modelcycle" / "cli").glob("*.py")
               if p.stem not in ("__init__", "main")}
    assert modules - set(verbs["source_modules"]) == set()


def test_steps_package_import_is_light():
    """A logged model imports its feature builder's module (the taxi example's imports
    modelcycle.steps.features); that must not drag the tools in."""
    code = ("import sys, modelcycle.steps.features, modelcycle.steps.model, modelcycle.examples.taxifare.features; "
            "heavy = [m for m in ('prefect', 'mlflow', 'dvc', 'duckdb', 'sklearn') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
