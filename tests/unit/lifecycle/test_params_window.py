"""params.yaml's window line is edited in place: comments, order and other keys stay."""

from __future__ import annotations

import yaml

from modelcycle.lifecycle.stages import with_window

PARAMS = """\
# what the cycle trains on
window: 2015-01   # set by modelcycle run
train:
  window: keep-me        # a nested key of the same name is not the cycle's window
  learning_rate: 0.05
"""


def test_the_top_level_window_line_changes_and_nothing_else() -> None:
    out = with_window(PARAMS, "2015-02")
    assert out == PARAMS.replace("window: 2015-01   #", "window: 2015-02   #")
    assert yaml.safe_load(out)["train"]["window"] == "keep-me"


def test_a_missing_window_is_added_at_the_end() -> None:
    out = with_window("train:\n  seed: 1", "2015-03")
    assert out == "train:\n  seed: 1\nwindow: 2015-03\n"
    assert with_window("", "2015-03") == "window: 2015-03\n"


def test_a_label_yaml_would_read_as_a_date_is_quoted() -> None:
    out = with_window("window: 2015-01\n", "2015-01-05")
    assert yaml.safe_load(out)["window"] == "2015-01-05"
    assert yaml.safe_load(with_window("", "2015-W03"))["window"] == "2015-W03"
