"""Serving is part of the commit: in a served workspace a cycle that promotes first loads the
new version with the server's loader and predicts the window's held-out rows with it; a version
that fails there is never made champion, and the cycle rolls back like any other failure."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelcycle import tracepoints
from modelcycle.errors import ServingError
from modelcycle.lifecycle import flows, services
from modelcycle.registry import history

from .test_cycle import registry, snapshot

pytestmark = pytest.mark.slow


def served(root: Path) -> None:
    with (root / "modelcycle.yaml").open("a") as yaml:
        yaml.write("\nserve:\n  port: 0\n")
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "serve the champion"], check=True)


def test_a_served_workspace_promotes_only_after_the_load_check(champion_ws: Path) -> None:
    served(champion_ws)
    seen: list[str] = []
    with tracepoints.injecting(seen.append):
        # 2015-03 is the fare change: the challenger is promoted
        result = flows.run(champion_ws, "2015-03")
    assert result.outcome == "promote"
    assert seen.index("after:check-serving") < seen.index("before:alias:champion")
    reg = registry(champion_ws)
    assert reg.get_alias("taxifare", "champion").version == result.challenger_version
    last = history.moves(reg, "taxifare")[-1]
    assert (last.alias, last.before, last.after, last.by) == ("champion", "1", result.challenger_version, "cycle")
    assert last.window == "2015-03" and last.run_id and last.flow_run_id


class Unservable:
    """The real registry, except that the challenger's version cannot be loaded where it is served
    (its files went missing, say): loading the champion still works."""

    def __init__(self, real):
        self._real, self.champion = real, real.get_alias("taxifare", "champion").source

    def __getattr__(self, name):
        return getattr(self._real, name)

    def load_model(self, uri):
        if uri != self.champion:
            raise FileNotFoundError(f"{uri}: no such file or directory")
        return self._real.load_model(uri)


def test_a_version_that_does_not_serve_rolls_the_cycle_back(champion_ws: Path) -> None:
    served(champion_ws)
    before = snapshot(champion_ws)

    def factory(ws):
        svc = services.build(ws)
        svc.registry = Unservable(svc.registry)
        return svc

    with services.using(factory=factory), pytest.raises(ServingError, match="cannot be loaded for serving"):
        flows.run(champion_ws, "2015-03")
    assert snapshot(champion_ws) == before  # champion v1, no new version, tags, outputs, HEAD as they were
    assert not (champion_ws / ".modelcycle/journal.json").exists()
    log = (champion_ws / ".modelcycle/notifications.log").read_text().splitlines()
    assert json.loads(log[-1])["outcome"] == "failed"
