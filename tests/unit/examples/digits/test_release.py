"""The digits example's release plan: every image once, the months' mixes, the events' batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelcycle.examples.digits import release


@pytest.fixture(scope="module")
def plan() -> pd.DataFrame:
    return release.plan()


def test_the_months_partition_the_dataset_and_only_duplicates_are_extra(plan):
    images = plan[plan["defect"] != "duplicate"]
    assert sorted(images["id"]) == list(range(1797))
    assert (images["id"] == images["source"]).all()
    assert images.groupby("month").size().to_dict() == release.SIZES
    assert len(images[images["month"].isin(release.HISTORY_MONTHS)]) == 897
    _, labels = release.dataset()
    assert (plan["label"].to_numpy() == labels[plan["source"].to_numpy()]).all()
    extra = plan[plan["defect"] == "duplicate"]
    assert list(extra["id"]) == [release.FIRST_EXTRA_ID] and set(extra["month"]) == {release.BROKEN_MONTH}
    assert extra["source"].iloc[0] in set(plan.loc[(plan["month"] == release.BROKEN_MONTH)
                                                   & (plan["defect"] == ""), "id"])


def test_each_image_arrives_in_its_month_in_time_order(plan):
    stamps = pd.to_datetime(plan["added_at"])
    assert stamps.is_monotonic_increasing and stamps.is_unique
    assert (stamps.dt.strftime("%Y-%m") == plan["month"]).all()


def test_nines_are_new_in_february_and_its_held_out_images_hold_6_of_them(plan):
    nines = plan[(plan["label"] == 9) & (plan["defect"] != "duplicate")].groupby("month").size()
    assert nines.sum() == 180 and nines.to_dict() == {m: n for m, n in release.NINES.items() if n}
    february = plan[plan["month"] == "2015-02"]
    held_out = february.iloc[-45:]  # the latest 30% of 150, as a cycle splits the window
    assert (held_out["label"] == 9).sum() == 66 - release.EARLY_NINES == 12


@pytest.mark.parametrize("month", release.MONTHS)
def test_no_month_is_more_imbalanced_than_the_default_limit_for_images(plan, month):
    counts = plan[(plan["month"] == month) & (plan["defect"] != "duplicate")]["label"].value_counts()
    assert counts.max() / counts.min() <= 10
    assert len(counts) == (9 if month < "2015-02" else 10)


def test_only_the_rotated_batch_is_rotated_and_only_the_broken_batch_has_defects(plan):
    rotated = plan[plan["rotation"] != 0]
    assert set(rotated["month"]) == {release.ROTATED_MONTH}
    assert len(rotated) == 150 and set(rotated["rotation"]) == set(release.ROTATIONS)
    defects = plan[plan["defect"] != ""]
    assert set(defects["month"]) == {release.BROKEN_MONTH}
    assert defects["defect"].value_counts().to_dict() == {"truncated": 2, "empty": 1, "duplicate": 1}


def test_pixels_are_the_dataset_scaled_to_8_bits_and_turned_in_the_rotated_batch(plan):
    images, _ = release.dataset()
    upright = next(plan[plan["rotation"] == 0].itertuples())
    assert np.array_equal(release.pixels(upright), np.rint(images[upright.source] * 255 / 16).astype(np.uint8))
    for row in plan[plan["rotation"] != 0].head(10).itertuples():
        original = np.rint(images[row.source] * 255 / 16).astype(np.uint8)
        assert np.array_equal(release.pixels(row), np.rot90(original, row.rotation // 90))
        assert not np.array_equal(release.pixels(row), original)
    assert release.pixels(upright).dtype == np.uint8 and release.pixels(upright).max() <= 255


def test_the_plan_depends_on_the_seed_alone(plan):
    pd.testing.assert_frame_equal(plan, release.plan())
    other = release.plan(1)
    assert sorted(other.loc[other["defect"] != "duplicate", "id"]) == list(range(1797))
    assert not other["id"].equals(plan["id"])


def test_the_truth_names_an_event_and_a_decision_per_cycle_window():
    truth = release.truth()
    assert [t["window"] for t in truth] == ["2014-12", *release.BATCH_MONTHS]
    assert {t["window"]: (t["event"], t["decision"], t["outcome"]) for t in truth} == {
        "2014-12": ("history", "promote", "promote"), "2015-01": ("quiet", "keep", "keep"),
        "2015-02": ("class_balance", "promote", "promote"), "2015-03": ("quiet", "keep", "keep"),
        "2015-04": ("rotated", "escalate", "rolled_back"), "2015-05": ("broken_files", "keep", "keep"),
        "2015-06": ("quiet", "keep", "keep")}
    broken = truth[5]
    assert (broken["images"], broken["files"], broken["broken_files"]) == (150, 151, 4)
    assert truth[0]["images"] == 147 and truth[2]["nines"] == 66 and all(t["why"] for t in truth)
    kept = {t["window"]: t["outcome"] for t in release.truth(keep_rejected=True)}
    assert kept["2015-04"] == "escalate"


def test_only_a_challenger_that_misses_and_is_not_promoted_is_rolled_back():
    assert release.outcome("escalate", False, keep_rejected=False) == "rolled_back"
    assert release.outcome("keep", False, keep_rejected=False) == "rolled_back"
    assert release.outcome("keep", True, keep_rejected=False) == "keep"
    assert release.outcome("promote", True, keep_rejected=False) == "promote"
    assert release.outcome("escalate", False, keep_rejected=True) == "escalate"
