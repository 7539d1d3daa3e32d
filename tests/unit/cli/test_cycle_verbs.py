"""run, backtest, step and demo with the lifecycle replaced by fakes: what each verb asks of the
layer below, and what it shows of the answer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelcycle.errors import EmptyWindowError

from .conftest import one_paragraph, result


def test_run_evaluates_the_window_given(cli, ws, flows, prefect):
    ran = cli("-w", ws, "run", "--window", "2015-03")
    assert ran.code == 0, ran
    assert flows.calls == [("run", ws.resolve(), "2015-03")]
    assert prefect == [{"what": "prepare", "root": ws.resolve(), "verbose": False}]
    assert "2015-03" in ran.said and "▲ promote" in ran.said
    assert "v1 2.610" in ran.said and "v2 2.310" in ran.said
    assert "versioned as git tag" not in ran.said  # nothing was versioned


def test_run_without_a_window_takes_the_month_after_the_last_cycle(cli, ws, flows, prefect):
    assert cli("-w", ws, "run").code == 0
    assert flows.calls == [("run", ws.resolve(), "2015-03")]  # params.yaml: window: 2015-02


def test_run_without_a_window_before_any_cycle(cli, ws, flows, prefect):
    (ws / "params.yaml").write_text("{}\n")
    ran = cli("-w", ws, "run")
    one_paragraph(ran, 2, "no window given and no cycle has run yet", "modelcycle run --window 2015-01")
    assert not flows.calls


def test_run_finds_the_workspace_from_a_folder_inside_it(cli, ws, flows, prefect, monkeypatch):
    (ws / "reports").mkdir()
    monkeypatch.chdir(ws / "reports")
    assert cli("run", "--window", "2015-04").code == 0
    assert flows.calls == [("run", ws.resolve(), "2015-04")]


def test_verbose_reaches_prefect_set_up(cli, ws, flows, prefect):
    assert cli("-v", "-w", ws, "run", "--window", "2015-03").code == 0
    assert prefect[0]["verbose"] is True


def test_run_names_what_it_versioned_and_registered(cli, ws, flows, prefect):
    flows.results["2015-03"] = result("2015-03", git_tag="rides/2015-03", git_commit="0123456789abcdef",
                                      mlflow_run_id="r42")
    ran = cli("-w", ws, "run", "--window", "2015-03")
    assert ran.code == 0
    assert ("versioned as git tag rides/2015-03 (0123456789); challenger registered as rides v2; "
            "MLflow run r42") in ran.said


def test_run_names_the_candidate_the_gate_chose(cli, ws, flows, prefect):
    flows.results["2015-03"] = result("2015-03", git_tag="rides/2015-03", git_commit="0123456789abcdef",
                                      mlflow_run_id="r42", candidate="big")
    ran = cli("-w", ws, "run", "--window", "2015-03")
    assert ran.code == 0
    assert "challenger registered as rides v2 (candidate 'big'); MLflow run r42" in ran.said
    header = next(line for line in ran.said.splitlines() if "challenger" in line and "window" in line)
    assert "candidate" in header
    assert "big" in next(line for line in ran.said.splitlines() if "2015-03" in line and "promote" in line)


def test_run_says_when_the_cycle_was_not_pushed(cli, ws, flows, prefect):
    said = ("1 cycle(s) not pushed to the DVC remote s3://team/dvc (rides/2015-03): timed out; the next cycle "
            "pushes them again, or run `modelcycle push`")
    flows.results["2015-03"] = result("2015-03", git_tag="rides/2015-03", git_commit="0123456789abcdef",
                                      mlflow_run_id="r42", unpushed=said)
    ran = cli("-w", ws, "run", "--window", "2015-03")
    assert ran.code == 0
    assert f"not pushed: {said}" in " ".join(ran.said.split())


def test_run_maps_a_cycle_error_to_its_exit_code(cli, ws, flows, prefect):
    flows.error = EmptyWindowError("no rows for window 2015-03 in data/*.csv", "pick a month the source has")
    ran = cli("-w", ws, "run", "--window", "2015-03")
    one_paragraph(ran, 4, "error: no rows for window 2015-03 in data/*.csv", "pick a month the source has")


def test_run_refuses_a_config_holding_a_password_before_anything_starts(cli, ws, flows, prefect):
    text = (ws / "modelcycle.yaml").read_text().replace(
        'source: {kind: files, url: "data/*.csv"}',
        'source: {kind: sql, url: "postgresql://me:hunter2@db/sales", table: rides}')
    (ws / "modelcycle.yaml").write_text(text)
    ran = cli("-w", ws, "run", "--window", "2015-03")
    assert ran.code == 2, ran
    assert "source.url" in ran.error and "hunter2" not in ran.said
    assert not flows.calls and not prefect


@pytest.mark.parametrize(("flag", "waits"), [([], True), (["--no-wait"], False)])
def test_run_holds_the_workspace_lock_and_no_wait_says_not_to_wait(cli, ws, flows, prefect, monkeypatch,
                                                                  flag, waits):
    import contextlib

    from modelcycle.lifecycle import lock

    held = []

    @contextlib.contextmanager
    def hold(root, command, *, wait=True, on_wait=None):
        held.append((root, wait))
        yield
        held.append("released")

    monkeypatch.setattr(lock, "hold", hold)
    assert cli("-w", ws, "run", "--window", "2015-03", *flag).code == 0
    assert held == [(ws.resolve(), waits), "released"]
    assert flows.calls  # the cycle ran inside the lock


@pytest.fixture
def reported(monkeypatch):
    """backtest.report (the table, the ground truth, the timeline picture) recorded, not drawn."""
    from modelcycle.cli import backtest

    calls = []

    def report(ws, results, png, *, first_has_champion, drawn=0):
        calls.append({"root": ws.root, "windows": [r.window for r in results], "png": png,
                      "first_has_champion": first_has_champion, "drawn": drawn})
        return png

    monkeypatch.setattr(backtest, "report", report)
    return calls


def test_backtest_replays_the_months_and_reports_them(cli, ws, flows, prefect, reported):
    ran = cli("-w", ws, "backtest", "--from", "2015-01", "--to", "2015-03")
    assert ran.code == 0, ran
    assert flows.calls == [("backtest", ws.resolve(), "2015-01", "2015-03", False)]
    png = ws.resolve() / "reports" / "backtest-2015-01-2015-03.png"
    assert reported == [{"root": ws.resolve(), "windows": ["2015-01", "2015-02", "2015-03"], "png": png,
                         "first_has_champion": True, "drawn": 0}]
    assert f"timeline: {png} (table: backtest-2015-01-2015-03.json)" in ran.said
    assert prefect == [{"what": "prepare", "root": ws.resolve(), "verbose": False}]


def test_backtest_passes_its_options_on(cli, ws, flows, prefect, reported, tmp_path):
    ran = cli("-w", ws, "backtest", "--from", "2015-01", "--to", "2015-01", "--approve-escalations",
              "--plot", tmp_path / "t.png")
    assert ran.code == 0, ran
    assert flows.calls == [("backtest", ws.resolve(), "2015-01", "2015-01", True)]
    assert reported[0]["png"] == tmp_path / "t.png"


def test_backtest_exits_1_when_a_month_failed(cli, ws, flows, prefect, reported):
    flows.results["2015-02"] = result("2015-02", "failed", champion_version=None)
    ran = cli("-w", ws, "backtest", "--from", "2015-01", "--to", "2015-03")
    assert ran.code == 1
    assert "1 month(s) failed: 2015-02; their reasons are in the table and the notifications log" in ran.said


def test_step_runs_the_stage_and_prints_its_summary(cli, ws, monkeypatch):
    from modelcycle.lifecycle import stages

    calls = []

    def run_stage(workspace, stage):
        calls.append((workspace.root, stage, workspace.params.window))
        return f"{stage}: 1200 rows -> data/clean.parquet"

    monkeypatch.setattr(stages, "run_stage", run_stage)
    ran = cli("-w", ws, "step", "validate")
    assert ran.code == 0, ran
    assert calls == [(ws.resolve(), "validate", "2015-02")]
    assert ran.out.strip() == "validate: 1200 rows -> data/clean.parquet"


@pytest.fixture
def demo_fakes(monkeypatch, flows, prefect, reported):
    from modelcycle.cli import examples

    built = []

    def create(name, root, *, force=False, progress=None, rows_per_month=None):
        built.append({"example": name, "root": root, "rows_per_month": rows_per_month, "force": force})
        (root / "modelcycle.yaml").write_text("name: taxifare\n")
        return SimpleNamespace(root=root, path=lambda rel: root / rel)

    monkeypatch.setattr(examples, "create", create)
    return SimpleNamespace(built=built, flows=flows, prefect=prefect, reported=reported)


def test_demo_builds_the_workspace_then_a_first_champion_then_six_months(cli, tmp_path, demo_fakes,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = cli("demo", "rides", "--rows-per-month", "2000")
    assert ran.code == 0, ran
    root = (tmp_path / "rides").resolve()
    assert demo_fakes.built == [{"example": "taxifare", "root": root, "rows_per_month": 2000, "force": True}]
    assert demo_fakes.flows.calls == [("run", root, "2014-12"), ("backtest", root, "2015-01", "2015-06", True)]
    assert demo_fakes.prefect[0] == {"what": "begin", "home": root / ".modelcycle" / "prefect", "url": None,
                                     "verbose": False}
    assert demo_fakes.reported[0]["drawn"] == 1 and demo_fakes.reported[0]["first_has_champion"] is False
    assert "timeline picture rides/reports/backtest-2015-01-2015-06.png" in ran.said
    assert "try: cd rides && modelcycle status" in ran.said
    assert "cd rides && modelcycle serve" in ran.said


def test_demo_rebuilds_a_previous_demo_and_passes_verbose_on(cli, tmp_path, demo_fakes):
    old = tmp_path / "demo"
    (old / ".modelcycle").mkdir(parents=True)
    (old / ".modelcycle" / "demo.json").write_text('{"built_by": "modelcycle demo"}\n')
    (old / "modelcycle.yaml").write_text("name: taxifare\n")
    (old / "stale.txt").write_text("from the last demo")
    ran = cli("-v", "demo", old)
    assert ran.code == 0, ran
    assert not (old / "stale.txt").exists()
    assert f"removing the previous demo in {old.resolve()}" in ran.said
    assert demo_fakes.prefect[0]["verbose"] is True


def test_demo_exits_1_when_a_cycle_failed(cli, tmp_path, demo_fakes):
    demo_fakes.flows.results["2015-05"] = result("2015-05", "failed")
    assert cli("demo", tmp_path / "d").code == 1


def test_run_output_is_a_table_not_a_traceback_when_rows_are_unknown(cli, ws, flows, prefect):
    flows.results["2015-03"] = result("2015-03", "keep", rows={}, champion_score=None, challenger_version=None)
    ran = cli("-w", ws, "run", "--window", "2015-03")
    assert ran.code == 0, ran
    assert "● keep" in ran.said and "—" in ran.said


