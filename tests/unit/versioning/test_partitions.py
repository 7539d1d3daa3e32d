"""Month partitions: the same rows give the same bytes, a manifest reads back as written, and the
reader refuses a partition that is not the one the manifest names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.errors import VersioningError
from modelcycle.versioning import partitions as parts
from modelcycle.versioning.partitions import Manifest, Partition


def rides(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2015-01-01")
    stamps = start + pd.to_timedelta(rng.integers(0, 86_400 * 90, n) // 60 * 60, unit="s")  # minutes: ties
    return pd.DataFrame({"pickup_datetime": stamps, "fare": rng.normal(10, 3, n).round(2),
                         "passengers": rng.integers(1, 6, n), "zone": rng.choice(["north", "south", "east"], n)})


def md5s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_the_same_rows_in_any_order_give_the_same_bytes(tmp_path: Path) -> None:
    frame = rides()
    assert frame["pickup_datetime"].duplicated().any()  # ties, broken by the rows' hash
    arranged, spans = parts.arrange(frame, "pickup_datetime")
    assert [label for label, _, _ in spans] == ["2015-01", "2015-02", "2015-03"]
    parts.write(tmp_path / "a", arranged, spans)
    shuffled, spans_b = parts.arrange(frame.sample(frac=1.0, random_state=3).reset_index(drop=True), "pickup_datetime")
    parts.write(tmp_path / "b", shuffled, spans_b)
    assert md5s(tmp_path / "a") == md5s(tmp_path / "b")
    pd.testing.assert_frame_equal(arranged, shuffled)
    assert arranged["pickup_datetime"].is_monotonic_increasing


def test_a_month_whose_rows_did_not_change_keeps_its_file_and_a_changed_one_gets_new_bytes(tmp_path: Path) -> None:
    frame = rides()
    folder = tmp_path / "raw"
    first = {p.name: p for p in parts.write(folder, *parts.arrange(frame, "pickup_datetime"))}
    february = folder / "2015-02.parquet"
    stamp = february.stat().st_mtime_ns
    late = frame[frame["pickup_datetime"] < "2015-01-02"].assign(fare=lambda f: f["fare"] + 1)
    later = pd.concat([frame[frame["pickup_datetime"] >= "2015-02-01"], late,
                       frame[frame["pickup_datetime"] < "2015-02-01"]], ignore_index=True)
    second = {p.name: p for p in parts.write(folder, *parts.arrange(later, "pickup_datetime"))}
    assert second["2015-02.parquet"] == first["2015-02.parquet"]
    assert second["2015-01.parquet"].md5 != first["2015-01.parquet"].md5
    assert second["2015-01.parquet"].rows == first["2015-01.parquet"].rows + len(late)
    assert february.stat().st_mtime_ns == stamp  # not rewritten: DVC need not hash it again
    only_march = frame[frame["pickup_datetime"] >= "2015-03-01"]
    parts.write(folder, *parts.arrange(only_march, "pickup_datetime"))
    assert sorted(md5s(folder)) == ["2015-03.parquet"]  # the folder holds exactly this frame's months


def test_rows_without_a_time_go_to_their_own_partition_last(tmp_path: Path) -> None:
    frame = pd.DataFrame({"at": ["2015-01-03 10:00", "not a time", "2014-12-31 23:59", None], "v": [1, 2, 3, 4]})
    arranged, spans = parts.arrange(frame, "at")
    assert [s[0] for s in spans] == ["2014-12", "2015-01", parts.UNPLACED]
    assert list(arranged["v"])[:2] == [3, 1] and set(arranged["v"][2:]) == {2, 4}
    found = parts.write(tmp_path, arranged, spans)
    assert [p.name for p in found] == ["2014-12.parquet", "2015-01.parquet", "unplaced.parquet"]
    assert [p.name for p in parts.listing(tmp_path)] == [p.name for p in found]


def test_the_partitions_read_back_as_the_rows_written_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    frame, spans = parts.arrange(rides(), "pickup_datetime")
    found = parts.write(tmp_path, frame, spans)
    pd.testing.assert_frame_equal(parts.read(tmp_path, found), frame)
    assert parts.digest(parts.read(tmp_path, found)) == parts.digest(frame)
    (tmp_path / "2015-02.parquet").write_bytes(parts.to_bytes(frame.iloc[:10]))
    with pytest.raises(VersioningError, match="2015-02.parquet is not the one the manifest names") as err:
        parts.read(tmp_path, found, where="data/train.json")
    assert "dvc checkout" in (err.value.hint or "")
    (tmp_path / "2015-03.parquet").unlink()
    with pytest.raises(VersioningError, match="2015-03.parquet is missing"):
        parts.read(tmp_path, [found[2]], where="data/train.json")


def test_a_manifest_reads_back_as_written_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    manifest = Manifest(kind="train", window="2015-03", folder="data/raw",
                        partitions=[Partition("2015-02.parquet", "a" * 32, 10), Partition("2015-03.parquet", "b" * 32, 5)],
                        rows=14, digest="c" * 64, selection={"cut": "2015-03-22T10:00:00", "holdout_fraction": 0.3})
    path = tmp_path / "data" / "train.json"
    manifest.write(path)
    assert Manifest.read(path, "data/train.json") == manifest
    assert '"format": "modelcycle.manifest/1"' in path.read_text()
    path.write_text('{"kind": "train"}')
    with pytest.raises(VersioningError, match="data/train.json is not a modelcycle data manifest"):
        Manifest.read(path, "data/train.json")
    with pytest.raises(VersioningError, match="data/holdout.json does not exist"):
        Manifest.read(tmp_path / "data" / "holdout.json", "data/holdout.json")


def test_the_digest_sees_a_changed_value_and_the_row_order() -> None:
    frame = rides(50)
    assert parts.digest(frame) == parts.digest(frame.copy())
    assert parts.digest(frame) != parts.digest(frame.assign(fare=frame["fare"].where(frame.index != 7, 0.0)))
    assert parts.digest(frame) != parts.digest(frame.iloc[::-1])
    assert parts.ranges(np.array([True, True, False, True])) == [[0, 2], [3, 4]]
    assert list(parts.positions([[0, 2], [3, 4]], 5)) == [True, True, False, True, False]


def _counting_encoder(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    encoded: list[int] = []
    real = parts.to_bytes

    def counted(frame: pd.DataFrame) -> bytes:
        encoded.append(len(frame))
        return real(frame)

    monkeypatch.setattr(parts, "to_bytes", counted)
    return encoded


def test_a_month_whose_rows_are_those_its_file_was_written_from_is_not_encoded_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, memo = tmp_path / "raw", tmp_path / "state" / "partitions.json"
    frame = rides()
    first = parts.write(folder, *parts.arrange(frame, "pickup_datetime"), memo)
    written = md5s(folder)
    encoded = _counting_encoder(monkeypatch)
    again = parts.write(folder, *parts.arrange(frame.sample(frac=1.0, random_state=1), "pickup_datetime"), memo)
    assert encoded == [] and again == first and md5s(folder) == written
    # one changed value in February: only February is encoded, and gets other bytes
    changed = frame.copy()
    at = changed.index[changed["pickup_datetime"].dt.month == 2][0]
    changed.loc[at, "fare"] += 0.01
    third = {p.name: p for p in parts.write(folder, *parts.arrange(changed, "pickup_datetime"), memo)}
    assert len(encoded) == 1 and third["2015-02.parquet"].md5 != written["2015-02.parquet"]
    assert {n: p.md5 for n, p in third.items() if n != "2015-02.parquet"} == {
        n: m for n, m in written.items() if n != "2015-02.parquet"}


def test_a_file_replaced_since_it_was_written_is_encoded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, memo = tmp_path / "raw", tmp_path / "partitions.json"
    frame, spans = parts.arrange(rides(), "pickup_datetime")
    parts.write(folder, frame, spans, memo)
    written = md5s(folder)
    march = folder / "2015-03.parquet"
    march.write_bytes(parts.to_bytes(frame.iloc[:5]))  # another cycle's March, checked out by DVC
    encoded = _counting_encoder(monkeypatch)
    parts.write(folder, frame, spans, memo)
    assert len(encoded) == 1 and md5s(folder) == written
    memo.write_text("{not json", encoding="utf-8")  # a damaged memo costs the encoding, nothing else
    encoded.clear()
    assert [p.md5 for p in parts.write(folder, frame, spans, memo)] == list(written.values())
    assert len(encoded) == 3


def test_the_fingerprint_sees_what_changes_the_bytes() -> None:
    base = pd.DataFrame({"x": [0.0, 1.0, np.nan], "n": [1, 2, 3], "s": ["a", None, "b"],
                         "t": pd.to_datetime(["2015-01-01", None, "2015-01-02"])})
    mark = parts.fingerprint(base)
    assert parts.fingerprint(base.copy()) == mark
    assert parts.fingerprint(base.assign(x=[-0.0, 1.0, np.nan])) != mark  # another sign bit, other bytes
    assert parts.fingerprint(base.assign(n=[1.0, 2.0, 3.0])) != mark  # another type
    assert parts.fingerprint(base.assign(s=["a", "b", None])) != mark  # the empty cell moved
    assert parts.fingerprint(base.rename(columns={"x": "y"})) != mark
    assert parts.fingerprint(base.iloc[::-1]) != mark  # the order is part of the bytes
    assert parts.fingerprint(base.iloc[:2]) != mark


def test_rows_a_duckdb_source_sorted_come_in_the_same_order_whatever_order_they_were_stored_in(tmp_path: Path) -> None:
    from datetime import datetime

    from modelcycle.sources.base import ORDERED
    from modelcycle.sources.sql import DuckDBSource

    duckdb = pytest.importorskip("duckdb")
    frame = rides(5000)
    assert frame["pickup_datetime"].duplicated().any()
    found = []
    for seed in (1, 2):
        path = tmp_path / f"w{seed}.duckdb"
        shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        con = duckdb.connect(str(path))
        con.register("shuffled", shuffled)
        con.execute("CREATE TABLE rides AS SELECT * FROM shuffled")
        con.close()
        fetched = DuckDBSource(path, timestamp="pickup_datetime", table="rides").fetch(
            datetime(2015, 1, 1), datetime(2015, 4, 1))
        assert fetched.attrs[ORDERED] is True
        arranged, spans = parts.arrange(fetched, "pickup_datetime", ordered=True)
        assert arranged is fetched  # taken as the source ordered it: no sort, no copy
        parts.write(tmp_path / f"raw{seed}", arranged, spans)
        found.append(arranged)
    pd.testing.assert_frame_equal(found[0], found[1])
    assert md5s(tmp_path / "raw1") == md5s(tmp_path / "raw2")
    # rows out of time order are sorted whatever the source says
    backwards = found[0].iloc[::-1].reset_index(drop=True)
    again, _ = parts.arrange(backwards, "pickup_datetime", ordered=True)
    assert again["pickup_datetime"].is_monotonic_increasing
