"""The push to the DVC remote inside the act's transaction: with ``versioning.push: required``
(the default) a failed push rolls the cycle back; with ``best-effort`` the cycle succeeds, says
so (result, notification), writes the cycle down, and the next cycle or ``modelcycle push``
pushes it. Cycles on the in-memory registry and versioning fakes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest

from modelcycle.config import Workspace
from modelcycle.errors import VersioningError
from modelcycle.lifecycle import flows, services, unpushed
from modelcycle.notify import Event, Notifier
from modelcycle.notify.message import format_message
from tests.unit.lifecycle.conftest import Fakes

pytestmark = pytest.mark.usefixtures("prefect_server")
LOG = ".modelcycle/notifications.log"


@pytest.fixture
def logged(fakes: Fakes) -> Iterator[Fakes]:
    """The fakes, with the decisions written to the workspace's decision log."""

    def factory(ws: Workspace) -> services.Services:
        return dataclasses.replace(fakes(ws), notifier=Notifier(file=fakes.root / LOG))

    with services.using(factory=factory):
        yield fakes


def best_effort(fakes: Fakes) -> None:
    path = fakes.root / "modelcycle.yaml"
    path.write_text(path.read_text() + "\nversioning:\n  push: best-effort\n")


def decisions(fakes: Fakes) -> list[dict]:
    path = fakes.root / LOG
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_failed_push_rolls_the_cycle_back_by_default(logged: Fakes) -> None:
    fakes = logged
    before = fakes.snapshot()
    fakes.versioning.push_fails = True
    with pytest.raises(VersioningError) as failed:
        flows.run(fakes.root, "2015-03")  # the fare change: the challenger would be promoted
    assert "could not be pushed to the DVC remote" in failed.value.message
    assert "versioning: {push: best-effort}" in (failed.value.hint or "")
    assert fakes.snapshot() == before  # git, DVC outputs, registry, aliases as before the cycle
    assert not unpushed.path_of(Workspace.load(fakes.root)).exists()
    last = decisions(fakes)[-1]
    assert last["outcome"] == "failed" and "could not be pushed" in last["reasons"][0]
    assert fakes.versioning.remote_url == str(fakes.root / ".modelcycle" / "dvc-remote")  # synced first


def test_best_effort_commits_says_so_and_the_next_cycle_pushes_it(logged: Fakes) -> None:
    fakes = logged
    best_effort(fakes)
    fakes.versioning.push_fails = True
    result = flows.run(fakes.root, "2015-03")
    assert result.outcome == "promote" and result.git_tag == "modelcycle/taxifare/2015-03"
    assert result.unpushed and "1 cycle(s) not pushed" in result.unpushed and "2015-03" in result.unpushed
    assert "modelcycle push" in result.unpushed
    event = Event.from_dict(decisions(fakes)[-1])  # the notification says it
    assert event.unpushed == result.unpushed and f"Warning: {result.unpushed}" in format_message(event)
    ws = Workspace.load(fakes.root)
    [entry] = unpushed.read(ws)
    assert (entry.window, entry.tag, entry.commit) == ("2015-03", result.git_tag, result.git_commit)
    remote = fakes.versioning.remote
    assert remote is not None and result.data_hash not in remote

    fakes.versioning.push_fails = False
    second = flows.run(fakes.root, "2015-04")
    assert second.unpushed is None and unpushed.read(ws) == []
    assert result.data_hash in remote and second.data_hash in remote  # the earlier cycle's too
    assert decisions(fakes)[-1]["unpushed"] is None


def test_two_failed_pushes_are_both_kept_and_modelcycle_push_pushes_them(fakes: Fakes) -> None:
    best_effort(fakes)
    fakes.versioning.push_fails = True
    first = flows.run(fakes.root, "2015-03")
    second = flows.run(fakes.root, "2015-04")  # the retry of the first fails too: both kept
    ws = Workspace.load(fakes.root)
    assert [e.window for e in unpushed.read(ws)] == ["2015-03", "2015-04"]
    assert second.unpushed and second.unpushed.startswith("2 cycle(s) not pushed")
    with pytest.raises(VersioningError):
        unpushed.push_now(ws, fakes.versioning)
    assert len(unpushed.read(ws)) == 2

    fakes.versioning.push_fails = False
    done = unpushed.push_now(ws, fakes.versioning)
    assert [e.window for e in done.pushed] == ["2015-03", "2015-04"]
    assert unpushed.read(ws) == [] and unpushed.warning(ws) is None
    remote = fakes.versioning.remote
    assert remote is not None and first.data_hash in remote and second.data_hash in remote


def test_a_failed_push_is_written_down_before_the_commit_point_and_dropped_if_the_cycle_rolls_back(
        fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the commit point and the end of the act cannot lose the record of an
    unpushed cycle: it is written as soon as the push fails, inside the transaction. If the
    transaction then rolls back, the cycle's tag is gone and the record is dropped."""
    from modelcycle.errors import RegistryError

    best_effort(fakes)
    ws = Workspace.load(fakes.root)
    fakes.versioning.push_fails = True
    seen: list[list[str]] = []

    def register(*_args: object, **_kwargs: object) -> None:
        seen.append([e.window for e in unpushed.read(ws)])
        raise RegistryError("the registry refused the version", "try again")

    monkeypatch.setattr(fakes.registry, "register", register)
    with pytest.raises(RegistryError):
        flows.run(fakes.root, "2015-03")
    assert seen == [["2015-03"]]  # on disk before the version was registered
    assert fakes.versioning.tags() == [] or all("2015-03" not in t for t in fakes.versioning.tags())
    assert unpushed.pending(ws, fakes.versioning) == []
    assert unpushed.read(ws) == []  # the dead record is gone from the file too
