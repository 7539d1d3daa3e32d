"""status, promote, predict, doctor, init and config with the registry and the backends replaced
by fakes: what each verb asks for, what it shows, and how a failure below reaches the user."""

from __future__ import annotations

import json
import re
import socket
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from modelcycle.notify import EventKind
from modelcycle.errors import RegistryError, SourceError
from modelcycle.registry.memory import MemoryRegistry

from .conftest import one_paragraph


class Registry(MemoryRegistry):
    """The in-memory registry, answering ``check`` like a server that is up (or down)."""

    down: RegistryError | None = None

    def check(self, timeout: float | None = None) -> None:
        if self.down is not None:
            raise self.down


class Doubler:
    """A model: twice x."""

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        return frame["x"] * 2


@pytest.fixture
def registry(monkeypatch) -> Registry:
    """`open_registry(ws)` (the MLflow registry) returns this one; rides v1 is the champion, v2 the
    challenger."""
    from modelcycle.registry import workspace as registry_workspace

    reg = Registry()
    reg.register("rides", "memory://v1", None, tags={"window": "2015-01", "git_commit": "abcdef0123",
                                                     "dvc_data_hash": "99887766aa", "decision": "promote"})
    reg.register("rides", "memory://v2", None, tags={"window": "2015-02", "decision": "escalate"})
    reg.set_alias("rides", "champion", "1")
    reg.set_alias("rides", "challenger", "2")
    reg.loaded = []
    reg.load_alias = lambda name, alias: reg.loaded.append((name, alias)) or Doubler()  # type: ignore[method-assign]
    reg.load_model = lambda uri: reg.loaded.append(uri) or Doubler()  # type: ignore[method-assign]
    monkeypatch.setattr(registry_workspace, "open_registry", lambda ws: reg)
    return reg


# status ---------------------------------------------------------------------------------------

def test_status_shows_both_aliases_with_their_lineage_and_the_backends(cli, ws, registry):
    ran = cli("-w", ws, "status")
    assert ran.code == 0, ran
    assert f"rides workspace {ws.resolve()}" in ran.said
    assert "champion v1 2015-01 abcdef01 99887766 promote" in ran.said
    assert "challenger v2 2015-02" in ran.said
    assert "Source files data/*.csv" in ran.said
    assert f"MLflow sqlite:///{ws.resolve()}/.modelcycle/mlflow.db" in ran.said
    assert "no champion yet" not in ran.said


def test_status_without_a_champion_says_how_to_get_one(cli, ws, registry):
    registry.delete_alias("rides", "champion")
    ran = cli("-w", ws, "status")
    assert ran.code == 0
    assert "champion —" in ran.said
    assert "no champion yet: run `modelcycle run --window YYYY-MM` once" in ran.said


def test_status_shows_the_last_decisions_from_the_notifications_log(cli, ws, registry):
    log = ws / ".modelcycle" / "notifications.log"
    log.parent.mkdir()
    events = [{"window": f"2015-0{m}", "outcome": o, "metric": "mae", "champion_score": 2.5,
               "challenger_score": 2.4} for m, o in ((1, "promote"), (2, "keep"), (3, "escalate"))]
    log.write_text("".join(json.dumps(e) + "\n" for e in events) + "not json\n")
    ran = cli("-w", ws, "status", "--last", "3")
    assert ran.code == 0, ran
    assert "recent decisions" in ran.said
    assert "2015-01" not in ran.said.split("recent decisions")[1]  # only the last 3 lines
    assert "2015-02 ● keep champion MAE 2.500 challenger 2.400" in ran.said
    assert "2015-03 ◆ escalate" in ran.said


def test_status_says_on_which_machine_each_cycle_ran(cli, ws, registry):
    old = registry.start_run(experiment="rides", run_name="cycle 2015-02")  # before runs named their host
    new = registry.start_run(experiment="rides", run_name="cycle 2015-03",
                             tags={"modelcycle.window": "2015-03", "modelcycle.host": "worker-b.example.internal",
                                   "modelcycle.worker": "worker-b.example.internal-4711"})
    v3 = registry.register("rides", "memory://v3", new, tags={"window": "2015-03", "decision": "escalate"})
    registry.set_alias("rides", "challenger", v3.version)
    log = ws / ".modelcycle" / "notifications.log"
    log.parent.mkdir()
    events = [{"window": "2015-02", "outcome": "keep", "run_id": old},
              {"window": "2015-03", "outcome": "escalate", "run_id": new},
              {"kind": "approval", "window": "2015-03", "outcome": "promote", "reasons": ["ana promoted v3"]}]
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    ran = cli("-w", ws, "status")
    assert ran.code == 0, ran
    assert "alias version window commit data md5 decision host MLflow run" in ran.said
    assert "champion v1 2015-01 abcdef01 99887766 promote — " in ran.said  # no run: a dash
    # the table keeps its width: the machine to its first label, the worker to its own part
    assert f"challenger v3 2015-03 escalate worker-b (…-4711) {new[:8]}" in ran.said
    recent = ran.said.split("recent decisions")[1]
    # the last cycle, and where it ran: the machine and the worker that started it
    assert "2015-03 ◆ escalate on worker-b.example.internal (worker-b.example.internal-4711)" in recent
    assert "2015-02 ● keep" in recent and "keep on" not in recent  # its run has no host tag


