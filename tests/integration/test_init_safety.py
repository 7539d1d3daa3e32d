"""`modelcycle init` with a database: the password stays out of git and off the screen, the
backends are private, a failure leaves nothing behind, and calendar columns are not features."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration import sql_stub
from tests.integration.helpers import cli, sales

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PW = sql_stub.PASSWORD


@pytest.fixture(autouse=True)
def _stub_dialect_and_umask():
    """The stub SQL driver, and the usual umask under which files are world-readable."""
    sql_stub.register()
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)


def sales_db(path: Path, n: int = 6000) -> Path:
    con = sqlite3.connect(path)
    sales(n).to_sql("sales", con, index=False)
    con.close()
    return path


def init_args(url: str, *extra: str) -> list[str]:
    return ["--source", url, "--table", "sales", "--timestamp", "sold_at", "--target", "price",
            "--threshold", "25000", *extra]


def test_password_goes_to_env_not_to_git_and_status_redacts_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELCYCLE_SOURCE_PASSWORD", raising=False)
    db = sales_db(tmp_path / "sales.db")
    url = f"sqlite+netcheck://analyst:{PW}@localhost/{db}"
    code, out, err = cli(capsys, "init", "prices", *init_args(url))
    assert code == 0, err
    assert PW not in out + err
    assert "analyst:***@localhost" in err  # the progress line names the source, redacted
    ws = tmp_path / "prices"

    config = (ws / "modelcycle.yaml").read_text()
    assert f"url: sqlite+netcheck://analyst:${{MODELCYCLE_SOURCE_PASSWORD}}@localhost/{db}" in config
    assert PW not in config
    env = ws / ".env"
    assert env.read_text() == f"MODELCYCLE_SOURCE_PASSWORD={PW}\n"
    assert mode(env) == 0o600
    assert mode(ws / ".modelcycle") == 0o700
    assert git(ws, "check-ignore", "-q", ".env").returncode == 0
    assert git(ws, "status", "--porcelain").stdout == ""
    history = git(ws, "log", "-p", "--all").stdout
    assert "modelcycle.yaml" in history and PW not in history

    from modelcycle.config import Workspace, literal_secrets

    assert literal_secrets(ws / "modelcycle.yaml") == []
    assert Workspace.load(ws).config.source.url == url  # resolved from .env when loaded

    code, out, err = cli(capsys, "-w", str(ws), "status")
    assert code == 0, err
    assert "analyst:***@localhost" in out and PW not in out + err

    code, out, err = cli(capsys, "-w", str(ws), "run", "--window", "2024-01")
    assert code == 0, err
    assert "promote" in out and PW not in out + err

    # the environment wins over .env
    monkeypatch.setenv("MODELCYCLE_SOURCE_PASSWORD", "from-the-environment")
    code, _, err = cli(capsys, "-w", str(ws), "run", "--window", "2024-02")
    assert code == 3 and "password authentication failed" in err and "analyst:***@localhost" in err
    assert "from-the-environment" not in err


def test_unreachable_server_is_a_source_error_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = sql_stub.free_port()
    url = f"sqlite+netcheck://analyst:{PW}@127.0.0.1:{port}/{tmp_path / 'sales.db'}"
    code, out, err = cli(capsys, "init", "prices", *init_args(url))
    assert code == 3, err
    assert "Traceback" not in err and "unexpected error" not in err and PW not in out + err
    assert f"cannot reach the database server of sqlite+netcheck://analyst:***@127.0.0.1:{port}/" in err
    assert f"at 127.0.0.1:{port}: connection refused" in err
    assert "check that the server is running" in err
    assert not (tmp_path / "prices").exists()


def test_missing_driver_names_the_package_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    if importlib.util.find_spec("pymysql") is not None:
        pytest.skip("pymysql is installed here; this test needs a driver that is not")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code, out, err = cli(capsys, "init", "prices", *init_args(f"mysql+pymysql://analyst:{PW}@127.0.0.1:1/shop"))
    assert code == 3, err
    assert "Traceback" not in err and "unexpected error" not in err and PW not in out + err
    assert "cannot open mysql+pymysql://analyst:***@127.0.0.1:1/shop" in err
    assert "no Python module 'pymysql'" in err and "pip install pymysql" in err
    assert not (tmp_path / "prices").exists()
    # an empty folder the user made stays, and stays empty
    code, _, err = cli(capsys, "init", "empty", *init_args(f"mysql+pymysql://analyst:{PW}@127.0.0.1:1/shop"))
    assert code == 3 and (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def _fail_late(monkeypatch) -> None:
    from modelcycle.versioning import dvcgit

    def broken(*_a, **_k):
        raise RuntimeError("disk full while committing")

    monkeypatch.setattr(dvcgit, "commit_paths", broken)


def test_a_late_failure_removes_the_new_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = sales_db(tmp_path / "sales.db")
    _fail_late(monkeypatch)
    code, _, err = cli(capsys, "init", "a/b/prices", *init_args(f"sqlite+netcheck://analyst:{PW}@localhost/{db}"))
    assert code == 70 and "disk full while committing" in err
    assert "removed what it had created" in err
    assert not (tmp_path / "a").exists()  # the parents init made, too


def test_a_late_failure_with_force_keeps_what_was_there(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = sales_db(tmp_path / "sales.db")
    ws = tmp_path / "project"
    ws.mkdir()
    (ws / "notes.md").write_text("mine\n")
    (ws / ".gitignore").write_text("*.tmp\n")
    (ws / ".env").write_text("OTHER=keep\n")
    git(ws, "init", "-q", "-b", "main", ".")
    git(ws, "add", "notes.md", ".gitignore")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "mine")
    before = git(ws, "rev-parse", "HEAD").stdout
    _fail_late(monkeypatch)
    code, _, err = cli(capsys, "init", str(ws), "--force", *init_args(f"sqlite+netcheck://analyst:{PW}@localhost/{db}"))
    assert code == 70, err
    assert sorted(p.name for p in ws.iterdir()) == [".env", ".git", ".gitignore", "notes.md"]
    assert (ws / ".gitignore").read_text() == "*.tmp\n"
    assert (ws / ".env").read_text() == "OTHER=keep\n"
    assert (ws / "notes.md").read_text() == "mine\n"
    assert git(ws, "rev-parse", "HEAD").stdout == before
    assert git(ws, "status", "--porcelain").stdout == "?? .env\n"  # as before: nothing of init's staged

    # and the same init without the failure keeps the user's lines and adds its own
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "init", str(ws), "--force", *init_args(f"sqlite+netcheck://analyst:{PW}@localhost/{db}"))
    assert code == 0, err
    assert (ws / ".env").read_text() == f"OTHER=keep\nMODELCYCLE_SOURCE_PASSWORD={PW}\n"
    ignored = (ws / ".gitignore").read_text()
    assert ignored.startswith("*.tmp\n") and ".env" in ignored and "/.modelcycle/" in ignored


def test_a_literal_password_is_never_written(tmp_path, capsys, monkeypatch):
    """Should the password ever reach modelcycle.yaml's text, init refuses before writing it."""
    from modelcycle.lifecycle import workspace

    monkeypatch.chdir(tmp_path)
    db = sales_db(tmp_path / "sales.db")
    monkeypatch.setattr(workspace, "move_password", lambda url, variable: (url, None))
    code, out, err = cli(capsys, "init", "prices", *init_args(f"sqlite+netcheck://analyst:{PW}@localhost/{db}"))
    assert code == 2, err
    assert "holds a password in source.url" in err and "it would be written into git" in err
    assert PW not in out + err
    assert not (tmp_path / "prices").exists()


