"""`modelcycle backends migrate` without servers: what it refuses before copying anything, the one
line of modelcycle.yaml it edits, and how references to old run ids are rewritten."""

from __future__ import annotations

import json
import time

import pytest

from modelcycle.errors import RegistryError, WorkspaceError
from modelcycle.lifecycle import migrate
from modelcycle.registry import migrate as copying
from tests.unit.lifecycle.test_backends import _no_backend_variables, healthy, workspace  # noqa: F401

YAML = """\
name: rides   # the model
backends:
  # the embedded store, until the team's server
  mlflow_tracking_uri: sqlite:///.modelcycle/mlflow.db   # MLflow
  mlflow_artifacts: .modelcycle/mlartifacts
  dvc_remote: .modelcycle/dvc-remote
"""


def test_only_the_tracking_uri_changes_in_modelcycle_yaml_and_its_comment_stays(tmp_path):
    config = tmp_path / "modelcycle.yaml"
    config.write_text(YAML)
    migrate.write_tracking_uri(config, "http://team-mlflow:5000")
    assert config.read_text() == YAML.replace("sqlite:///.modelcycle/mlflow.db", "http://team-mlflow:5000")


def test_a_quoted_tracking_uri_is_replaced_whole(tmp_path):
    config = tmp_path / "modelcycle.yaml"
    config.write_text('backends:\n  mlflow_tracking_uri: "sqlite:///a # b.db"\n')
    migrate.write_tracking_uri(config, "https://mlflow.example.com")
    assert config.read_text() == "backends:\n  mlflow_tracking_uri: https://mlflow.example.com\n"


def test_a_yaml_without_the_line_is_left_alone_with_the_line_to_write(tmp_path):
    config = tmp_path / "modelcycle.yaml"
    config.write_text("name: rides\nbackends: {}\n")
    with pytest.raises(WorkspaceError) as err:
        migrate.write_tracking_uri(config, "http://team:5000")
    assert "backends.mlflow_tracking_uri" in err.value.message and "is not there" in err.value.message
    assert "mlflow_tracking_uri: http://team:5000" in (err.value.hint or "")
    assert config.read_text() == "name: rides\nbackends: {}\n"


def test_the_store_in_use_and_a_path_are_refused(tmp_path):
    ws = workspace(tmp_path)
    for target in (ws.local_tracking_uri, "team-mlflow:5000"):
        with pytest.raises(RegistryError) as err:
            migrate.migrate(ws, target)
        assert "--to" in err.value.message and "http://team-mlflow:5000" in (err.value.hint or "")


def test_a_target_that_never_answers_is_refused_within_the_time_out(tmp_path, silent):
    ws = workspace(tmp_path)
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        migrate.migrate(ws, f"http://127.0.0.1:{silent}")
    assert err.value.message.startswith(f"MLflow http://127.0.0.1:{silent} does not answer: no answer within 3 s")
    assert "--to" in (err.value.hint or "")
    assert time.monotonic() - started < 5


def test_a_cycle_that_stopped_midway_is_repaired_first(tmp_path, healthy):  # noqa: F811 - the fixture
    ws = workspace(tmp_path)
    (ws.state_dir / "journal.json").write_text(json.dumps({"cycle": "c1", "kind": "cycle", "window": "2024-03"}))
    from modelcycle.lifecycle.journal import Journal

    assert Journal.path_of(ws) == ws.state_dir / "journal.json"
    with pytest.raises(WorkspaceError) as err:
        migrate.migrate(ws, healthy)
    assert "the cycle 2024-03 of this workspace did not finish" in err.value.message
    assert "modelcycle doctor" in (err.value.hint or "")


def test_new_experiments_on_a_server_get_the_servers_artifacts_unless_a_store_is_named(tmp_path):
    ws = workspace(tmp_path)
    assert migrate.target_artifacts(ws, "http://team:5000") is None
    (tmp_path / "other").mkdir()
    named = workspace(tmp_path / "other", "backends:\n  mlflow_artifacts: s3://team-bucket/mlflow\n")
    assert migrate.target_artifacts(named, "http://team:5000") == "s3://team-bucket/mlflow"


def test_a_recorded_move_and_a_version_name_the_copied_run():
    runs = {"a" * 32: "b" * 32}
    move = json.dumps({"alias": "champion", "before": None, "after": "1", "time": "t", "by": "cycle",
                       "run_id": "a" * 32})
    tags = copying.model_tags({"modelcycle.move.20240101T000000.000Z.champion.abc": move,
                               "modelcycle.champion": "1"}, runs)
    assert json.loads(tags["modelcycle.move.20240101T000000.000Z.champion.abc"])["run_id"] == "b" * 32
    assert tags["modelcycle.champion"] == "1"
    assert copying.version_tags({"mlflow_run_id": "a" * 32, "window": "2024-01"}, runs) == {
        "mlflow_run_id": "b" * 32, "window": "2024-01"}
    # a run that was not copied (another model's) and a value that is not a move stay as they are
    assert copying.translate_move('{"alias":"champion","run_id":"c"}', runs) == '{"alias":"champion","run_id":"c"}'
    assert copying.translate_move("not json", runs) == "not json"
