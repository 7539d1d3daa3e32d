"""history and rollback with the registry replaced by the in-memory one: what each verb shows,
what it changes, and how a mistake reaches the user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from modelcycle.errors import RegistryError
from modelcycle.registry import history
from modelcycle.registry.base import RunRecord
from modelcycle.registry.memory import MemoryRegistry

from .conftest import one_paragraph


class Registry(MemoryRegistry):
    down: RegistryError | None = None

    def check(self, timeout: float | None = None) -> None:
        if self.down is not None:
            raise self.down


@pytest.fixture
def registry(monkeypatch) -> Registry:
    """rides: v1 made champion by the 2015-01 cycle, v2 by 2015-02's, v3 the challenger. The 2015-01
    cycle ran before runs were tagged with their host; 2015-02's ran on host-a, typed there, 2015-03's
    on a machine with a long name, started by its worker."""
    from modelcycle.lifecycle import services
    from modelcycle.registry import workspace as registry_workspace

    reg = Registry()
    runs = {"2015-01": "1a8b7c6d5e4f", "2015-02": "9a8b7c6d5e4f", "2015-03": "3a8b7c6d5e4f"}
    hosts = {"2015-02": {"modelcycle.host": "host-a"},
             "2015-03": {"modelcycle.host": "ip-10-0-3-7.eu-west-1.compute.internal",
                         "modelcycle.worker": "ip-10-0-3-7.eu-west-1.compute.internal-4711"}}
    for window, run_id in runs.items():
        reg.runs[run_id] = RunRecord(run_id=run_id, experiment="rides", name=f"cycle {window}",
                                     status="FINISHED", tags={"modelcycle.window": window, **hosts.get(window, {})})
    for n in (1, 2, 3):
        reg.register("rides", f"memory://v{n}", None, tags={"window": f"2015-0{n}"})
    moves = [("champion", None, "1", "2015-01"), ("challenger", "1", "2", "2015-02"),
             ("champion", "1", "2", "2015-02"), ("challenger", "2", "3", "2015-03")]
    for alias, before, after, window in moves:
        reg.set_alias("rides", alias, after)
        history.record(reg, "rides", history.Move(alias, before, after, f"{window}-28T06:00:00+00:00", "cycle",
                                                  reason="promote; better", window=window,
                                                  flow_run_id="0f1e2d3c-aaaa-bbbb", run_id=runs[window]))
    reg.set_model_tags("rides", {"modelcycle.champion": "2"})
    monkeypatch.setattr(registry_workspace, "open_registry", lambda ws: reg)
    reg.sent = []
    monkeypatch.setattr(services, "build", lambda ws, echo=None: services.Services(
        ws=ws, source=None, registry=reg, versioning=None,  # type: ignore[arg-type]
        notifier=SimpleNamespace(send=reg.sent.append)))  # type: ignore[arg-type]
    monkeypatch.setattr("getpass.getuser", lambda: "ana")
    return reg


# history --------------------------------------------------------------------------------------

def test_history_shows_every_move_newest_last_with_its_cycle(cli, ws, registry):
    ran = cli("-w", ws, "history")
    assert ran.code == 0, ran
    rows = [line for line in ran.out.splitlines() if "2015-0" in line and "UTC" not in line]
    assert len(rows) == 4
    assert "2015-02-28 06:00:00 champion v1 v2 cycle host-a promote; better; window 2015-02; flow run 0f1e2d3c; " \
           "MLflow run 9a8b7c6d" in ran.said
    assert ran.said.index("2015-01-28") < ran.said.index("2015-03-28")  # newest last
    assert "time (UTC) alias from to by host who / why" in ran.said


def test_history_says_on_which_machine_each_cycle_ran(cli, ws, registry):
    ran = cli("-w", ws, "history")
    assert ran.code == 0, ran
    # a cycle from before runs carried their host: a dash; a long host name: its first label
    assert "2015-01-28 06:00:00 champion — v1 cycle — promote; better; window 2015-01" in ran.said
    # and the worker that started it, cut to the column too: its own part after its machine's name
    assert "2015-03-28 06:00:00 challenger v2 v3 cycle ip-10-0-3-7 (…-4711) promote; better" in ran.said
    assert "2015-02-28 06:00:00 champion v1 v2 cycle host-a promote" in ran.said  # typed: no worker
    assert "eu-west-1" not in ran.said
    # a human's move was made by no cycle: no host at all
    assert cli("-w", ws, "rollback", "--reason", "fares look wrong").code == 0
    assert "champion v2 v1 rollback ana; fares look wrong" in cli("-w", ws, "history", "--limit", "1").said


def test_history_json_is_a_list_for_scripts(cli, ws, registry):
    ran = cli("-w", ws, "history", "--json", "--alias", "Production")
    assert ran.code == 0, ran
    moves = json.loads(ran.out)
    assert [(m["before"], m["after"], m["by"]) for m in moves] == [(None, "1", "cycle"), ("1", "2", "cycle")]
    assert moves[-1] == {"alias": "champion", "before": "1", "after": "2", "time": "2015-02-28T06:00:00+00:00",
                         "by": "cycle", "who": None, "reason": "promote; better", "window": "2015-02",
                         "flow_run_id": "0f1e2d3c-aaaa-bbbb", "run_id": "9a8b7c6d5e4f", "host": "host-a",
                         "worker": None}
    everything = json.loads(cli("-w", ws, "history", "--json").out)
    assert [m["host"] for m in everything] == [None, "host-a", "host-a", "ip-10-0-3-7.eu-west-1.compute.internal"]
    assert [m["worker"] for m in everything] == [None, None, None, "ip-10-0-3-7.eu-west-1.compute.internal-4711"]


def test_history_shows_the_moves_when_the_runs_cannot_be_read(cli, ws, registry, monkeypatch):
    def down(experiment, tags, status=None):
        raise RegistryError("the MLflow server at http://mlflow:5000 does not answer", "start it")

    monkeypatch.setattr(registry, "find_runs", down)
    ran = cli("-w", ws, "history", "--json")
    assert ran.code == 0, ran
    assert [(m["host"], m["worker"]) for m in json.loads(ran.out)] == [(None, None)] * 4
    assert "champion v1 v2 cycle — promote; better" in cli("-w", ws, "history").said


def test_history_limit_shows_the_last_moves_and_says_so(cli, ws, registry):
    ran = cli("-w", ws, "history", "--limit", "1")
    assert "2015-03-28" in ran.said and "2015-02-28" not in ran.said
    assert "the last 1 of 4 moves (--limit N shows more)" in ran.said
    assert len(json.loads(cli("-w", ws, "history", "--json", "--limit", "2").out)) == 2


def test_history_records_and_shows_a_move_made_in_the_mlflow_ui(cli, ws, registry):
    registry.set_alias("rides", "champion", "3")
    ran = cli("-w", ws, "history")
    assert ran.code == 0, ran
    assert "champion v2 v3 outside moved outside modelcycle (the MLflow UI or API)" in ran.said
    assert "1 move(s) made outside modelcycle found and recorded now" in ran.error
    again = json.loads(cli("-w", ws, "history", "--json").out)
    assert [m["by"] for m in again].count("outside") == 1


def test_history_while_another_command_changes_the_workspace_records_nothing(cli, ws, registry):
    from modelcycle.lifecycle import lock

    registry.set_alias("rides", "champion", "3")  # maybe that command's own move, not yet recorded
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from modelcycle.lifecycle import lock\n"
         "with lock.hold(sys.argv[1], 'modelcycle run --window 2015-04'):\n"
         "    print('held', flush=True); time.sleep(60)", str(ws)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock.holder(ws) is not None
        box = {"ran": cli("-w", ws, "history", "--json")}
    finally:
        holder.kill()
        holder.wait()
    ran = box["ran"]
    assert ran.code == 0, ran
    assert "outside" not in [m["by"] for m in json.loads(ran.out)]
    assert "moves made outside modelcycle are recorded once it ends" in ran.error


def test_history_of_a_model_not_registered_yet(cli, ws, monkeypatch):
    from modelcycle.registry import workspace as registry_workspace

    monkeypatch.setattr(registry_workspace, "open_registry", lambda ws: Registry())
    ran = cli("-w", ws, "history")
    assert ran.code == 0, ran
    assert "no moves of the champion and challenger aliases of 'rides' are recorded yet" in ran.said
    assert json.loads(cli("-w", ws, "history", "--json").out) == []


def test_history_of_an_alias_modelcycle_does_not_manage(cli, ws, registry):
    one_paragraph(cli("-w", ws, "history", "--alias", "gold"), 6, "'gold' is not an alias modelcycle manages")


def test_history_when_the_registry_does_not_answer(cli, ws, registry):
    registry.down = RegistryError("the MLflow server at http://mlflow:5000 does not answer", "start it")
    one_paragraph(cli("-w", ws, "history"), 6, "does not answer", "start it")


# rollback -------------------------------------------------------------------------------------

def test_rollback_moves_the_champion_back_and_says_what_it_was(cli, ws, registry):
    ran = cli("-w", ws, "rollback", "--reason", "fares look wrong")
    assert ran.code == 0, ran
    assert "rides v1 is now the champion (was v2)" in ran.said
    assert registry.get_alias("rides", "champion").version == "1"
    last = history.moves(registry, "rides")[-1]
    assert (last.by, last.who, last.reason) == ("rollback", "ana", "fares look wrong")
    assert registry.sent[-1].kind == "rollback"
    shown = cli("-w", ws, "history", "--limit", "1")
    assert "champion v2 v1 rollback ana; fares look wrong" in shown.said


def test_rollback_to_a_version(cli, ws, registry):
    ran = cli("-w", ws, "rollback", "--to", "3")
    assert ran.code == 0, ran
    assert "rides v3 is now the champion (was v2)" in ran.said


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--to", "9"], 6, ["cannot read version 9 of model 'rides'"]),
    (["--to", "2"], 6, ["v2 is already the champion", "--to N"]),
    (["--to", "v2"], 2, ["--to 'v2' is not a version number", "e.g. --to 3"]),
])
def test_rollback_mistakes_are_one_paragraph_and_change_nothing(cli, ws, registry, args, code, words):
    one_paragraph(cli("-w", ws, "rollback", *args), code, *words)
    assert registry.get_alias("rides", "champion").version == "2"


def test_rollback_with_no_earlier_champion_asks_for_a_version(cli, ws, registry):
    assert cli("-w", ws, "rollback").code == 0  # to v1
    assert cli("-w", ws, "rollback").code == 0  # back to v2
    registry.model_tag_values["rides"] = {k: v for k, v in registry.model_tags("rides").items()
                                          if not k.startswith("modelcycle.move.")}
    ran = cli("-w", ws, "rollback")
    one_paragraph(ran, 6, "no champion of 'rides' before v2 is recorded", "modelcycle rollback --to N")


def test_rollback_of_a_model_without_a_champion(cli, ws, monkeypatch, registry):
    registry.delete_alias("rides", "champion")
    registry.set_model_tags("rides", {"modelcycle.champion": ""})
    history.record(registry, "rides", history.Move("champion", "2", None, history.now(), "outside"))
    one_paragraph(cli("-w", ws, "rollback"), 6, "'rides' has no champion to roll back", "--to N")


def test_status_shows_human_and_outside_moves_as_moves_with_their_time() -> None:
    from modelcycle.cli.render import decision_line
    from modelcycle.notify import CycleOutcome, Event, EventKind

    moved = Event(model="rides", window="-", outcome=CycleOutcome.PROMOTE, kind=EventKind.OUTSIDE,
                  reasons=("the champion alias was moved outside modelcycle (the MLflow UI or API) from v1 to v3",),
                  time="2026-11-28T00:26:10+00:00")
    text = decision_line(moved).plain
    assert text.startswith("2026-11-28 00:26  moved outside modelcycle") and "from v1 to v3" in text
    back = Event(model="rides", window="2015-05", outcome=CycleOutcome.PROMOTE, kind=EventKind.ROLLBACK,
                 reasons=("bad fares: the champion rolled back to v2 (was v3) by ana",), time="2026-11-28T01:00:00")
    assert decision_line(back).plain.startswith("2026-11-28 01:00  rolled back")
