"""The digits release plan's truth through modelcycle's `reference` seam."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelcycle.examples.digits import release, scenario
from modelcycle.examples.digits.scenario import DigitsReference
from modelcycle.lifecycle import reference


def config(keep_rejected: bool | None) -> SimpleNamespace:
    """The part of a workspace's configuration the truth reads (its `act` section, if any)."""
    if keep_rejected is None:
        return SimpleNamespace()
    return SimpleNamespace(act=SimpleNamespace(keep_rejected=keep_rejected))


def truths(ref: DigitsReference, cfg: SimpleNamespace) -> dict[str, tuple[str, str, bool]]:
    out = {}
    for i, window in enumerate(["2014-12", *release.BATCH_MONTHS]):
        t = ref.truth(window, has_champion=i > 0, config=cfg)  # type: ignore[arg-type]
        assert t is not None and t.window == window
        out[window] = (t.expected, t.what, t.event)
    return out


def test_the_reference_has_what_modelcycle_asks_of_one():
    ref = DigitsReference(seed=3)
    assert isinstance(ref, reference.Reference) and ref.label == "the digits example's release plan"
    assert ref.noise_floor(None, "accuracy") is None  # type: ignore[arg-type]
    assert ref.truth("2013-01", has_champion=True, config=config(False)) is None  # type: ignore[arg-type]


def test_the_truth_is_the_gates_decision_while_modelcycle_has_no_rolled_back_outcome(monkeypatch):
    monkeypatch.setattr(scenario, "DECISIONS", ("promote", "keep", "escalate"))
    assert truths(DigitsReference(), config(False)) == {
        "2014-12": ("promote", "first champion", False), "2015-01": ("keep", "no change", False),
        "2015-02": ("promote", "new class: 9s", True), "2015-03": ("keep", "no change", False),
        "2015-04": ("escalate", "batch rotated", True), "2015-05": ("keep", "4 broken files", True),
        "2015-06": ("keep", "no change", False)}


def test_the_rotated_batch_is_rolled_back_when_rejected_challengers_are_not_kept(monkeypatch):
    monkeypatch.setattr(scenario, "DECISIONS", ("promote", "keep", "escalate", "rolled_back"))
    ref = DigitsReference()
    rolled = truths(ref, config(False))
    assert rolled["2015-04"][0] == "rolled_back"
    assert [w for w, (expected, _, _) in rolled.items() if expected == "rolled_back"] == ["2015-04"]
    assert truths(ref, config(True))["2015-04"][0] == "escalate"
    assert truths(ref, config(None))["2015-04"][0] == "escalate"  # no `act:` section: challengers are kept


@pytest.mark.parametrize(("window", "expected"), [("2015-02", "promote"), ("2015-04", "escalate")])
def test_a_first_cycle_in_a_batchs_month_is_decided_by_the_challenger_alone(monkeypatch, window, expected):
    monkeypatch.setattr(scenario, "DECISIONS", ("promote", "keep", "escalate"))
    t = DigitsReference().truth(window, has_champion=False, config=config(True))  # type: ignore[arg-type]
    assert t is not None and t.expected == expected