def test_status_shows_the_versions_when_their_runs_cannot_be_read(cli, ws, registry, monkeypatch):
    def down(experiment, tags, status=None):
        raise RegistryError("cannot search the runs of experiment 'rides'", "check the server")

    run = registry.start_run(experiment="rides", run_name="cycle 2015-03", tags={"modelcycle.host": "host-b"})
    registry.register("rides", "memory://v3", run)
    registry.set_alias("rides", "challenger", "3")
    monkeypatch.setattr(registry, "find_runs", down)
    ran = cli("-w", ws, "status")
    assert ran.code == 0, ran
    assert f"challenger v3 — {run[:8]}" in ran.said


def test_status_says_where_it_looked_when_the_registry_does_not_answer(cli, ws, registry):
    registry.down = RegistryError("the MLflow server at http://mlflow:5000 does not answer",
                                  "start it, or point MLFLOW_TRACKING_URI elsewhere")
    ran = cli("-w", ws, "status")
    one_paragraph(ran, 6, "does not answer", "start it")
    assert "MLflow sqlite:///" in ran.said  # the backends were printed before the error


# promote --------------------------------------------------------------------------------------

@pytest.fixture
def promoted(monkeypatch, registry):
    """The real promotion on the fake registry; notifications recorded."""
    from modelcycle.lifecycle import services

    sent = []
    notifier = SimpleNamespace(send=sent.append)
    monkeypatch.setattr(services, "build", lambda ws, echo=None: services.Services(
        ws=ws, source=None, registry=registry, versioning=None, notifier=notifier))  # type: ignore[arg-type]
    monkeypatch.setattr("getpass.getuser", lambda: "ana")
    return SimpleNamespace(registry=registry, sent=sent)


def test_promote_moves_the_champion_and_says_what_it_was(cli, ws, promoted):
    ran = cli("-w", ws, "promote", "--version", "2", "--reason", "checked the May data")
    assert ran.code == 0, ran
    assert "rides v2 is now the champion (was v1)" in ran.said
    reg = promoted.registry
    assert reg.get_alias("rides", "champion").version == "2"
    tags = reg.get_version("rides", "2").tags
    assert tags["champion_by"] == "ana" and tags["champion_reason"] == "checked the May data"
    assert promoted.sent[-1].kind == EventKind.APPROVAL


def test_promote_accepts_the_stage_names(cli, ws, promoted):
    ran = cli("-w", ws, "promote", "--version", "1", "--alias", "Staging")
    assert ran.code == 0, ran
    assert "rides v1 is now the challenger (was v2)" in ran.said


def test_promote_to_an_alias_modelcycle_does_not_manage(cli, ws, promoted):
    ran = cli("-w", ws, "promote", "--version", "2", "--alias", "gold")
    one_paragraph(ran, 6, "'gold' is not an alias modelcycle manages", "use champion (or Production)")
    assert promoted.registry.get_alias("rides", "champion").version == "1"


def test_promote_a_version_that_was_never_registered(cli, ws, promoted):
    ran = cli("-w", ws, "promote", "--version", "9")
    one_paragraph(ran, 6, "cannot read version 9 of model 'rides'", "modelcycle status")


# predict --------------------------------------------------------------------------------------

@pytest.fixture
def records(tmp_path):
    path = tmp_path / "records.csv"
    path.write_text("ts,x,note\n2015-03-01 10:00,1.5,a\n2015-03-01 11:00,4,b\n")
    return path


def test_predict_writes_the_records_with_a_prediction_column_to_stdout(cli, ws, registry, records):
    ran = cli("-w", ws, "predict", records)
    assert ran.code == 0, ran
    assert ran.out.splitlines() == ["ts,x,note,prediction", "2015-03-01 10:00,1.5,a,3.0", "2015-03-01 11:00,4.0,b,8.0"]
    assert "2 predictions from rides champion" in ran.error
    assert registry.loaded == [("rides", "champion")]


def test_predict_with_another_alias_or_a_version(cli, ws, registry, records):
    assert cli("-w", ws, "predict", records, "--alias", "Staging").code == 0
    assert cli("-w", ws, "predict", records, "--version", "1").code == 0
    assert registry.loaded == [("rides", "challenger"), "memory://v1"]


