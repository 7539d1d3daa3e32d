"""Run ``modelcycle`` in-process, as a user types it, with the layers below the verbs replaced
by fakes: no Prefect, MLflow or DVC. ``cli(...)`` goes through :func:`modelcycle.cli.main.main`,
so errors are rendered and mapped to exit codes exactly as in a terminal."""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from modelcycle.cli import common
from modelcycle.cli.main import main
from tests.unit.minimal import CONFIG


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BOX = re.compile("[\u2500-\u257f]")  # box drawing: panels and tables


def flat(text: str) -> str:
    """Text as a user reads it, whatever the terminal's width: no colours, no boxes, one space
    between words (Rich and Click wrap long lines)."""
    return " ".join(_BOX.sub(" ", _ANSI.sub("", text)).split())


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        """stdout and stderr, flattened."""
        return flat(self.out + "\n" + self.err)

    @property
    def error(self) -> str:
        return flat(self.err)


def run_cli(*args: str, input: str | None = None) -> Ran:
    """``modelcycle ARGS...``: its exit code, stdout and stderr."""
    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, _mixed):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        return Ran(code, out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture
def cli():
    return run_cli


def one_paragraph(ran: Ran, code: int, *words: str) -> None:
    """A user error as a user should meet it: its exit code, the words naming what went wrong and
    what to do, and no traceback."""
    assert ran.code == code, ran
    assert "Traceback" not in ran.err, ran.err
    assert "unexpected error" not in ran.err, ran.err
    for word in words:
        assert word in ran.error, ran.error


@pytest.fixture(autouse=True)
def _process_state(monkeypatch: pytest.MonkeyPatch):
    """main() sets a few environment defaults and configures the root logger: undo both."""
    for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DVC_NO_ANALYTICS", "1"),
                        ("GIT_PYTHON_REFRESH", "quiet"), ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3"),
                        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")):
        monkeypatch.setenv(name, os.environ.get(name, value))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {n: logging.getLogger(n).level
             for n in ("alembic", "mlflow", "dvc", "urllib3", "git", "scmrepo", "lightgbm")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in noisy.items():
        logging.getLogger(name).setLevel(lvl)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace folder: modelcycle.yaml and params.yaml (its last cycle evaluated 2015-02)."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "modelcycle.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "params.yaml").write_text("window: 2015-02\n", encoding="utf-8")
    return root


@pytest.fixture
def prefect(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """No Prefect: records how the verbs asked for it."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(common, "prepare_prefect",
                        lambda ws, *, verbose: calls.append({"what": "prepare", "root": ws.root, "verbose": verbose}))
    monkeypatch.setattr(common, "begin_prefect",
                        lambda home, url, *, verbose: calls.append({"what": "begin", "home": home, "url": url,
                                                                     "verbose": verbose}))
    monkeypatch.setattr(common, "await_prefect", lambda server, ws: calls.append({"what": "await"}))
    return calls


def result(window: str, outcome: str = "promote", **kw: Any) -> SimpleNamespace:
    """What a cycle returns (the fields of lifecycle.cycle.CycleResult the command line reads)."""
    base: dict[str, Any] = dict(
        window=window, outcome=outcome, reasons=[], metric="mae", champion_version="1",
        challenger_version="2", serving_version="2" if outcome == "promote" else "1", champion_score=2.61,
        challenger_score=2.31, noise_floor=None, rows={"window_in": 1000, "window_valid": 1000}, git_tag=None,
        git_commit=None, mlflow_run_id=None, approved=False, unpushed=None, candidate=None)
    base.update(kw)
    return SimpleNamespace(**base)


@dataclass
class FakeFlows:
    """Stands in for modelcycle.lifecycle.flows (importing it imports Prefect)."""

    results: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    error: BaseException | None = None

    def run(self, root: Path, window: str) -> Any:
        self.calls.append(("run", Path(root), window))
        if self.error is not None:
            raise self.error
        return self.results.get(window) or result(window)

    def backtest(self, root: Path, first: str, last: str, *, approve_escalations: bool = False) -> list[Any]:
        self.calls.append(("backtest", Path(root), first, last, approve_escalations))
        if self.error is not None:
            raise self.error
        from modelcycle.config import month_range

        return [self.results.get(w.label) or result(w.label, "keep") for w in month_range(first, last)]


@pytest.fixture
def flows(monkeypatch: pytest.MonkeyPatch) -> FakeFlows:
    """``from modelcycle.lifecycle import flows`` inside a verb gets the fake."""
    import modelcycle.lifecycle as lifecycle

    fake = FakeFlows()
    monkeypatch.setitem(sys.modules, "modelcycle.lifecycle.flows", fake)
    monkeypatch.setattr(lifecycle, "flows", fake, raising=False)
    return fake
