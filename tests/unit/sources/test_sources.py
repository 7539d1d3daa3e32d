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
    assert list(got["ts"]) == list(expected["ts"])  # UTC wall time, parsed for the window filter
    assert list(got["y"]) == [str(y) for y in expected["y"]]  # CSV cells as written: validation types them


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
    f = rows()  # noqa: F841 - DuckDB reads the frame by its variable name
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


def long_csv(path, *, n=30_000, bad_row=None, bad_value="1O.5"):
    """Rows every 30 minutes from 2015-01-01 (n=30,000 reaches 2016-09); DuckDB's type sniffer
    reads the first 20,480 rows only, so a bad cell after them is invisible to it."""
    f = pd.DataFrame({"ts": pd.date_range("2015-01-01", periods=n, freq="30min"),
                      "delay": (pd.Series(range(n)) % 50 / 2).astype(float), "n": pd.Series(range(n)) % 7})
    f = f.astype({"delay": object})
    if bad_row is not None:
        f.loc[bad_row, "delay"] = bad_value
    f.to_csv(path, index=False)
    return f


def test_a_bad_cell_deep_in_a_csv_stops_no_window(tmp_path):
    """One non-numeric cell in a float column (row 25,000, in 2016-06) used to stop every
    window with "Conversion Error: CSV Error on Line ..."."""
    f = long_csv(tmp_path / "flights.csv", bad_row=25_000)
    bad_ts = f.loc[25_000, "ts"]
    src = FileSource(str(tmp_path / "flights.csv"), timestamp="ts",
                     columns={"ts": "datetime", "delay": "float", "n": "int"})
    jan = src.fetch(START, END)
    assert len(jan) == 28 * 48 and jan["ts"].is_monotonic_increasing
    assert str(jan["ts"].dtype).startswith("datetime64")
    june = src.fetch(datetime(2016, 6, 1), datetime(2016, 7, 1))
    assert (june.loc[june["ts"] == bad_ts, "delay"] == "1O.5").all()

    from modelcycle.config.models import DataConfig
    from modelcycle.steps.validate import validate

    data = DataConfig(timestamp="ts", target="delay", columns={"ts": "datetime", "delay": "float", "n": "int"})
    clean, report = validate(june, data, window_start=datetime(2016, 6, 1))
    assert report.dropped == {"delay is not a float": 1} and report.examples["delay is not a float"] == ["'1O.5'"]
    assert len(clean) == len(june) - 1 and clean["delay"].dtype == "float64" and clean["n"].dtype == "int64"


def test_csv_text_is_kept_as_written(tmp_path):
    """A column declared str keeps its leading zeros (a type sniffer would make 007 the number 7)."""
    pd.DataFrame({"ts": ["2015-02-01 10:00:00", "2015-02-02 10:00:00"], "zip": ["007", "010"]}).to_csv(
        tmp_path / "z.csv", index=False)
    got = FileSource(str(tmp_path / "z.csv"), timestamp="ts", columns={"ts": "datetime", "zip": "str"}).fetch(START, END)
    assert list(got["zip"]) == ["007", "010"]


def test_file_source_checks_the_declared_columns(tmp_path):
    rows().to_csv(tmp_path / "a.csv", index=False)
    src = FileSource(str(tmp_path / "a.csv"), timestamp="ts", columns={"ts": "datetime", "y": "int", "fare": "float"})
    with pytest.raises(SchemaError) as err:
        src.check()
    assert err.value.column == "fare" and err.value.rule == "required"
    assert "column 'fare' is missing from CSV files" in err.value.message and "they have: ts, y" in err.value.message


def test_build_source_gives_the_files_source_the_declared_columns(tmp_path):
    from modelcycle.config.models import ProjectConfig
    from modelcycle.sources import build_source

    config = ProjectConfig.model_validate({
        "name": "m", "source": {"kind": "files", "url": "data/*.csv"},
        "data": {"timestamp": "ts", "target": "y", "columns": {"ts": "datetime", "y": "float"}},
        "metric": "mae", "gate": {"threshold": 1.0}})
    src = build_source(config, tmp_path)
    assert src.columns == {"ts": "datetime", "y": "float"}


