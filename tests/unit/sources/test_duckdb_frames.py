"""Rows read through Arrow are the frame DuckDB's own ``.df()`` makes, type by type."""

from __future__ import annotations

import pandas as pd
import pytest

from modelcycle.sources.sql import as_frame

duckdb = pytest.importorskip("duckdb")

COLUMNS = {
    "i": "1::INTEGER", "bi": "2::BIGINT", "ti": "3::TINYINT", "ub": "7::UBIGINT", "f": "1.5::DOUBLE",
    "r": "2.5::REAL", "b": "true", "s": "'a'", "d": "DATE '2020-01-01'", "ts": "TIMESTAMP '2020-01-01 10:00'",
    "tns": "'2020-01-01 10:00'::TIMESTAMP_NS", "tz": "TIMESTAMPTZ '2020-01-01 10:00+02'",
    "dec": "1.25::DECIMAL(10,2)", "iv": "INTERVAL 1 DAY", "l": "[1, 2]", "hi": "5::HUGEINT", "tm": "TIME '10:00'",
}


@pytest.mark.parametrize("with_nulls", [False, True])
@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_each_type_comes_out_as_duckdb_makes_it(name: str, with_nulls: bool) -> None:
    con = duckdb.connect()
    value = COLUMNS[name]
    rows = f"SELECT {value} AS {name}, 1 AS k UNION ALL SELECT {value}, 2"
    if with_nulls:
        rows += f" UNION ALL SELECT NULL::{con.sql(f'SELECT {value}').types[0]}, 3"
    sql = f"SELECT {name} FROM ({rows}) ORDER BY k"
    expected = con.sql(sql).df()
    got = as_frame(con, con.sql(sql).to_arrow_table())
    pd.testing.assert_frame_equal(got, expected)


def test_plain_columns_are_not_copied_into_one_block() -> None:
    con = duckdb.connect()
    got = as_frame(con, con.sql("SELECT range::DOUBLE AS a, range::DOUBLE * 2 AS b, range AS c FROM range(1000)")
                   .to_arrow_table())
    assert len(got._mgr.blocks) == 3  # one block a column: no copy into one block
    assert got["b"].iloc[-1] == 1998.0
