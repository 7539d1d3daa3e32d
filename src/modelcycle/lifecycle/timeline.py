"""The backtest picture: champion and challenger scores per window, the threshold, the noise
floor when the data is simulated, and every decision marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS = {"promote": ("^", "#2ca02c", "promote"), "keep": ("o", "#1f77b4", "keep"),
           "escalate": ("D", "#ff7f0e", "escalate"), "failed": ("X", "#d62728", "failed")}


def draw(results: list[Any], path: Path, *, name: str, metric: str, threshold: float,
         events: dict[str, str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = [r.window for r in results]
    xs = list(range(len(windows)))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(windows) + 2), 4.6), dpi=120)
    champ = [r.champion_score for r in results]
    chall = [r.challenger_score for r in results]
    ax.plot(xs, [c if c is not None else float("nan") for c in champ], "-", color="#555555",
            lw=2, label="champion (serving) on the window")
    ax.plot(xs, [c if c is not None else float("nan") for c in chall], "--", color="#9467bd",
            lw=1.5, label="challenger on the same rows")
    floors = [r.noise_floor for r in results]
    if any(f is not None for f in floors):
        ax.plot(xs, [f if f is not None else float("nan") for f in floors], ":", color="#7f7f7f",
                lw=1.5, label="noise floor (best possible)")
    ax.axhline(threshold, color="#d62728", lw=1, ls="-.", label=f"threshold {threshold:g}")
    seen: set[str] = set()
    for x, r in zip(xs, results):
        marker, color, label = MARKERS.get(r.outcome, ("x", "black", r.outcome))
        y = r.challenger_score if r.challenger_score is not None else threshold
        ax.scatter([x], [y], marker=marker, s=90, color=color, zorder=5,
                   label=f"decision: {label}" if label not in seen else None, edgecolor="white")
        seen.add(label)
    if events:
        for x, w in zip(xs, windows):
            if w in events:
                ax.axvline(x, color="#bbbbbb", lw=0.8, zorder=0)
                ax.annotate(events[w], (x, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                            va="top", ha="right", fontsize=7, color="#555555", zorder=5,
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})
    ax.set_xticks(xs, windows, rotation=0 if len(windows) <= 12 else 45)
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{name}: {metric.upper()} per window, decisions marked")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
