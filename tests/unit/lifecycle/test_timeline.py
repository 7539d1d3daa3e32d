"""The backtest timeline: the legend never covers the plot, a failed month is not drawn as a score."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from modelcycle.lifecycle import timeline

THRESHOLD = 2.5


def result(window, outcome, champion, challenger, floor=None):
    return SimpleNamespace(window=window, outcome=outcome, champion_score=champion, challenger_score=challenger,
                           noise_floor=floor)


RESULTS = [
    result("2015-01", "keep", 2.31, 2.35, 2.05), result("2015-02", "keep", 2.29, 2.33, 2.04),
    result("2015-03", "promote", 2.62, 2.41, 2.10), result("2015-04", "escalate", 2.71, 2.66, 2.12),
    result("2015-05", "failed", None, None, None), result("2015-06", "keep", 2.40, 2.43, 2.07),
]
EVENTS = {"2015-03": "fare rules change (+18%)", "2015-04": "30% of rows broken"}


@pytest.fixture
def drawn():
    import matplotlib.pyplot as plt

    fig = timeline.figure(RESULTS, name="taxifare", metric="mae", threshold=THRESHOLD, events=EVENTS)
    fig.canvas.draw()
    yield fig, fig.axes[0], fig.canvas.get_renderer()
    plt.close(fig)


def test_legend_is_outside_the_plot_and_inside_the_picture(drawn):
    fig, ax, renderer = drawn
    assert not ax.get_legend() and len(fig.legends) == 1
    legend = fig.legends[0].get_window_extent(renderer)
    plot = ax.get_tightbbox(renderer)  # the axes with their tick labels, title and annotations
    assert not legend.overlaps(plot), (legend, plot)
    assert legend.y1 <= ax.get_window_extent(renderer).y0  # below the data area
    picture = fig.bbox
    assert picture.x0 <= legend.x0 and legend.x1 <= picture.x1 and picture.y0 <= legend.y0  # nothing cut
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "decision: failed" in texts and f"threshold {THRESHOLD:g}" in texts


def test_failed_month_is_marked_in_the_bottom_strip_not_on_the_threshold(drawn):
    fig, ax, renderer = drawn
    marks = [line for line in ax.get_lines() if line.get_gid() == timeline.NO_SCORE_GID]
    assert len(marks) == 1
    mark = marks[0]
    x_data = mark.get_xdata()[0]
    assert RESULTS[int(x_data)].outcome == "failed"
    _, y_mark = mark.get_transform().transform((x_data, mark.get_ydata()[0]))
    _, y_threshold = ax.transData.transform((0, THRESHOLD))
    scores = [v for r in RESULTS for v in (r.champion_score, r.challenger_score, r.noise_floor) if v is not None]
    _, y_lowest_score = ax.transData.transform((0, min(scores)))
    box = ax.get_window_extent(renderer)
    assert abs(y_mark - y_threshold) > 50  # pixels: far from the threshold line
    assert box.y0 < y_mark < y_lowest_score  # inside the plot, below every score
    # its y is no score: no tick label sits at its height
    _, y_data = ax.transData.inverted().transform((0, y_mark))
    assert all(tick > y_data for tick in ax.get_yticks())
    # labelled, and no scored decision marker drawn for that month
    assert any(t.get_text() == "failed" and t.xy[0] == x_data for t in ax.texts)
    offsets = [tuple(o) for c in ax.collections for o in c.get_offsets()]
    assert all(o[0] != x_data for o in offsets)


def test_draw_writes_the_png(tmp_path: Path):
    import matplotlib.image

    path = timeline.draw(RESULTS, tmp_path / "reports" / "timeline.png", name="taxifare", metric="mae",
                         threshold=THRESHOLD, events=EVENTS)
    image = matplotlib.image.imread(path)
    assert image.shape[0] == 5.6 * 120 and image.shape[1] >= 7.5 * 120
