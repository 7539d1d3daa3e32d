"""modelcycle history: every move of the champion and challenger aliases, and who made it."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.cli import common
from modelcycle.console import console, err_console

if TYPE_CHECKING:
    from modelcycle.registry.hosts import Ran


def history(
    ctx: typer.Context,
    alias: str = typer.Option("all", "--alias", help="champion (or Production), challenger (or Staging), or all."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show the last N moves."),
    as_json: bool = typer.Option(False, "--json", help="Print the moves as a JSON list (oldest first) for "
                                 "scripts: alias, before, after, time, by, who, reason, window, flow_run_id, "
                                 "run_id, host (the machine a cycle's move ran on; null when unknown), worker (the "
                                 "`modelcycle worker` that started that cycle; null when none did or unknown)."),
) -> None:
    """Show the history of the champion and challenger aliases, newest last: when each moved, from
    which version to which, and by what (a cycle, with the machine it ran on and the worker that
    started it, its window, Prefect flow run and MLflow run; a human's `promote` or `rollback`,
    with who and why; the undo of a cycle that was rolled back; or a move made outside modelcycle,
    in the MLflow UI or API, found and recorded now). The history is kept in the registry, where
    any MLflow user sees it: a tag of the registered model per move (modelcycle.move.TIME.ALIAS.ID),
    and champion_since, champion_by and champion_reason on each version."""
    from modelcycle.registry import history as moves_of
    from modelcycle.registry import hosts as hosts_of
    from modelcycle.registry.base import canonical_alias
    from modelcycle.registry.workspace import open_registry

    ws = common.load_workspace(ctx)
    wanted = None if alias.strip().lower() == "all" else canonical_alias(alias)
    common.check_backends(ws, "mlflow")
    reg = open_registry(ws)
    reg.check()
    name = ws.config.name
    note = _detect(ws, reg, name)
    moves = [m for m in moves_of.moves(reg, name) if wanted is None or m.alias == wanted]
    total, shown = len(moves), moves[-limit:]
    hosts = hosts_of.shown(reg, name, [m.run_id for m in shown])  # the moves, even without their hosts
    if as_json:
        where = [hosts.get(m.run_id or "", hosts_of.UNKNOWN) for m in shown]
        listed = [{**m.to_dict(), "host": ran.host, "worker": ran.worker}
                  for m, ran in zip(shown, where, strict=True)]
        sys.stdout.write(json.dumps(listed, indent=2) + "\n")
        if note:
            err_console.print(f"[muted]{escape(note)}[/muted]", soft_wrap=True)
        return
    what = f"the {wanted} alias" if wanted else "the champion and challenger aliases"
    if not shown:
        console.print(f"no moves of {what} of '{name}' are recorded yet")
        console.print("[hint]a cycle (`modelcycle run`), `modelcycle promote` and `modelcycle rollback` record "
                      "each move; a move made in the MLflow UI is recorded when modelcycle next looks[/hint]",
                      soft_wrap=True)
    else:
        console.print(_table(shown, f"{name}: {what}", hosts))
        if total > len(shown):
            console.print(f"[muted]the last {len(shown)} of {total} moves (--limit N shows more)[/muted]")
    if note:
        err_console.print(f"[muted]{escape(note)}[/muted]", soft_wrap=True)


def _detect(ws: Any, reg: Any, name: str) -> str | None:
    """Record moves made outside modelcycle first, unless another modelcycle command is changing
    the workspace right now (its own move may be between the alias and its record)."""
    from modelcycle.errors import WorkspaceError
    from modelcycle.lifecycle import lock
    from modelcycle.registry import history as moves_of

    try:
        with lock.hold(ws.root, common.command_line(), wait=False):
            found = moves_of.detect_outside(reg, name)
        if found:
            from modelcycle.lifecycle.actions import announce_outside
            from modelcycle.lifecycle.services import notifier_of

            announce_outside(notifier_of(ws, console=False), name, found)
    except WorkspaceError:
        return ("another modelcycle command is changing the workspace: moves made outside modelcycle "
                "are recorded once it ends")
    if found:
        return f"{len(found)} move(s) made outside modelcycle found and recorded now"
    return None


def _time(text: str) -> str:
    return text.replace("T", " ").replace("+00:00", "")


def _why(move: Any) -> str:
    parts = [p for p in (move.who, move.reason) if p]
    if move.window:
        parts.append(f"window {move.window}")
    if move.flow_run_id:
        parts.append(f"flow run {move.flow_run_id[:8]}")
    if move.run_id:
        parts.append(f"MLflow run {move.run_id[:8]}")
    return "; ".join(parts)


_BY_STYLE = {"cycle": "keep", "human": "promote", "rollback": "escalate", "outside": "error", "undo": "muted"}


def _table(moves: list[Any], title: str, hosts: dict[str, Ran]) -> Table:
    """One row per move; ``hosts``: where each cycle's run ran (the machine, and the worker that
    started it), by run id (a dash for a cycle's run without a machine; nothing for a move made by
    no cycle: a human's, one from outside)."""
    from modelcycle.cli.render import HOST_WIDTH, host_text
    from modelcycle.registry.history import named
    from modelcycle.registry.hosts import UNKNOWN

    table = Table(title=title, header_style="bold", title_style="bold", pad_edge=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("alias", no_wrap=True)
    table.add_column("from", justify="right", no_wrap=True)
    table.add_column("to", justify="right", no_wrap=True)
    table.add_column("by", no_wrap=True)
    table.add_column("host", no_wrap=True)
    table.add_column("who / why")
    for m in moves:
        ran = hosts.get(m.run_id or "", UNKNOWN)
        table.add_row(_time(m.time), m.alias, named(m.before, "—"), named(m.after, "—"),
                      f"[{_BY_STYLE.get(m.by, '')}]{escape(m.by)}[/]" if m.by in _BY_STYLE else escape(m.by),
                      escape(host_text(ran.host, HOST_WIDTH, ran.worker)) if m.run_id else "", escape(_why(m)))
    return table


def register(app: typer.Typer) -> None:
    app.command("history",
                short_help="Show every move of the champion and challenger aliases: when, from/to, by what.")(history)
