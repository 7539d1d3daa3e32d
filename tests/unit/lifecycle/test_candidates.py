"""Several candidates in one cycle, on the fakes and Prefect's thread-pool task runner: the
chosen one is the one versioned, registered and named in the result, the notification and the
alias history; each candidate has its nested run; a config asking for Dask without the extra
says which extra to install."""

from __future__ import annotations

import sys

import pytest

from modelcycle.errors import ConfigError
from modelcycle.lifecycle import flows, services
from modelcycle.notify import Notifier
from modelcycle.registry.history import moves
from tests.unit.lifecycle.conftest import Fakes
from tests.unit.minimal import with_candidates

pytestmark = pytest.mark.usefixtures("prefect_server")




def test_candidates_in_threads_the_chosen_one_is_registered_and_named(fakes: Fakes) -> None:
    with_candidates(fakes.root, {"stump": {"n_estimators": 1, "num_leaves": 2}, "trees": {}})
    events: list = []

    def factory(ws):
        svc = fakes(ws)
        svc.notifier = Notifier(echo=events.append)
        return svc

    with services.using(factory=factory):
        result = flows.run(fakes.root, "2015-03")  # the fare change: the champion is clearly worse
    assert result.outcome == "promote" and result.candidate == "trees"
    assert result.reasons[0].startswith("best of 2 candidates: 'trees' (promoted")
    assert "97.5% (1 - 0.05/2, corrected for 2 comparisons)" in result.reasons[0]
    assert result.confidence == pytest.approx(0.975)
    assert {c["name"]: c["outcome"] for c in result.candidates} == {"stump": "escalate", "trees": "promote"}
    versions = fakes.registry.list_versions("taxifare")
    assert sorted(v.version for v in versions) == ["1", "2"]  # one new version: the chosen one
    assert fakes.registry.get_version("taxifare", "2").tags["candidate"] == "trees"
    nested = [r for r in fakes.registry.runs.values() if r.parent_run_id == result.mlflow_run_id]
    assert sorted(r.tags["modelcycle.candidate"] for r in nested) == ["stump", "trees"]
    assert {r.tags["modelcycle.candidate"]: r.tags["modelcycle.chosen"] for r in nested} == {
        "stump": "false", "trees": "true"}
    stump = next(r for r in nested if r.tags["modelcycle.candidate"] == "stump")
    assert stump.params["model.n_estimators"] == "1" and stump.metrics["ci_high"] < 0
    move = [m for m in moves(fakes.registry, "taxifare") if m.alias == "champion"][-1]
    assert move.after == "2" and "best of 2 candidates: 'trees'" in (move.reason or "")
    assert "best of 2 candidates: 'trees'" in events[-1].reasons[0]


def test_dask_without_the_extra_names_the_extra(fakes: Fakes, monkeypatch) -> None:
    with_candidates(fakes.root, {"a": {}, "b": {"num_leaves": 7}}, task_runner="dask")
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # as if not installed
    before = fakes.snapshot()
    with pytest.raises(ConfigError) as raised:
        flows.run(fakes.root, "2015-01")
    assert "prefect-dask is not installed" in raised.value.message
    assert "pip install 'modelcycle[dask]'" in (raised.value.hint or "")
    after = fakes.snapshot()
    assert after["versions"] == before["versions"] and after["aliases"] == before["aliases"]


def test_a_candidate_key_the_estimator_does_not_take_names_the_candidate(fakes: Fakes) -> None:
    with_candidates(fakes.root, {"good": {}, "typo": {"n_estimaters": 7}})
    with pytest.raises(ConfigError) as raised:
        flows.run(fakes.root, "2015-01")
    assert "params.yaml candidate 'typo'" in raised.value.message
    assert "`candidates.typo.n_estimaters`" in raised.value.message
    assert "did you mean 'n_estimators'" in raised.value.message
    assert "candidates.typo" in (raised.value.hint or "")
