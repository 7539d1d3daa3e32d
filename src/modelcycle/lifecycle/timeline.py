"""The backtest picture: champion and challenger scores per window, the threshold, the noise
floor when the data is simulated, and every decision marked.

A decision with a challenger score is marked at that score. A window with no score to show (a
failed cycle, or a decision taken without scoring, such as an escalation on broken data) is
marked in a strip along the bottom of the plot, labelled "failed" or "no score" and shaded, never
on a score or the threshold line. The legend sits below the plot, outside the data area, and the
figure grows to hold it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS = {"promote": ("^", "#2ca02c", "promote"), "keep": ("o", "#1f77b4", "keep"),
           "rolled_back": ("v", "#8c564b", "rolled back"),
           "escalate": ("D", "#ff7f0e", "escalate"), "failed": ("X", "#d62728", "failed")}

#: Height of the no-score strip's markers, as a fraction of the plot's height from its bottom.
NO_SCORE_Y = 0.05
#: The ``gid`` of the marker of a window without a score (tests and tools find it by it).
NO_SCORE_GID = "no-score"


def _nan(values: list[float | None]) -> list[float]:
    return [v if v is not None else float("nan") for v in values]


def figure(results: list[Any], *, name: str, metric: str, threshold: float,
           events: dict[str, str] | None = None) -> Any:
    """The timeline as a matplotlib Figure (Agg backend); :func:`draw` writes it to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = [r.window for r in results]
    xs = list(range(len(windows)))
    fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * len(windows) + 2), 5.6), dpi=120, layout="constrained")
    # markers on the lines too: a score between two missing ones is still seen
    ax.plot(xs, _nan([r.champion_score for r in results]), "-o", color="#555555", lw=2, ms=3,
            label="champion (serving) on the window")
    ax.plot(xs, _nan([r.challenger_score for r in results]), "--", color="#9467bd", lw=1.5,
            label="challenger on the same rows")
    floors = [r.noise_floor for r in results]
    if any(f is not None for f in floors):
        ax.plot(xs, _nan(floors), ":", color="#7f7f7f", lw=1.5, label="noise floor (best possible)")
    ax.axhline(threshold, color="#d62728", lw=1, ls="-.", label=f"threshold {threshold:g}")

    seen: set[str] = set()
    unscored: list[tuple[int, Any]] = []
    for x, r in zip(xs, results, strict=True):
        marker, color, label = MARKERS.get(r.outcome, ("x", "black", r.outcome))
        legend = f"decision: {label}" if label not in seen else None
        seen.add(label)
        if r.outcome == "failed" or r.challenger_score is None:
            unscored.append((x, r))
            # x in data, y as a fraction of the axes: the strip at the bottom, whatever the scale
            ax.plot([x], [NO_SCORE_Y], linestyle="none", marker=marker, ms=10, color=color, mec="white",
                    transform=ax.get_xaxis_transform(), clip_on=False, zorder=7, label=legend,
                    gid=NO_SCORE_GID)
            continue
        ax.scatter([x], [r.challenger_score], marker=marker, s=90, color=color, zorder=7, label=legend,
                   edgecolor="white")

    if unscored:
        # a strip below the scores: no score shares it, no tick labels it, a rule separates it
        low, high = ax.get_ylim()
        ticks = [t for t in ax.get_yticks() if low <= t <= high]
        ax.set_ylim(low - 0.14 * (high - low), high)
        ax.set_yticks(ticks)
        ax.axhline(low, color="#cccccc", lw=0.8, zorder=1)
        for x, r in unscored:
            ax.axvspan(x - 0.4, x + 0.4, color="#d62728" if r.outcome == "failed" else "#999999",
                       alpha=0.07, lw=0, zorder=0)
            ax.annotate("failed" if r.outcome == "failed" else "no score", (x, NO_SCORE_Y),
                        xycoords=("data", "axes fraction"), xytext=(9, 0), textcoords="offset points",
                        va="center", ha="left", fontsize=8, fontweight="bold",
                        color="#d62728" if r.outcome == "failed" else "#555555", zorder=6)
    if events:
        for x, w in zip(xs, windows, strict=True):
            if w in events:
                ax.axvline(x, color="#bbbbbb", lw=0.8, zorder=0)
                ax.annotate(events[w], (x, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                            va="top", ha="right", fontsize=7, color="#555555",
                            zorder=1.5,  # under the lines and markers: a label never hides a score
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})
    ax.set_xlim(-0.6, len(windows) - 0.4)
    ax.set_xticks(xs, windows, rotation=0 if len(windows) <= 12 else 45)
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{name}: {metric.upper()} per window, decisions marked")
    ax.grid(alpha=0.25)
    handles, labels = ax.get_legend_handles_labels()
    # outside the axes, below them: constrained layout makes room, so the legend never covers data
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)) or 1, fontsize=8,
               frameon=False)
    return fig


def draw(results: list[Any], path: Path, *, name: str, metric: str, threshold: float,
         events: dict[str, str] | None = None) -> Path:
    import matplotlib.pyplot as plt

    fig = figure(results, name=name, metric=metric, threshold=threshold, events=events)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
