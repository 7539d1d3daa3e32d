"""The pull-request report's files: report.md, report.html and the PNG images beside them.

The images are linked by their bare file names, relative to the report, so the report renders
where it is (a browser, GitHub's file view) and ``cml comment create report.md`` finds and
uploads them (CML resolves a link from the Markdown file's folder).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from modelcycle.lifecycle import timeline
from modelcycle.lifecycle.prreport import PREDICTIONS, MetricRow, ReportData

MARKDOWN = "report.md"
HTML = "report.html"
TIMELINE = "timeline.png"
CONFUSION = "confusion_matrix.png"
RESIDUALS = "residuals.png"
ARROWS = {"better": "better ▲", "worse": "worse ▼", "same": "same"}


def _num(value: float | None, *, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{value:+,.0f}" if signed else f"{value:,.0f}"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _cell(text: str | None) -> str:
    """A value in a Markdown table cell: code, with the table's own characters escaped."""
    if text is None:
        return "—"
    return "`" + text.replace("|", "\\|").replace("`", "'").replace("\n", " ") + "`"


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (2 before 10), then names."""
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label


def draw_confusion(predictions: pd.DataFrame, path: Path) -> Path:
    """The confusion matrix of the branch's model (and the champion's, on the same rows, when
    predictions.csv has its predictions), counts written in the cells."""
    plt = _pyplot()
    actual = predictions["actual"].astype(str)
    models = [("this branch", predictions["challenger"])]
    if predictions["champion"].notna().all():
        models.append(("champion", predictions["champion"]))
    labels = sorted(set(actual) | {str(v) for _, col in models for v in col}, key=_label_order)
    index = {label: i for i, label in enumerate(labels)}
    size = max(4.0, 0.45 * len(labels) + 2.5)
    fig, axes = plt.subplots(1, len(models), figsize=(size * len(models), size), dpi=110, layout="constrained",
                             squeeze=False)
    for ax, (title, column) in zip(axes[0], models, strict=True):
        counts = [[0] * len(labels) for _ in labels]
        for a, p in zip(actual, column.astype(str), strict=True):
            counts[index[a]][index[p]] += 1
        top = max(max(row) for row in counts) or 1
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=top)
        for i, row in enumerate(counts):
            for j, n in enumerate(row):
                ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                        color="white" if n > top / 2 else "black")
        correct = sum(counts[i][i] for i in range(len(labels)))
        ax.set_title(f"{title}: {correct} of {len(actual)} right")
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
    return _save(fig, path)


def draw_residuals(predictions: pd.DataFrame, path: Path) -> Path:
    """Residuals (actual - predicted) against the prediction, for the branch's model and the
    champion on the same rows."""
    plt = _pyplot()
    actual = pd.to_numeric(predictions["actual"], errors="coerce")
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110, layout="constrained")
    champion = pd.to_numeric(predictions["champion"], errors="coerce")
    if champion.notna().any():
        ax.scatter(champion, actual - champion, s=8, alpha=0.35, color="#555555", label="champion")
    mine = pd.to_numeric(predictions["challenger"], errors="coerce")
    ax.scatter(mine, actual - mine, s=8, alpha=0.5, color="#9467bd", label="this branch")
    ax.axhline(0, color="#d62728", lw=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual - predicted")
    ax.set_title(f"residuals on the {len(actual)} held-out rows")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def draw_images(report: ReportData, out: Path) -> tuple[dict[str, Path], list[str]]:
    """The images and the notes about those that could not be drawn."""
    images: dict[str, Path] = {}
    notes: list[str] = []
    import warnings

    with warnings.catch_warnings():  # the branch's point has an unfilled marker: no edge colour to ignore
        warnings.simplefilter("ignore", UserWarning)
        timeline.draw(report.timeline, out / TIMELINE, name=report.name, metric=report.metric,
                      threshold=report.threshold)
    images["timeline"] = out / TIMELINE
    what = "confusion matrix" if report.task == "classification" else "residual plot"
    if report.predictions is None:
        notes.append(f"No {what}: " + next((n for n in report.notes if PREDICTIONS in n),
                                            f"{PREDICTIONS} is missing"))
    elif report.task == "classification":
        images["confusion"] = draw_confusion(report.predictions, out / CONFUSION)
    else:
        images["residuals"] = draw_residuals(report.predictions, out / RESIDUALS)
    return images, notes


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------

def _champion_line(report: ReportData) -> str:
    c = report.champion
    if c is None:
        store = f" in the MLflow store `{report.store}`" if report.store else ""
        return (f"There is no champion of **{report.name}**{store} yet: the numbers below are this branch's "
                "only. A first `modelcycle run` makes one; in CI, the MLFLOW_TRACKING_URI secret names the "
                "store that holds it.")
    run = f"MLflow run `{c.run_id[:8]}`" if c.run_id else "no MLflow run"
    window = f", trained for window {c.window}" if c.window else ""
    return f"This branch's model against the champion **v{c.version}** ({run}{window})."


def _reference_line(report: ReportData) -> str:
    c = report.champion
    if c is None:
        return ""
    if report.champions_own:
        return (f"These stage outputs are those of the cycle that made v{c.version} the champion "
                f"(window {c.window}): this branch's model is the champion's until the pipeline runs again.")
    if report.same_rows_source:
        return (f"The difference is taken against the champion's score on the same {_num(report.holdout_rows)} "
                f"held-out rows (from `{report.same_rows_source}`). Its own cycle's score, on the rows of "
                f"window {c.window or '?'}, is shown for reference.")
    if c.window and c.window == report.window:
        rows = "the same window: the same rows if neither the data nor the split changed"
    else:
        rows = f"window {c.window or '?'}: other rows, a rough comparison"
    return (f"The champion was not scored on this branch's held-out rows, so the difference is taken against "
            f"the score its own cycle logged ({rows}).")


def _metric_cells(row: MetricRow, same: bool) -> list[str]:
    name = f"{row.label} (gate)" if row.gate else row.label
    cells = [name, _num(row.workspace), _num(row.champion_run)]
    if same:
        cells.append(_num(row.champion_same_rows))
    cells += [_num(row.difference, signed=True), ARROWS.get(row.verdict, "")]
    return cells


def _headers(report: ReportData) -> tuple[list[str], list[str], bool]:
    """Metric and param table headers; whether the same-rows column is shown."""
    c = report.champion
    same = c is not None and any(r.champion_same_rows is not None for r in report.metrics)
    if c is None:
        return ["metric", "this branch"], ["param", "this branch"], False
    metric = ["metric", "this branch", f"champion v{c.version}, its cycle"]
    if same:
        metric.append(f"champion v{c.version}, same rows")
    metric += ["difference", ""]
    return metric, ["param", "this branch", f"champion v{c.version}", ""], same


def _metric_rows(report: ReportData) -> list[list[str]]:
    if report.champion is None:
        return [[f"{r.label} (gate)" if r.gate else r.label, _num(r.workspace)] for r in report.metrics]
    _, _, same = _headers(report)
    return [_metric_cells(r, same) for r in report.metrics]


def _param_rows(report: ReportData) -> tuple[list[list[str]], list[list[str]]]:
    """The params that changed (all of them without a champion) and those that did not, as
    table rows (values as Markdown code spans)."""
    if report.champion is None:
        return [[p.name, _cell(p.workspace)] for p in report.params], []
    changed = [[p.name, _cell(p.workspace), _cell(p.champion), "**changed**"] for p in report.params if p.changed]
    same = [[p.name, _cell(p.workspace), _cell(p.champion), ""] for p in report.params if not p.changed]
    return changed, same


def _window_line(report: ReportData) -> str:
    """The windows of the branch and of the champion, apart from the params: each cycle sets its own."""
    c = report.champion
    if c is None:
        return ""
    ours, theirs = f"`{report.window}`" if report.window else "none", f"`{c.window}`" if c.window else "none"
    same = " (the same)" if report.window == c.window else ""
    return (f"Window: this branch {ours}, champion v{c.version} {theirs}{same}; each cycle sets its own, "
            "so it is not counted as a param change.")


def _md_table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _summary(report: ReportData) -> str:
    gate = next(r for r in report.metrics if r.gate)
    spec = "higher" if gate.greater_is_better else "lower"
    head = (f"Gate: {gate.label} {'≥' if gate.greater_is_better else '≤'} {report.threshold:g} ({spec} is better); "
            f"this branch scores {_num(gate.workspace)}")
    if gate.workspace is not None:
        meets = gate.workspace >= report.threshold if gate.greater_is_better else gate.workspace <= report.threshold
        head += " and meets it" if meets else " and misses it"
    if gate.verdict in ("better", "worse", "same"):
        head += ("; the same as the champion" if gate.verdict == "same"
                 else f"; {gate.verdict} than the champion ({_num(gate.difference, signed=True)})")
    changed = report.changed_params
    if report.champion is not None:
        head += (f". {len(changed)} param(s) changed: " + ", ".join(p.name for p in changed)
                 if changed else ". No param changed")
    return head + "."


def markdown(report: ReportData, images: dict[str, Path], notes: list[str]) -> str:
    metric_headers, param_headers, _ = _headers(report)
    changed, unchanged = _param_rows(report)
    window = f" (window {report.window})" if report.window else ""
    lines = [f"## modelcycle report: {report.name}{window}", "", _champion_line(report), "", _summary(report), "",
             "### Metrics", ""]
    lines += _md_table(metric_headers, _metric_rows(report), set(range(1, len(metric_headers) - 1)))
    ref = _reference_line(report)
    lines += ["", ref] if ref else []
    lines += ["", "### Params", ""]
    window_line = _window_line(report)
    lines += [window_line, ""] if window_line else []
    if changed:
        lines += _md_table(param_headers, changed, set())
    else:
        lines.append("No param differs from the champion's.")
    if unchanged:  # folded: a pull request's comment shows what changed first
        lines += ["", f"<details><summary>{len(unchanged)} unchanged param(s)</summary>", ""]
        lines += _md_table(param_headers, unchanged, set())
        lines += ["", "</details>"]
    lines += ["", "### Timeline", "", f"![timeline of {report.metric} per window]({images['timeline'].name})", ""]
    if "confusion" in images:
        lines += ["### Confusion matrix", "", f"![confusion matrix]({images['confusion'].name})", ""]
    if "residuals" in images:
        lines += ["### Residuals", "", f"![residual plot]({images['residuals'].name})", ""]
    for note in notes:
        lines += [f"> {note}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        bold = text.startswith("**") and text.endswith("**")
        code = text.startswith("`") and text.endswith("`") and len(text) > 1
        inner = html.escape(text.strip("*`").replace("\\|", "|"))
        inner = f"<code>{inner}</code>" if code else inner
        return f"<{tag}>{'<strong>' + inner + '</strong>' if bold else inner}</{tag}>"

    head = "<tr>" + "".join(cell(h, "th") for h in headers) + "</tr>"
    body = "".join("<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem}"
        "td:not(:first-child){text-align:right}th{background:#f4f4f4}img{max-width:100%}"
        "blockquote{color:#555;border-left:3px solid #ccc;margin:0;padding-left:1rem}")


def _inline(text: str) -> str:
    """The few inline marks the report's sentences use (bold, code) as HTML."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def html_page(report: ReportData, images: dict[str, Path], notes: list[str]) -> str:
    metric_headers, param_headers, _ = _headers(report)
    changed, unchanged = _param_rows(report)
    window = f" (window {report.window})" if report.window else ""
    parts = [f"<h2>modelcycle report: {html.escape(report.name + window)}</h2>",
             f"<p>{_inline(_champion_line(report))}</p>", f"<p>{_inline(_summary(report))}</p>",
             "<h3>Metrics</h3>", _html_table(metric_headers, _metric_rows(report))]
    ref = _reference_line(report)
    if ref:
        parts.append(f"<p>{_inline(ref)}</p>")
    parts.append("<h3>Params</h3>")
    if _window_line(report):
        parts.append(f"<p>{_inline(_window_line(report))}</p>")
    parts += [_html_table(param_headers, changed) if changed
              else "<p>No param differs from the champion's.</p>"]
    if unchanged:
        parts.append(f"<details><summary>{len(unchanged)} unchanged param(s)</summary>"
                     f"{_html_table(param_headers, unchanged)}</details>")
    parts += ["<h3>Timeline</h3>",
              f'<img src="{html.escape(images["timeline"].name)}" alt="timeline of {html.escape(report.metric)}">']
    for key, title in (("confusion", "Confusion matrix"), ("residuals", "Residuals")):
        if key in images:
            parts += [f"<h3>{title}</h3>", f'<img src="{html.escape(images[key].name)}" alt="{title.lower()}">']
    parts += [f"<blockquote>{_inline(n)}</blockquote>" for n in notes]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>modelcycle report: {html.escape(report.name)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write(report: ReportData, out: Path) -> dict[str, Path]:
    """Write the report's files into ``out`` (created); returns them by kind."""
    out.mkdir(parents=True, exist_ok=True)
    for old in (TIMELINE, CONFUSION, RESIDUALS):  # an image of an earlier report is not this one's
        (out / old).unlink(missing_ok=True)
    images, notes = draw_images(report, out)
    (out / MARKDOWN).write_text(markdown(report, images, notes), encoding="utf-8")
    (out / HTML).write_text(html_page(report, images, notes), encoding="utf-8")
    return {"md": out / MARKDOWN, "html": out / HTML, **images}
