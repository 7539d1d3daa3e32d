"""The alias history on the in-memory registry: moves recorded as tags, read back in order, and
moves made outside modelcycle found and recorded once."""

from __future__ import annotations

import json

import pytest

from modelcycle.registry import history
from modelcycle.registry.base import CHAMPION_TAG
from modelcycle.registry.history import Move
from modelcycle.registry.memory import MemoryRegistry

NAME = "rides"


@pytest.fixture
def reg() -> MemoryRegistry:
    r = MemoryRegistry()
    for n in (1, 2, 3):
        r.register(NAME, f"memory://v{n}", None, tags={"window": f"2015-0{n}"})
    return r


def move(alias: str, before: str | None, after: str | None, by: str = "cycle", **kw) -> Move:
    return Move(alias, before, after, history.now(), by, **kw)


def test_moves_come_back_oldest_first_with_every_field(reg: MemoryRegistry) -> None:
    first = move("champion", None, "1", window="2015-01", flow_run_id="f" * 36, run_id="r" * 32,
                 reason="promote; better on the same rows")
    second = move("challenger", None, "2", window="2015-02")
    third = move("champion", "1", "3", by="human", who="ana", reason="checked the May data")
    for m in (first, second, third):
        history.record(reg, NAME, m)
    assert history.moves(reg, NAME) == [first, second, third]
    keys = sorted(k for k in reg.model_tags(NAME) if k.startswith("modelcycle.move."))
    assert len(keys) == 3 and keys[0].endswith(".champion." + keys[0].rsplit(".", 1)[1])
    assert json.loads(reg.model_tags(NAME)[keys[2]])["who"] == "ana"


def test_the_version_that_received_the_alias_says_since_when_by_whom_and_why(reg: MemoryRegistry) -> None:
    history.record(reg, NAME, move("champion", "1", "3", by="human", who="ana", reason="checked the May data"))
    history.record(reg, NAME, move("challenger", None, "2", window="2015-02"))
    tags = reg.get_version(NAME, "3").tags
    assert tags["champion_by"] == "ana" and tags["champion_reason"] == "checked the May data"
    assert tags["champion_since"].startswith("20") and tags["champion_since"].endswith("+00:00")
    assert reg.get_version(NAME, "2").tags["challenger_by"] == "cycle 2015-02"
    assert "champion_by" not in reg.get_version(NAME, "1").tags


def test_an_undo_leaves_the_restored_versions_own_tags(reg: MemoryRegistry) -> None:
    history.record(reg, NAME, move("champion", None, "1", window="2015-01"))
    history.record(reg, NAME, move("champion", "1", "2", window="2015-02"))
    since = reg.get_version(NAME, "1").tags["champion_since"]
    history.record(reg, NAME, move("champion", "2", "1", by="undo"))
    assert reg.get_version(NAME, "1").tags["champion_since"] == since
    assert [m.by for m in history.moves(reg, NAME)] == ["cycle", "cycle", "undo"]


def test_moves_in_the_same_millisecond_are_all_kept(reg: MemoryRegistry) -> None:
    for n in range(50):
        history.record(reg, NAME, move("challenger", None, "2", reason=str(n)))
    assert sorted(int(m.reason) for m in history.moves(reg, NAME)) == list(range(50))


def test_a_long_reason_is_cut_to_keep_the_tag_under_the_stores_limit(reg: MemoryRegistry) -> None:
    history.record(reg, NAME, move("champion", None, "1", by="human", who="ana", reason="why " * 5000))
    value = next(v for k, v in reg.model_tags(NAME).items() if k.startswith("modelcycle.move."))
    assert len(value) <= history.VALUE_LIMIT
    back = history.moves(reg, NAME)[0]
    assert back.reason.startswith("why why") and back.reason.endswith("[truncated]")
    assert (back.who, back.after) == ("ana", "1")
    assert history.encode(move("champion", None, "1", reason="x" * 3999)).count("x") <= history.REASON_LIMIT


def test_a_tag_with_the_prefix_that_is_not_a_move_is_skipped(reg: MemoryRegistry) -> None:
    history.record(reg, NAME, move("champion", None, "1"))
    reg.set_model_tags(NAME, {"modelcycle.move.garbage": "not json", "modelcycle.move.list": "[1]"})
    assert [m.after for m in history.moves(reg, NAME)] == ["1"]


