"""The `reference` seam: a workspace's own ground truth, found by its import path in modelcycle.yaml."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from modelcycle.config import Workspace, load_config
from modelcycle.config.models import Params
from modelcycle.errors import ConfigError
from modelcycle.lifecycle import reference, stages

CONFIG = """
name: rides
source: {kind: files, url: "data/*.csv"}
data:
  timestamp: ts
  target: y
  columns: {ts: datetime, y: float, x: float}
metric: mae
gate: {threshold: 2.5, on_bad_data: keep}
"""

GOOD = '''
from modelcycle.lifecycle.reference import Truth


class Truths:
    label = "the benchmark's labels"

    def __init__(self, floor=0.5, changed=("2015-03",)):
        self.floor, self.changed = floor, set(changed)

    def noise_floor(self, rows, metric):
        return None if metric != "mae" else self.floor * len(rows) / len(rows)

    def truth(self, window, *, has_champion, config):
        if not has_champion:
            return Truth(window, "promote", "first champion")
        if window in self.changed:
            return Truth(window, "promote", "prices changed", event=True)
        if window == "2015-05":
            return Truth(window, config.gate.on_bad_data, "broken rows", event=True)
        if window == "2099-01":
            return None
        return Truth(window, "keep", "no change")
'''

_names = itertools.count()
ROWS = pd.DataFrame({"ts": pd.to_datetime(["2015-01-01", "2015-01-02"]), "y": [1.0, 2.0], "x": [0.0, 1.0]})


def workspace(tmp_path: Path, code: str | None, reference_yaml: str | None) -> Workspace:
    """A workspace whose reference lives in a module of its own folder (a new name per test:
    a module once imported stays imported)."""
    module = f"truths_{next(_names)}"
    if code is not None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(code))
    text = CONFIG + ((reference_yaml or "").replace("MODULE", module))
    (tmp_path / "modelcycle.yaml").write_text(text)
    return Workspace(tmp_path, load_config(tmp_path / "modelcycle.yaml"), Params())


def test_without_a_reference_there_is_no_floor_and_no_truth(tmp_path):
    ws = workspace(tmp_path, None, None)
    assert reference.load(ws) is None
    assert stages.noise_floor(ws, ROWS) is None


def test_a_reference_beside_modelcycle_yaml_gives_floor_and_truth(tmp_path):
    ws = workspace(tmp_path, GOOD, "reference: {factory: 'MODULE:Truths', params: {floor: 0.25}}\n")
    ref = reference.load(ws)
    assert ref is not None and ref.label == "the benchmark's labels"
    report = stages.noise_floor(ws, ROWS)
    assert report is not None and report.noise_floor == 0.25
    truth = reference.expected_decisions(ws, ref, ["2015-01", "2015-02", "2015-03", "2015-05", "2099-01"],
                                         first_has_champion=False)
    assert {w: (t.expected, t.what, t.event) for w, t in truth.items()} == {
        "2015-01": ("promote", "first champion", False), "2015-02": ("keep", "no change", False),
        "2015-03": ("promote", "prices changed", True), "2015-05": ("keep", "broken rows", True)}
    results = [SimpleNamespace(window=w, outcome=o) for w, o in
               (("2015-01", "promote"), ("2015-02", "promote"), ("2015-03", "promote"), ("2099-01", "keep"))]
    assert reference.check(results, truth) == (2, 3, ["2015-02"])


def test_a_reference_without_a_floor_for_the_metric_gives_none(tmp_path):
    ws = workspace(tmp_path, GOOD, "reference: {factory: 'MODULE:Truths'}\n")
    ws = Workspace(ws.root, ws.config.model_copy(update={"metric": "rmse"}), ws.params)
    assert stages.noise_floor(ws, ROWS) is None


@pytest.mark.parametrize(("code", "yaml_text", "message"), [
    (GOOD, "reference: {factory: 'MODULE:Nothing'}\n", "has no attribute 'Nothing'"),
    (GOOD, "reference: {factory: 'MODULE:Truths', params: {floors: 1}}\n",
     "refused reference.params (given: floors)"),
    ("raise RuntimeError('no licence')\n", "reference: {factory: 'MODULE:Truths'}\n",
     "failed to import: RuntimeError: no licence"),
    ("class Truths:\n    label = 'x'\n    def noise_floor(self, rows, metric): return 1.0\n",
     "reference: {factory: 'MODULE:Truths'}\n", "returned an object that lacks truth"),
    ("Truths = 3\n", "reference: {factory: 'MODULE:Truths'}\n", "is a int, not a class or function"),
])
def test_a_broken_reference_is_a_config_error_naming_the_factory(tmp_path, code, yaml_text, message):
    ws = workspace(tmp_path, code, yaml_text)
    with pytest.raises(ConfigError) as err:
        reference.load(ws)
    assert message in err.value.message
    assert "reference" in err.value.message and err.value.hint


def test_a_floor_that_is_no_number_and_a_truth_that_is_no_decision_are_refused(tmp_path):
    ws = workspace(tmp_path, GOOD, "reference: {factory: 'MODULE:Truths', params: {floor: .nan}}\n")
    with pytest.raises(ConfigError, match="gave nan as the noise floor of 2 rows"):
        stages.noise_floor(ws, ROWS)
    bad = SimpleNamespace(label="x", noise_floor=lambda rows, metric: 1.0,
                          truth=lambda w, **_: reference.Truth(w, "retrain", "?"))
    with pytest.raises(ConfigError, match="gave 'retrain' as the truth of 2015-01"):
        reference.expected_decisions(ws, bad, ["2015-01"])