def test_predict_writes_the_format_its_output_suffix_names(cli, ws, registry, records, tmp_path):
    out = tmp_path / "p.json"
    ran = cli("-w", ws, "predict", records, "-o", out)
    assert ran.code == 0, ran
    assert [r["prediction"] for r in json.loads(out.read_text())] == [3.0, 8.0]
    assert ran.out == ""


def test_predict_reads_json_records_from_stdin(cli, ws, registry):
    ran = cli("-w", ws, "predict", "-", input='[{"ts": "2015-03-01", "x": 2}]')
    assert ran.code == 0, ran
    assert ran.out.splitlines() == ["ts,x,prediction", "2015-03-01,2,4.0"]


@pytest.mark.parametrize(("text", "code", "words"), [
    (None, 4, ["does not exist", "give a CSV, JSON (records) or Parquet file"]),
    ("ts,x\n", 4, ["holds no records"]),
    ("ts,note\n2015-03-01,a\n", 4, ["column 'x' in", "is missing; the source gives: ts, note",
                                     "fix data.columns in modelcycle.yaml"]),
])
def test_predict_names_records_it_cannot_use(cli, ws, registry, tmp_path, text, code, words):
    path = tmp_path / "in.csv"
    if text is not None:
        path.write_text(text)
    ran = cli("-w", ws, "predict", path)
    one_paragraph(ran, code, *words)
    assert ran.out == ""


def test_predict_with_an_alias_modelcycle_does_not_manage(cli, ws, registry, records):
    ran = cli("-w", ws, "predict", records, "--alias", "gold")
    one_paragraph(ran, 6, "'gold' is not an alias modelcycle manages")


# doctor ---------------------------------------------------------------------------------------

@pytest.fixture
def examined(monkeypatch, prefect):
    from modelcycle.lifecycle import doctor, services

    calls = []
    findings = []
    registry = SimpleNamespace(relocated="the MLflow store now points at this workspace's own files")
    monkeypatch.setattr(services, "build", lambda ws, echo=None: SimpleNamespace(ws=ws, registry=registry))

    def examine(svc, *, registry_check, prefect_check, moved, remote_check=None, dask_check=None):
        calls.append({"root": svc.ws.root, "moved": moved})
        return findings + ([doctor.reached("Dask", dask_check)] if dask_check is not None else [])

    monkeypatch.setattr(doctor, "examine", examine)
    return SimpleNamespace(calls=calls, findings=findings, prefect=prefect)


def test_doctor_prints_every_finding_and_exits_0_when_all_is_well(cli, ws, examined):
    examined.findings.append(doctor_finding("git", True, "on branch main, clean"))
    ran = cli("-w", ws, "doctor")
    assert ran.code == 0, ran
    assert f"config ok ({ws.resolve() / 'modelcycle.yaml'}" in ran.said
    assert "git ok on branch main, clean" in ran.said
    assert examined.calls == [{"root": ws.resolve(),
                               "moved": "the MLflow store now points at this workspace's own files"}]
    assert examined.prefect == [{"what": "begin", "home": ws.resolve() / ".modelcycle" / "prefect", "url": None,
                                 "verbose": False}]


def test_doctor_exits_1_and_gives_the_hint_when_a_problem_remains(cli, ws, examined):
    examined.findings += [doctor_finding("git", True, "clean"),
                          doctor_finding("DVC remote", False, "data of 2015-02 is missing", "run `dvc push`")]
    ran = cli("-v", "-w", ws, "doctor")
    assert ran.code == 1
    assert "DVC remote problem data of 2015-02 is missing" in ran.said and "run `dvc push`" in ran.said
    assert examined.prefect[0]["verbose"] is True


@pytest.fixture
def on_dask(ws):
    """Give the `ws` workspace candidates that train on the Dask scheduler at the address given."""
    from tests.unit.minimal import with_candidates

    return lambda address: with_candidates(ws, {"stump": {"num_leaves": 2}, "trees": {}}, task_runner="dask",
                                           dask_address=address)


def test_doctor_says_a_dask_scheduler_that_does_not_answer_and_what_to_do(cli, ws, examined, on_dask):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"  # nobody listens there
    on_dask(address)
    started = time.monotonic()
    ran = cli("-w", ws, "doctor")
    assert time.monotonic() - started < 10
    assert ran.code == 1, ran
    assert (f"Dask problem {address} does not answer: Connection refused (modelcycle.yaml "
            "orchestration.dask_address): the 2 candidates cannot train there") in ran.said
    assert "start the scheduler (`dask scheduler`), fix orchestration.dask_address in modelcycle.yaml" in ran.said
    assert "Traceback" not in ran.err


def test_doctor_says_a_dask_scheduler_that_answers(cli, ws, examined, on_dask):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        on_dask(address)
        ran = cli("-w", ws, "doctor")
    assert ran.code == 0, ran
    assert re.search(rf"Dask ok the scheduler accepts connections \(\d+ ms\) \({address}\)", ran.said), ran.said