def test_no_model_has_no_history(reg: MemoryRegistry) -> None:
    assert history.moves(reg, "nothing") == []
    assert history.detect_outside(reg, "nothing") == []


# moves made outside modelcycle -------------------------------------------------------------

def test_an_alias_moved_without_a_record_is_recorded_once_as_outside(reg: MemoryRegistry) -> None:
    reg.set_alias(NAME, "champion", "1")
    history.record(reg, NAME, move("champion", None, "1"))
    reg.set_alias(NAME, "challenger", "2")
    history.record(reg, NAME, move("challenger", None, "2"))
    assert history.detect_outside(reg, NAME) == []
    reg.set_alias(NAME, "champion", "3")  # the MLflow UI
    found = history.detect_outside(reg, NAME)
    assert [(m.alias, m.before, m.after, m.by) for m in found] == [("champion", "1", "3", "outside")]
    assert history.moves(reg, NAME)[-1] == found[0]
    assert reg.get_version(NAME, "3").tags["champion_by"].startswith("outside modelcycle")
    assert history.detect_outside(reg, NAME) == []  # recorded: not found again


def test_an_alias_removed_outside_is_a_move_to_no_version(reg: MemoryRegistry) -> None:
    reg.set_alias(NAME, "challenger", "2")
    history.record(reg, NAME, move("challenger", None, "2"))
    reg.delete_alias(NAME, "challenger")
    found = history.detect_outside(reg, NAME)
    assert [(m.alias, m.before, m.after) for m in found] == [("challenger", "2", None)]


@pytest.mark.parametrize(("tag", "alias", "expected"), [
    ("1", "1", None),                 # modelcycle made v1 champion: nothing moved outside
    ("1", "3", ("1", "3")),           # someone moved it since: recorded once, from v1
    (None, "3", (None, "3")),         # modelcycle never made a champion: v3 was set outside
    ("1", None, ("1", None)),         # the alias was removed outside
    (None, None, None),               # nothing yet
])
def test_a_workspace_older_than_the_history_judges_the_champion_by_modelcycles_tag(
        reg: MemoryRegistry, tag, alias, expected) -> None:
    if tag:
        reg.set_model_tags(NAME, {CHAMPION_TAG: tag})
    if alias:
        reg.set_alias(NAME, "champion", alias)
    reg.set_alias(NAME, "challenger", "2")  # nothing tells who set it: never judged
    found = history.detect_outside(reg, NAME)
    assert [(m.before, m.after) for m in found] == ([expected] if expected else [])
    assert all(m.alias == "champion" and m.by == "outside" and "history began" in m.reason for m in found)
    assert history.detect_outside(reg, NAME) == []  # once


class Counting(MemoryRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def model_tags(self, name):
        self.calls.append("model_tags")
        return super().model_tags(name)

    def get_alias(self, name, alias):
        self.calls.append("get_alias")
        return super().get_alias(name, alias)


def test_detecting_when_nothing_moved_is_one_tags_read_and_one_alias_read_each() -> None:
    reg = Counting()
    reg.register(NAME, "memory://v1", None)
    reg.set_alias(NAME, "champion", "1")
    history.record(reg, NAME, move("champion", None, "1"))
    reg.calls.clear()
    assert history.detect_outside(reg, NAME) == []
    assert reg.calls == ["model_tags", "get_alias", "get_alias"]


def test_a_move_recorded_within_the_grace_is_not_taken_for_an_outside_one(reg: MemoryRegistry) -> None:
    """A server's poll may see a cycle's alias move before the cycle has recorded it."""
    import threading

    reg.set_alias(NAME, "champion", "1")
    history.record(reg, NAME, move("champion", None, "1"))
    reg.set_alias(NAME, "champion", "2")  # a cycle moved it; its record follows a moment later
    late = threading.Timer(0.05, lambda: history.record(reg, NAME, move("champion", "1", "2")))
    late.start()
    try:
        assert history.detect_outside(reg, NAME, aliases=("champion",), grace=0.5) == []
    finally:
        late.join()
    assert [m.by for m in history.moves(reg, NAME)] == ["cycle", "cycle"]
    # a move nobody records is still found after the grace
    reg.set_alias(NAME, "champion", "3")
    found = history.detect_outside(reg, NAME, aliases=("champion",), grace=0.05)
    assert [(m.before, m.after, m.by) for m in found] == [("2", "3", "outside")]
