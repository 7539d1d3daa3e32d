"""Taking the kept rows run by run gives exactly what pandas' boolean indexing gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelcycle.steps import frames


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    floats = rng.normal(size=n)
    floats[::17] = np.nan
    stamps = pd.Series(pd.date_range("2015-01-01", periods=n, freq="37s"))
    stamps[::23] = pd.NaT
    frame = pd.DataFrame({
        "fare": floats,
        "count": rng.integers(0, 9, n),
        "flag": rng.integers(0, 2, n).astype(bool),
        "at": stamps,
        "at_us": stamps.astype("datetime64[us]"),
        "zoned": stamps.dt.tz_localize("UTC").dt.tz_convert("America/New_York"),
        "objects": pd.Series([None if i % 5 == 0 else ([i] if i % 7 == 0 else f"r{i}") for i in range(n)],
                             dtype=object),
        "kind": pd.Categorical(rng.choice(["a", "b", None], n)),
        "nullable": pd.array([None if i % 4 == 0 else i for i in range(n)], dtype="Int64"),
        "text": pd.array([None if i % 6 == 0 else f"t{i}" for i in range(n)], dtype="string"),
        "small": rng.integers(0, 100, n).astype("int16"),
    })
    frame.attrs["modelcycle_ordered"] = True
    return frame


def _masks(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    one = np.ones(n, dtype=bool)
    first, middle, last = one.copy(), one.copy(), one.copy()
    first[0], middle[n // 2], last[-1] = False, False, False
    blocks = one.copy()
    blocks[100:250] = blocks[900:901] = False
    scattered = rng.random(n) > 0.3  # many short runs: pandas' own indexing
    return {"all kept": one, "first dropped": first, "one in the middle": middle, "last dropped": last,
            "blocks": blocks, "scattered": scattered, "none kept": np.zeros(n, dtype=bool)}


@pytest.mark.parametrize("which", list(_masks(10)))
def test_kept_rows_are_those_boolean_indexing_gives(which: str) -> None:
    frame = _frame(20_000)
    keep = _masks(len(frame))[which]
    got = frames.kept(frame, keep)
    expected = frame[keep].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(frame.dtypes)
    assert got.attrs == frame.attrs
    for name in ("fare", "count", "at", "objects"):  # the taken columns are new, not views of the frame's
        assert not np.shares_memory(got[name].to_numpy(), frame[name].to_numpy())


def test_few_runs_are_copied_run_by_run_and_many_go_through_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _frame(5_000)
    gathered: list[int] = []
    real = pd.DataFrame.__getitem__

    def watching(self, key):
        if isinstance(key, np.ndarray) and key.dtype == bool:
            gathered.append(len(key))
        return real(self, key)

    monkeypatch.setattr(pd.DataFrame, "__getitem__", watching)
    few = np.ones(len(frame), dtype=bool)
    few[10:20] = False
    frames.kept(frame, few)
    assert gathered == []
    many = np.tile([True, False], len(frame) // 2)  # 2,500 runs
    monkeypatch.setattr(frames, "MOST_RUNS", 1000)
    pd.testing.assert_frame_equal(frames.kept(frame, many), real(frame, many).reset_index(drop=True))
    assert gathered == [len(frame)]  # the call inside kept (the expected frame is taken without the watch)


def test_runs_are_the_true_stretches_of_a_mask() -> None:
    starts, stops = frames.runs(np.array([True, True, False, True, False, False, True]))
    assert starts.tolist() == [0, 3, 6] and stops.tolist() == [2, 4, 7]
    assert [a.tolist() for a in frames.runs(np.zeros(3, dtype=bool))] == [[], []]


def test_a_mask_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="a mask of 3 rows for a frame of 4"):
        frames.kept(pd.DataFrame({"a": range(4)}), np.ones(3, dtype=bool))


def test_validation_takes_its_kept_rows_run_by_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelcycle.config.models import DataConfig, RuleConfig
    from modelcycle.steps import validate

    n = 50_000
    rows = pd.DataFrame({"ts": pd.date_range("2015-01-01", periods=n, freq="min"),
                         "y": np.linspace(1.0, 50.0, n), "n": np.arange(n) % 6})
    rows.loc[[7, 30_000], "y"] = -1.0  # two rows break the rule
    data = DataConfig(timestamp="ts", target="y", columns={"ts": "datetime", "y": "float", "n": "int"},
                      rules={"y": RuleConfig(min=0)})
    gathered: list[int] = []
    real = pd.DataFrame.__getitem__

    def watching(self, key):
        if isinstance(key, (np.ndarray, pd.Series)) and key.dtype == bool and len(key) == n:
            gathered.append(len(key))
        return real(self, key)

    monkeypatch.setattr(pd.DataFrame, "__getitem__", watching)
    clean, report, kept = validate.validate_rows(rows, data)
    assert gathered == []  # no gather of the whole frame
    assert report.rows_out == n - 2 and not kept[7] and not kept[30_000]
    pd.testing.assert_frame_equal(clean, real(rows, kept).reset_index(drop=True), check_dtype=False)  # ts in ns
