"""Helpers the integration tests share: the command line run in-process, a workspace's git
head, a clean failure's checks, a warehouse changed in place, and a table of house sales."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from modelcycle.cli.main import main


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out = capsys.readouterr()
    code = exit_.value.code if isinstance(exit_.value.code, int) else (0 if exit_.value.code is None else 1)
    return code, out.out, out.err


def head(root: Path) -> tuple[str, str]:
    """The workspace's git HEAD commit and its tags."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "HEAD"), git("tag")


def assert_clean_failure(code: int, err: str, *words: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def mutate_warehouse(root: Path, sql: str) -> None:
    con = duckdb.connect(str(root / ".modelcycle/warehouse.duckdb"))
    con.execute(sql)
    con.close()


def sales(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.uniform(30, 200, n)
    rooms = rng.integers(1, 6, n)
    district = rng.choice(["north", "south", "centre"], n)
    price = 2000 * size + 15000 * rooms + np.where(district == "centre", 60000, 0) + rng.normal(0, 20000, n)
    return pd.DataFrame({"sold_at": pd.date_range("2023-07-01", "2024-02-28", periods=n).strftime("%Y-%m-%d %H:%M:%S"),
                         "size_m2": size.round(1), "rooms": rooms, "district": district, "price": price.round(0)})
