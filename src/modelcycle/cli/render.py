"""Tables and lines the verbs print."""

from __future__ import annotations

from typing import Any

from modelcycle.notify import Event
from modelcycle.notify.message import link_lines

from rich.table import Table
from rich.text import Text

ICONS = {"promote": "▲ promote", "keep": "● keep", "rolled_back": "↺ rolled_back", "escalate": "◆ escalate",
         "failed": "✕ failed"}
STYLES = {"promote": "promote", "keep": "keep", "rolled_back": "rolled_back", "escalate": "escalate",
          "failed": "error"}


def truth_line(results: list[Any], truth: dict[str, Any], *, label: str) -> Text:
    """"7 of 7 decisions match <label>" (the reference's label, e.g. "the simulator's ground truth")."""
    from modelcycle.lifecycle.reference import check

    right, checked, wrong = check(results, truth)
    style = "promote" if not wrong else "error"
    text = Text(f"{right} of {checked} decisions match {label}", style=style)
    if wrong:
        text.append(f" (different in {', '.join(wrong)})", style="error")
    return text


def outcome_text(outcome: str) -> Text:
    return Text(ICONS.get(outcome, outcome), style=STYLES.get(outcome, ""))


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


#: the widest a host (and its worker) is shown in a table column (status, history)
HOST_WIDTH = 24
#: the least of a worker's name kept when a host and its worker are cut to a width (``…4711``)
WORKER_KEPT = 5


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _cut_host(name: str, width: int | None) -> str:
    """Within ``width``: a long name cut to its first label, then with an ellipsis."""
    if width is None or len(name) <= width:
        return name
    first = name.split(".", 1)[0]
    if first and len(first) <= width:
        return first
    return name[: max(width - 1, 1)] + "…"


def host_text(host: str | None, width: int | None = None, worker: str | None = None) -> str:
    """Where a cycle ran, as the tables show it: the machine, and the worker that started it in
    parentheses (``host-b (host-b-4711)``); a dash when the machine is unknown (a cycle recorded
    before modelcycle tagged its run with the host). Within ``width``: a long machine name is cut
    to its first label (``ip-10-0-3-7.eu-west-1.compute.internal``: ``ip-10-0-3-7``), then with
    an ellipsis; a worker's name keeps its end (``…-4711``: a worker named ``<host>-<pid>`` differs
    from another of its machine there); too narrow for both, the machine alone."""
    name, who = _one_line(host), _one_line(worker)
    if not name:
        return "—"
    if not who:
        return _cut_host(name, width)
    whole = f"{name} ({who})"
    if width is None or len(whole) <= width:
        return whole
    room = width - len(" ()") - min(len(who), WORKER_KEPT)  # for the machine, the worker keeping its end
    if room < 3:
        return _cut_host(name, width)
    shown = _cut_host(name, room)
    left = width - len(shown) - len(" ()")
    if len(who) > left:  # a worker named after its machine (the default, <host>-<pid>) shows its own part
        own = who[len(name):] if who.startswith(f"{name}-") else ""
        who = "…" + (own if own and len(own) < left else who[len(who) - left + 1:])
    return f"{shown} ({who})"


def decision_line(event: Event, host: str | None = None, worker: str | None = None) -> Text:
    """One decision of the log as ``status`` shows it; ``host``: the machine its cycle ran on,
    ``worker``: the `modelcycle worker` that started it (``on host-b (host-b-4711)``)."""
    line = Text()
    kind = str(event.kind)
    if kind in ("approval", "rollback", "outside"):  # a move of an alias, not a cycle's decision
        said = {"approval": "promoted by a human", "rollback": "rolled back", "outside": "moved outside modelcycle"}
        line.append(f"{event.time[:16].replace('T', ' ')}  ", style="bold")
        line.append(said[kind], style=STYLES.get("escalate" if kind == "outside" else "promote", ""))
        if event.reasons:
            line.append("\n   " + "\n   ".join(event.reasons), style="muted")
        return line
    line.append(f"{event.window}  ", style="bold")
    line.append_text(outcome_text(str(event.outcome)))
    if kind == "pending":  # a deployed cycle escalated: its final decision follows the human's answer
        line.append("  waiting for a human", style=STYLES.get("escalate", ""))
    metric = (event.metric or "").upper()
    if event.champion_score is not None or event.challenger_score is not None:
        line.append(f"  champion {metric} {_num(event.champion_score)}"
                    f"  challenger {_num(event.challenger_score)}", style="muted")
    if host:
        line.append(f"  on {host_text(host, worker=worker)}", style="muted")
    if event.reasons:
        line.append("\n   " + "\n   ".join(event.reasons), style="muted")
    links = link_lines(event, http_only=True)  # pages a browser opens; ids and hints stay in the log
    if links:
        line.append("\n   " + "\n   ".join(links), style="muted")
    return line


def results_table(results: list[Any], *, truth: dict[str, Any] | None = None) -> Table:
    """One row per cycle: rows, both scores on the same held-out rows, the chosen candidate (when
    params.yaml lists candidates), the floor, the decision."""
    metric = next((r.metric for r in results if r.metric), "metric").upper()
    has_floor = any(r.noise_floor for r in results)
    has_candidates = any(getattr(r, "candidate", None) for r in results)  # params.yaml candidates: the chosen one
    table = Table(title=f"{metric} on each window's held-out rows", header_style="bold", title_style="bold",
                  pad_edge=False, collapse_padding=True)
    table.add_column("window", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("champion", justify="right", no_wrap=True)
    table.add_column("challenger", justify="right", no_wrap=True)
    if has_candidates:
        table.add_column("candidate", no_wrap=True)
    if has_floor:
        table.add_column("floor", justify="right", no_wrap=True)
        table.add_column("÷floor", justify="right", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    if truth is not None:
        table.add_column("what happened", no_wrap=True)
        table.add_column("right?", no_wrap=True)
    table.add_column("serving", justify="right", no_wrap=True)
    for r in results:
        rows, valid = r.rows.get("window_in"), r.rows.get("window_valid")
        shown_rows = "—" if rows is None else (f"{rows}" if rows == valid else f"{valid}/{rows}")
        champ = ("" if not r.champion_version else f"v{r.champion_version} ") + _num(r.champion_score)
        chall = ("" if not r.challenger_version else f"v{r.challenger_version} ") + _num(r.challenger_score)
        cells: list[Any] = [r.window, shown_rows, champ, chall]
        if has_candidates:
            cells.append(getattr(r, "candidate", None) or "—")
        if has_floor:
            ratio = (r.challenger_score / r.noise_floor) if (r.noise_floor and r.challenger_score) else None
            cells += [_num(r.noise_floor), _num(ratio, 2)]
        cells.append(outcome_text(r.outcome))
        if truth is not None:
            t = truth.get(r.window)
            cells.append(t.what if t else "")
            cells.append("" if t is None else Text("✓", style="promote") if t.matches(r.outcome)
                         else Text(f"✗ ({t.expected})", style="error"))
        serving = f"v{r.serving_version}" if r.serving_version else "—"
        cells.append(serving + (" (approved)" if getattr(r, "approved", False) else ""))
        table.add_row(*cells)
    return table