def test_calendar_columns_are_left_out_of_the_features(tmp_path, capsys, monkeypatch):
    import numpy as np
    import pandas as pd
    import yaml

    rng = np.random.default_rng(3)
    n = 3000
    day = pd.Series(pd.to_datetime("2015-01-01") + pd.to_timedelta(rng.integers(0, 120, n), unit="D")).sort_values()
    frame = pd.DataFrame({
        "YEAR": day.dt.year, "MONTH": day.dt.month, "DAY_OF_MONTH": day.dt.day,
        "DAY_OF_WEEK": day.dt.day_of_week + 1,  # the flights table's convention, Monday = 1
        "FL_DATE": day.dt.strftime("%Y-%m-%d"),
        "WD": day.dt.day_of_week,                 # a name that says nothing; its content does
        "DISTANCE": rng.integers(100, 3000, n), "CARRIER": rng.choice(["AA", "DL", "UA"], n),
        "DEP_HOUR": rng.integers(0, 24, n),       # not the timestamp's (a date has no hour)
        "ARR_DELAY": rng.normal(0, 20, n).round(1)})
    frame.to_csv(tmp_path / "flights.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "init", "flights", "--source", "flights.csv", "--timestamp", "FL_DATE",
                       "--target", "ARR_DELAY", "--threshold", "20")
    assert code == 0, err
    for column, part in (("YEAR", "the year"), ("MONTH", "the month"), ("DAY_OF_MONTH", "the day of the month"),
                         ("DAY_OF_WEEK", "the day of the week"), ("WD", "the day of the week")):
        assert f"left '{column}' out of the features: it repeats {part} of 'FL_DATE'" in err, err
    assert "extrapolates by calendar date across windows" in err
    assert "repeats the year of 'FL_DATE' (by its name)" in err  # one year in the sample: its name tells
    assert "repeats the month of 'FL_DATE' (by its name; equal to it on 100% of 3,000 sampled rows)" in err
    assert "repeats the day of the week of 'FL_DATE' (equal to it on 100% of 3,000 sampled rows)" in err
    assert "'DEP_HOUR'" not in err and "'DISTANCE'" not in err

    text = (tmp_path / "flights/modelcycle.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["features"]["columns"] == ["DISTANCE", "CARRIER", "DEP_HOUR"]
    assert list(config["data"]["columns"]) == list(frame.columns)  # the schema keeps them all
    comment = "\n".join(line for line in text.splitlines() if line.strip().startswith("#"))
    for word in ("YEAR (the year)", "MONTH (the month)", "DAY_OF_WEEK (the day of the week)", "WD (the day",
                 "add it to `columns`", "cyclically", "sin and cos"):
        assert word in comment.replace("\n  # ", " "), comment


def test_status_shows_backend_urls_redacted_even_when_the_server_is_down(taxi_ws, capsys, monkeypatch):
    port = sql_stub.free_port()
    monkeypatch.setenv("TEAM_PW", "tr4cker-pw")
    cfg = taxi_ws / "modelcycle.yaml"
    text = cfg.read_text()
    old = ("  mlflow_tracking_uri: sqlite:///.modelcycle/mlflow.db\n  mlflow_artifacts: .modelcycle/mlartifacts\n"
           "  prefect_api_url: null\n")
    assert old in text
    cfg.write_text(text.replace(old, f"  mlflow_tracking_uri: http://team:${{TEAM_PW}}@127.0.0.1:{port}\n"
                                     "  mlflow_artifacts: .modelcycle/mlartifacts\n"
                                     f"  prefect_api_url: http://team:${{TEAM_PW}}@127.0.0.1:{port}/api\n"))
    code, out, err = cli(capsys, "-w", str(taxi_ws), "status")
    assert code == 6, err  # the tracking server does not answer
    assert f"MLflow   http://team:***@127.0.0.1:{port}" in out
    assert f"Prefect  http://team:***@127.0.0.1:{port}/api" in out
    assert "does not answer" in err and "Traceback" not in err
    assert "tr4cker-pw" not in out + err
