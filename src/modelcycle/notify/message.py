"""The text of a notification: a title line, then the scores against the threshold, the
interval of the improvement, the reasons and where to look (links, or ids and a hint when the
backends are embedded). The body is what a receiver gets (a ``json://`` webhook's ``message``,
an e-mail's text), so it carries every link itself."""

from __future__ import annotations

from modelcycle.notify.events import CycleOutcome, Event, EventKind
from modelcycle.notify.links import UI_HINT


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _pct(value: float) -> str:
    return f"{value:+.1%}"


def _metric(name: str | None) -> tuple[str, str]:
    """The metric's label (``MAE``) and the threshold's direction (``≤`` or ``≥``)."""
    if not name:
        return "score", ""
    from modelcycle.steps.evaluate import METRICS

    spec = METRICS.get(name)
    if spec is None:
        return name, ""
    return spec.label or name, "≥ " if spec.greater_is_better else "≤ "


def _bullets(reasons: tuple[str, ...]) -> str:
    return "".join(f"\n  - {r}" for r in reasons)


def format_title(event: Event) -> str:
    """One line: the model, the window, what happened."""
    if event.kind == EventKind.OUTSIDE:
        return f"[{event.model}] MOVED OUTSIDE MODELCYCLE"
    if event.kind == EventKind.ROLLBACK:
        return f"[{event.model}] ROLLBACK: the champion is v{event.version}"
    if event.kind == EventKind.APPROVAL:
        return f"[{event.model}] {event.window}: PROMOTED BY A HUMAN (v{event.version})"
    head = f"[{event.model}] {event.window}: {str(event.outcome).upper()}"
    v = f"v{event.version}" if event.version else None
    if event.outcome == CycleOutcome.PROMOTE and v:
        return f"{head} ({v} is the champion)"
    if event.outcome == CycleOutcome.KEEP:
        kept = f"champion v{event.champion} kept" if event.champion else "champion kept"
        return f"{head} ({kept}{f', challenger {v}' if v else ''})"
    if event.outcome == CycleOutcome.ROLLED_BACK:
        kept = f"champion v{event.champion} kept" if event.champion else "champion kept"
        return f"{head} ({kept}; the challenger left no commit, tag or model version)"
    if event.outcome == CycleOutcome.ESCALATE:
        return f"{head}: a human decides{f' (challenger {v})' if v else ''}"
    return head + (f" (challenger {v})" if v else "")


def scores_line(event: Event) -> str | None:
    """``champion MAE 2.31 vs challenger 2.12 (threshold ≤ 2.5)``, or None without scores."""
    if event.champion_score is None and event.challenger_score is None:
        return None
    label, direction = _metric(event.metric)
    parts = []
    if event.champion_score is not None:
        parts.append(f"champion {label} {_number(event.champion_score)}")
    if event.challenger_score is not None:
        parts.append(f"challenger {label if event.champion_score is None else ''}".rstrip()
                     + f" {_number(event.challenger_score)}")
    line = " vs ".join(parts)
    if event.threshold is not None:
        line += f" (threshold {direction}{_number(event.threshold)})"
    if event.champion_score is None and event.challenger_score is not None:
        line += "; no champion to compare with"
    return line


def interval_line(event: Event) -> str | None:
    """``improvement +8.2% (95% interval +5.1% to +11.0%; needs at least +1.0%)``."""
    if event.improvement is None:
        return None
    line = f"improvement {_pct(event.improvement)}"
    extra = []
    if event.ci_low is not None and event.ci_high is not None:
        conf = f"{event.confidence:.0%} " if event.confidence is not None else ""
        extra.append(f"{conf}interval {_pct(event.ci_low)} to {_pct(event.ci_high)}")
    if event.min_effect is not None:
        extra.append(f"a promotion needs at least {_pct(event.min_effect)}")
    return line + (f" ({'; '.join(extra)})" if extra else "")


def link_lines(event: Event, *, http_only: bool = False) -> list[str]:
    """Where to look: each UI page, or (unless ``http_only``) the ids and how to open the UIs."""
    lines: list[str] = []
    embedded = False
    if event.run_url:
        lines.append(f"MLflow run: {event.run_url}")
    elif event.run_id and not http_only:
        lines.append(f"MLflow run id: {event.run_id}")
        embedded = True
    if event.version_url:
        lines.append(f"model version v{event.version}: {event.version_url}")
    # a deployed cycle that escalated waits for an answer (PENDING); one run from the command line
    # kept its champion and leaves the challenger for `modelcycle promote`
    waiting = event.kind == EventKind.PENDING
    escalated = event.kind == EventKind.DECISION and event.outcome == CycleOutcome.ESCALATE
    if event.flow_run_url:
        named = f"Prefect flow run{f' {event.flow_run_name}' if event.flow_run_name else ''}"
        lines.append(f"approval form ({named}): {event.flow_run_url}" if waiting else
                     f"{named}: {event.flow_run_url}")
    elif event.flow_run_id and not http_only:
        named = f"{event.flow_run_name} (id {event.flow_run_id})" if event.flow_run_name else event.flow_run_id
        lines.append(f"Prefect flow run: {named}")
        embedded = True
    if waiting and event.flow_run_id and not http_only:  # the id: a window run again has the same name
        run = event.flow_run_id
        lines.append(f"decide: `modelcycle approve {run}` or `modelcycle reject {run}`")
    elif escalated and event.version and not http_only:
        lines.append(f"decide: `modelcycle promote --version {event.version}` promotes the challenger")
    if embedded:
        lines.append(f"({UI_HINT})")
    return lines


def format_body(event: Event) -> str:
    """Everything but the title: scores, interval, reasons, links."""
    parts = [p for p in (scores_line(event), interval_line(event)) if p]
    text = "\n".join(parts)
    if event.reasons:
        text += ("\n" if text else "") + _bullets(event.reasons).removeprefix("\n")
    if event.unpushed:
        text += ("\n" if text else "") + f"Warning: {event.unpushed}"
    links = link_lines(event)
    if links:
        text += ("\n" if text else "") + "\n".join(links)
    return text


def format_message(event: Event) -> str:
    """The whole notification as text: the title line, then :func:`format_body`."""
    body = format_body(event)
    return format_title(event) + ("\n" + body if body else "")


def format_console(event: Event) -> str:
    """The short form a terminal prints: the title, the scores, the reasons and only the links a
    browser can open (no ids, no hints)."""
    lines = [format_title(event), *(p for p in (scores_line(event),) if p)]
    text = "\n".join(lines) + _bullets(event.reasons)
    if event.unpushed:
        text += f"\n  warning: {event.unpushed}"
    links = link_lines(event, http_only=True)
    return text + "".join(f"\n  {line}" for line in links)