def test_a_malformed_csv_line_is_named_with_its_file_and_line(tmp_path):
    lines = ["ts,y"] + [f"2015-02-{1 + i % 27:02d} 10:00:00,{i}" for i in range(30_000)]
    lines[25_001] = "2015-02-05 10:00:00,1,2"
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError) as err:
        FileSource(str(tmp_path / "r.csv"), timestamp="ts").fetch(START, END)
    message = err.value.message
    assert "line 25002" in message and "r.csv" in message and "'2015-02-05 10:00:00,1,2'" in message
    assert "Expected Number of Columns: 2 Found: 3" in message
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_duckdb_text_timestamps_with_a_bad_cell_stop_no_window(tmp_path):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    f = rows().assign(ts=lambda d: d.ts.dt.strftime("%Y-%m-%d %H:%M:%S"))
    f.loc[3, "ts"] = "yesterday"
    con.execute("CREATE TABLE rides AS SELECT * FROM f")
    con.close()
    got = DuckDBSource(db, timestamp="ts", table="rides").fetch(START, END)
    assert len(got) == 56


def test_duckdb_conversion_errors_name_the_column_and_the_value(tmp_path):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    f = rows().assign(fare=lambda d: d.y.astype(str))
    f.loc[40, "fare"] = "about ten"
    con.execute("CREATE TABLE rides AS SELECT * FROM f")
    con.close()
    src = DuckDBSource(db, timestamp="ts", query="SELECT ts, CAST(fare AS DOUBLE) AS fare FROM rides")
    with pytest.raises(SourceError) as err:
        src.fetch(START, END)
    assert "column 'fare' holds 'about ten', which DuckDB cannot convert to DOUBLE" in err.value.message
    assert "TRY_CAST" in err.value.hint
    assert err.value.__cause__ is None and err.value.__context__ is None


LEAK_SCRIPT = """
import sys, threading, time
from datetime import datetime

failed = threading.Event()

def fail():
    try:
        {call}
    except Exception as exc:
        held = exc  # a failed task's state keeps its error, as Prefect's worker threads do
        print("failed:", type(exc).__name__, flush=True)
        failed.set()
        time.sleep(600)

threading.Thread(target=fail, daemon=True).start()
failed.wait(60)  # then exit while the thread still holds the error
"""


@pytest.mark.parametrize("call", [
    "from modelcycle.sources.files import FileSource; "
    "FileSource(sys.argv[1] + '/r.csv', timestamp='ts').fetch(datetime(2015, 2, 1), datetime(2015, 3, 1))",
    "from modelcycle.sources.sql import DuckDBSource; from pathlib import Path; "
    "DuckDBSource(Path(sys.argv[1]) / 'w.duckdb', timestamp='ts', query='SELECT ts, CAST(fare AS DOUBLE) AS fare FROM rides')"
    ".fetch(datetime(2015, 2, 1), datetime(2015, 3, 1))",
], ids=["csv", "duckdb"])
def test_a_failed_fetch_leaves_no_duckdb_objects_alive(tmp_path, call):
    """A failed fetch's error must not keep DuckDB connections alive: when a thread still holds
    it at exit, DuckDB's bindings (nanobind) print ~50 lines of 'leaked ... instances!'."""
    import os
    import subprocess
    import sys

    lines = ["ts,y"] + [f"2015-02-{1 + i % 27:02d} 10:00:00,{i}" for i in range(30_000)]
    lines[25_001] = "2015-02-05 10:00:00,1,2"
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE rides AS SELECT TIMESTAMP '2015-02-03' AS ts, 'about ten' AS fare")
    con.close()
    proc = subprocess.run([sys.executable, "-c", LEAK_SCRIPT.format(call=call), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert "failed: SourceError" in proc.stdout, proc.stdout + proc.stderr
    assert "leaked" not in proc.stderr, proc.stderr[:2000]


def test_warm_up_imports_the_query_engine_of_the_kinds_that_use_one():
    """In a fresh process: DuckDB for a DuckDB or files source, nothing for an image folder."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\n"
            "from modelcycle import sources\n"
            "seen = ['duckdb' in sys.modules]\n"
            "sources.warm_up('images')\n"
            "seen.append('duckdb' in sys.modules)\n"
            "sources.warm_up(sys.argv[1])\n"
            "seen.append('duckdb' in sys.modules)\n"
            "print(json.dumps(seen))\n")
    for kind in ("duckdb", "files"):
        proc = subprocess.run([sys.executable, "-c", code, kind], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, False, True], kind
