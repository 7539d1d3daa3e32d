"""Secrets in a workspace: ${VAR} references resolved from the environment and .env, literal
passwords found before a commit, URLs redacted for the screen, private file modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modelcycle.config import Workspace, find_literal_secrets, literal_secrets, load_config, redact
from modelcycle.config.secrets import move_password, parse_env, read_env_file, write_env_values
from modelcycle.errors import ConfigError

CONFIG = """
name: sales
source: {kind: sql, url: "postgresql+psycopg://analyst:${DB_PW}@db.example.com:5432/shop", table: sales}
data:
  timestamp: ts
  target: y
  columns: {ts: datetime, y: float, x: float}
metric: mae
gate: {threshold: 2.5}
backends:
  mlflow_tracking_uri: "postgresql://mlflow:${MLFLOW_PW}@db.example.com/mlflow"
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ws_root(tmp_path, monkeypatch) -> Path:
    for var in ("DB_PW", "MLFLOW_PW"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "modelcycle.yaml").write_text(CONFIG)
    return tmp_path


@pytest.mark.parametrize("text, shown", [
    ("postgresql+psycopg://u:pw@host:5432/db", "postgresql+psycopg://u:***@host:5432/db"),
    ("mysql+pymysql://u:p%40ss/w@h/db", "mysql+pymysql://u:***@h/db"),
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("cannot read 'postgresql://a:b@h/d' nor mailto://me:x@mail.example",
     "cannot read 'postgresql://a:***@h/d' nor mailto://me:***@mail.example"),
    ("postgresql://u:${DB_PW}@h/db", "postgresql://u:${DB_PW}@h/db"),  # a reference names no secret
    ("http://mlflow:5000/api@v2", "http://mlflow:5000/api@v2"),  # a port and a path, no password
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("http://user@host/x", "http://user@host/x"),
    (None, ""),
])
def test_redact(text, shown):
    assert redact(text) == shown


def test_move_password_leaves_a_reference():
    assert move_password("postgresql://u:pw@h/db", "MY_PW") == ("postgresql://u:${MY_PW}@h/db", "pw")
    assert move_password("postgresql://u:${X}@h/db") == ("postgresql://u:${X}@h/db", None)
    assert move_password("data/*.csv") == ("data/*.csv", None)


def test_literal_secrets_names_the_fields_of_the_raw_file(tmp_path):
    path = tmp_path / "modelcycle.yaml"
    path.write_text(CONFIG)
    assert literal_secrets(path) == []  # references only
    path.write_text(CONFIG.replace("${DB_PW}", "hunter2") + "notify:\n  urls: [json://hook, 'mailto://me:pw@mail.example']\n")
    assert literal_secrets(path) == ["source.url", "notify.urls.1"]
    assert find_literal_secrets({"backends": {"dvc_remote": "ssh://u:pw@h/r", "prefect_api_url": None}}) == \
        ["backends.dvc_remote"]
    with pytest.raises(ConfigError, match="does not exist"):
        literal_secrets(tmp_path / "nope.yaml")


def test_references_resolve_from_env_file_and_environment_wins(ws_root, monkeypatch):
    env = ws_root / ".env"
    env.write_text("# secrets\nDB_PW=from-file\nexport MLFLOW_PW='m l'\n")
    env.chmod(0o600)
    ws = Workspace.load(ws_root)
    assert ws.config.source.url == "postgresql+psycopg://analyst:from-file@db.example.com:5432/shop"
    assert ws.tracking_uri == "postgresql://mlflow:m l@db.example.com/mlflow"
    monkeypatch.setenv("DB_PW", "from-env")
    assert "analyst:from-env@" in Workspace.load(ws_root).config.source.url
    # unresolved, the file's own text: what may be shown or written back
    assert "${DB_PW}" in load_config(ws_root / "modelcycle.yaml", resolve=False).source.url


def test_an_unset_variable_names_file_field_variable_and_where(ws_root, monkeypatch):
    monkeypatch.setenv("DB_PW", "x")
    with pytest.raises(ConfigError) as err:
        Workspace.load(ws_root)
    text = str(err.value)
    assert str(ws_root / "modelcycle.yaml") in text
    assert "backends.mlflow_tracking_uri refers to ${MLFLOW_PW}, which is not set" in text
    assert f"add a line MLFLOW_PW=... to {ws_root / '.env'}" in text and "in the environment" in text


def test_a_bad_env_line_names_the_line_not_its_text(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_env("A=1\nthis is hunter2\n", tmp_path / ".env")
    assert "line 2: not a KEY=VALUE line" in str(err.value) and "hunter2" not in str(err.value)
    assert parse_env('A="x \\"y\\"" # note\nB=p#1\nC=v # c\n') == {"A": 'x "y"', "B": "p#1", "C": "v"}


def test_env_file_is_written_private_and_merged(tmp_path):
    previous = os.umask(0)
    try:
        env = tmp_path / ".env"
        write_env_values(env, {"PW": "a b$c"})
        assert mode(env) == 0o600
        env.chmod(0o644)
        env.write_text("# mine\nKEEP=1\nPW=old\n")
        write_env_values(env, {"PW": "new", "MORE": "x'y"})
        assert read_env_file(env) == {"KEEP": "1", "PW": "new", "MORE": "x'y"}
        assert env.read_text().startswith("# mine\nKEEP=1\nPW=new\n")
        assert mode(env) == 0o600
    finally:
        os.umask(previous)


def test_loading_tightens_the_backends_folder_and_env_file(ws_root, monkeypatch):
    monkeypatch.setenv("MLFLOW_PW", "m")
    (ws_root / ".modelcycle").mkdir(mode=0o755)
    (ws_root / ".modelcycle").chmod(0o755)
    (ws_root / ".env").write_text("DB_PW=x\n")
    (ws_root / ".env").chmod(0o644)
    Workspace.load(ws_root)
    assert mode(ws_root / ".modelcycle") == 0o700
    assert mode(ws_root / ".env") == 0o600
