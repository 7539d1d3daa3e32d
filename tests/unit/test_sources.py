from datetime import datetime

import duckdb
import pandas as pd
import pytest

from modelcycle.errors import SchemaError, SourceError
from modelcycle.sources.files import FileSource
from modelcycle.sources.sql import DuckDBSource, SqlAlchemySource

START, END = datetime(2015, 2, 1), datetime(2015, 3, 1)


def rows(n=90):
    return pd.DataFrame({"ts": pd.date_range("2015-01-15", periods=n, freq="12h"), "y": range(n)})


def test_csv_glob_filters_by_window_and_reads_zone_suffixed_times(tmp_path):
    f = rows()
    (tmp_path / "data").mkdir()
    half = len(f) // 2
    for i, part in enumerate((f.iloc[:half], f.iloc[half:])):
        part = part.assign(ts=part.ts.dt.strftime("%Y-%m-%d %H:%M:%S UTC"))
        part.to_csv(tmp_path / "data" / f"rides-{i}.csv", index=False)
    src = FileSource("data/*.csv", timestamp="ts", root=tmp_path)
    got = src.fetch(START, END)
    expected = f[(f.ts >= START) & (f.ts < END)]
    assert len(got) == len(expected) == 56
    assert list(got["y"]) == list(expected["y"])


def test_parquet_source(tmp_path):
    rows().to_parquet(tmp_path / "r.parquet")
    got = FileSource(str(tmp_path / "*.parquet"), timestamp="ts").fetch(START, END)
    assert len(got) == 56 and got["ts"].is_monotonic_increasing


def test_file_source_errors(tmp_path):
    with pytest.raises(SourceError, match="no file matches"):
        FileSource("nothing/*.csv", timestamp="ts", root=tmp_path).fetch(START, END)
    rows().to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(SchemaError, match="timestamp column 'when'"):
        FileSource(str(tmp_path / "a.csv"), timestamp="when").fetch(START, END)


def test_duckdb_table_and_query(tmp_path):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    f = rows()
    con.execute("CREATE TABLE rides AS SELECT * FROM f")
    con.close()
    assert len(DuckDBSource(db, timestamp="ts", table="rides").fetch(START, END)) == 56
    q = DuckDBSource(db, timestamp="ts", query="SELECT ts, y * 2 AS y2 FROM rides")
    got = q.fetch(START, END)
    assert list(got.columns) == ["ts", "y2"] and len(got) == 56


def test_duckdb_errors_name_the_file_and_table(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        DuckDBSource(tmp_path / "missing.duckdb", timestamp="ts", table="rides").fetch(START, END)
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    with pytest.raises(SourceError, match="table 'rides'"):
        DuckDBSource(db, timestamp="ts", table="rides").check()
    (tmp_path / "junk.duckdb").write_text("not a database")
    with pytest.raises(SourceError, match="cannot open"):
        DuckDBSource(tmp_path / "junk.duckdb", timestamp="ts", table="rides").check()


def test_sqlalchemy_sqlite_source(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/r.db"
    engine = sa.create_engine(url)
    rows().to_sql("rides", engine, index=False)
    engine.dispose()
    got = SqlAlchemySource(url, timestamp="ts", table="rides").fetch(START, END)
    assert len(got) == 56
    with pytest.raises(SourceError, match="cannot read"):
        SqlAlchemySource(url, timestamp="ts", table="nope").check()
    with pytest.raises(SourceError):
        SqlAlchemySource("nosuchdialect://x", timestamp="ts", table="t").check()