def test_doctor_says_nothing_of_dask_when_the_candidates_train_in_threads(cli, ws, examined, on_dask):
    on_dask("tcp://127.0.0.1:9")
    text = (ws / "modelcycle.yaml").read_text()
    (ws / "modelcycle.yaml").write_text(text.replace("task_runner: dask", "task_runner: threads"))
    ran = cli("-w", ws, "doctor")
    assert ran.code == 0, ran
    assert "Dask" not in ran.said and "dask" not in ran.said


def doctor_finding(area, ok, text, hint=None):
    from modelcycle.lifecycle.doctor import Finding

    return Finding(area, ok, text, hint)


# init -----------------------------------------------------------------------------------------

@pytest.fixture
def created(monkeypatch):
    from modelcycle.cli import examples
    from modelcycle.lifecycle import workspace as wsmod

    calls = []

    def fake(kind):
        def create(root, **kw):
            calls.append((kind, root, {k: v for k, v in kw.items() if k not in ("progress", "warn")}))
            return SimpleNamespace(root=root, config=SimpleNamespace(name=kw.get("name", "taxifare")))
        return create

    monkeypatch.setattr(examples, "create", lambda name, root, **kw: fake(name)(root, **kw))
    monkeypatch.setattr(wsmod, "create_from_source", fake("source"))
    return calls


def test_init_an_example(cli, tmp_path, monkeypatch, created):
    monkeypatch.chdir(tmp_path)
    ran = cli("init", "rides", "--example", "taxifare", "--rows-per-month", "2000")
    assert ran.code == 0, ran
    root = (tmp_path / "rides").resolve()
    assert created == [("taxifare", root, {"rows_per_month": 2000, "force": False})]
    assert f"created workspace {root} for model taxifare" in ran.said
    assert "next: cd rides && modelcycle run --window 2014-12" in ran.said


def test_init_your_own_files(cli, tmp_path, monkeypatch, created):
    monkeypatch.chdir(tmp_path)
    ran = cli("init", "prices", "--source", "data/*.csv", "--timestamp", "sold_at", "--target", "price",
              "--threshold", "25000", "--force")
    assert ran.code == 0, ran
    assert created == [("source", (tmp_path / "prices").resolve(), {
        "name": "prices", "kind": "files", "url": "../data/*.csv", "table": None, "timestamp": "sold_at",
        "target": "price", "task": "regression", "metric": "mae", "threshold": 25000.0, "force": True,
        "password_variable": "MODELCYCLE_SOURCE_PASSWORD"})]
    assert "next: cd prices && modelcycle run --window YYYY-MM" in ran.said


def test_init_a_classifier_on_a_sql_table(cli, tmp_path, created):
    url = "postgresql+psycopg://me:${PGPASSWORD}@db/sales"
    ran = cli("init", tmp_path / "9lives", "--source", url, "--table", "churn", "--timestamp", "t",
              "--target", "left", "--task", "classification", "--threshold", "0.8", "--password-var", "SALES_PW")
    assert ran.code == 0, ran
    kw = created[0][2]
    assert (kw["kind"], kw["url"], kw["table"], kw["metric"]) == ("sql", url, "churn", "accuracy")
    assert kw["name"] == "m-9lives" and kw["password_variable"] == "SALES_PW"


def test_init_reports_a_source_that_does_not_open(cli, tmp_path, monkeypatch):
    from modelcycle.lifecycle import workspace as wsmod

    def create(root, **kw):
        raise SourceError("cannot connect to db:5432", "check the host and that the server runs")

    monkeypatch.setattr(wsmod, "create_from_source", create)
    ran = cli("init", tmp_path / "w", "--source", "postgresql://db/x", "--table", "t", "--timestamp", "t",
              "--target", "y", "--threshold", "1")
    one_paragraph(ran, 3, "cannot connect to db:5432", "check the host")


# config ---------------------------------------------------------------------------------------

def test_config_describes_every_key_of_modelcycle_yaml(cli):
    ran = cli("config")
    assert ran.code == 0, ran
    for key in ("name", "source.url", "gate.threshold", "notify.file", "backends.mlflow_tracking_uri",
                "serve.image_paths"):
        assert f" {key} " in f" {ran.said} ", key
    assert ".modelcycle/notifications.log" in ran.said
    assert "split.holdout_fraction" not in ran.said  # a key of params.yaml


def test_config_params_describes_params_yaml(cli):
    ran = cli("config", "--params")
    assert ran.code == 0, ran
    assert "params.yaml" in ran.said
    assert "split.holdout_fraction 0.3" in ran.said and "data.history_months 6" in ran.said
    assert "gate.threshold" not in ran.said
