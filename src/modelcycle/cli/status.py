"""modelcycle status: the champion, its lineage, and recent decisions."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from modelcycle.cli import common
from modelcycle.config import Workspace
from modelcycle.config.secrets import redact
from modelcycle.console import console
from modelcycle.errors import ModelcycleError
from modelcycle.notify import Event


def status(
    ctx: typer.Context,
    last: int = typer.Option(8, "--last", min=1, help="How many recent decisions to show."),
) -> None:
    """Show the champion and challenger versions with their lineage (window, git commit, DVC data
    hash, the machine and worker whose cycle made them, MLflow run), the source and backends in
    use (passwords shown as ***), and the latest decisions, each with the machine (and worker)
    its cycle ran on."""
    from modelcycle.lifecycle import backends, journal, lock
    from modelcycle.registry.base import CHALLENGER, CHAMPION
    from modelcycle.registry.hosts import UNKNOWN, shown
    from modelcycle.registry.workspace import open_registry

    ws = common.load_workspace(ctx)
    reg = open_registry(ws)
    name = ws.config.name
    console.print(f"[bold]{name}[/bold]  workspace [path]{ws.root}[/path]")
    table = Table(header_style="bold", show_edge=False, pad_edge=False)
    for col in ("alias", "version", "window", "commit", "data md5", "decision", "host", "MLflow run"):
        table.add_column(col, no_wrap=True)
    try:
        backends.require(ws, ("mlflow",))  # fails in seconds, not after MLflow's minutes of retries
        reg.check()  # one query: the store opens and reads
        aliases = {alias: reg.get_alias(name, alias) for alias in (CHAMPION, CHALLENGER)}
    except ModelcycleError:
        _backends(ws)  # where it looked, before the error says what went wrong
        raise
    from modelcycle.cli.render import HOST_WIDTH, host_text

    events = _recent(ws, last)
    hosts = shown(reg, name, [mv.run_id for mv in aliases.values() if mv] + [e.run_id for e in events])
    for alias, mv in aliases.items():
        if mv is None:
            table.add_row(alias, "—", "", "", "", "", "", "")
            continue
        t, ran = mv.tags, hosts.get(mv.run_id or "", UNKNOWN)
        table.add_row(alias, f"v{mv.version}", t.get("window", ""), t.get("git_commit", "")[:8],
                      t.get("dvc_data_hash", "")[:8], t.get("decision", ""),
                      escape(host_text(ran.host, HOST_WIDTH, ran.worker)),
                      (mv.run_id or "")[:8])
    console.print(table)
    if aliases[CHAMPION] is None:
        console.print("[hint]no champion yet: run `modelcycle run --window YYYY-MM` once, or "
                      "`modelcycle promote --version N`[/hint]")
    _drift(ws)
    _served(ws, aliases[CHAMPION])
    _backends(ws)
    busy = lock.holder(ws.root)
    if busy is not None:
        console.print(f"[escalate]busy:[/escalate] {busy.describe()}", soft_wrap=True)
        _waiting(ws)
    elif journal.Journal.path_of(ws).exists():
        console.print("[escalate]a cycle stopped midway; the next run repairs it, or run "
                      "`modelcycle doctor` now[/escalate]")
    if events:
        from modelcycle.cli.render import decision_line

        console.print("\n[bold]recent decisions[/bold]")
        for event in events:
            ran = hosts.get(event.run_id or "", UNKNOWN)
            console.print(decision_line(event, ran.host, ran.worker))


def _recent(ws: Workspace, last: int) -> list[Event]:
    """The last ``last`` lines of the decision log (notify.file) that read as events."""
    log = ws.path(ws.config.notify.file) if ws.config.notify.file else None
    if not log or not log.exists():
        return []
    events = []
    for line in log.read_text(encoding="utf-8").splitlines()[-last:]:
        try:
            events.append(Event.from_dict(json.loads(line)))
        except (ValueError, TypeError, AttributeError):
            continue
    return events


def drift_lines(summary: dict[str, Any]) -> list[str]:
    """The latest cycle's drift in a few lines: each drifted column with its PSI, or that none
    drifted and the largest PSI, or why it was not measured."""
    trained = f" (trained to {summary['champion_window']})" if summary.get("champion_window") else ""
    head = (f"drift  window {summary.get('window', '?')} against "
            f"v{summary.get('champion_version', '?')}'s training rows{trained}")
    if summary.get("error"):
        return [f"{head}: not measured: {summary['error']}"]
    drifted: dict[str, float] = summary.get("drifted") or {}
    threshold = summary.get("threshold")
    if not drifted:
        top = summary.get("max_psi")
        return [f"{head}: no drift" + (f" (max PSI {top:.2f})" if isinstance(top, (int, float)) else "")]
    width = max(len(c) for c in drifted)
    target = summary.get("target")
    return [f"{head}: {len(drifted)} column(s) drifted (PSI > {threshold})"] + [
        f"  {c:<{width}}  PSI {psi:.2f}{'  (the target)' if c == target else ''}" for c, psi in drifted.items()]


def _drift(ws: Workspace) -> None:
    """The drift the latest cycle measured (.modelcycle/drift.json); nothing before one has."""
    from modelcycle.lifecycle.driftcheck import read_latest

    summary = read_latest(ws)
    if summary is not None:
        console.print(escape("\n".join(drift_lines(summary))), soft_wrap=True)


def served_lines(report: Any, version: str) -> list[str]:
    """The drift of the requests the champion answered in the last day (a DriftReport): each
    drifted column with its PSI, or that none drifted and the largest PSI."""
    head = f"served requests of the last day to v{version}, against its training rows"
    drifted = report.drifted
    if not drifted:
        top = max((c.psi for c in report.columns.values() if c.psi == c.psi), default=None)
        return [f"{head}: no drift" + (f" (max PSI {top:.2f})" if top is not None else "")]
    width = max(len(c) for c in drifted)
    return [f"{head}: {len(drifted)} column(s) drifted (PSI > {report.threshold})"] + [
        f"  {c:<{width}}  PSI {report.columns[c].psi:.2f}" for c in drifted]


def _served(ws: Workspace, champion: Any) -> None:
    """With ``serve.shadow``: the drift of the requests the champion answered in the last day
    (nothing without logged requests; a muted line when they could not be compared)."""
    if champion is None:
        return
    from datetime import UTC, datetime, timedelta

    from modelcycle.lifecycle import served

    try:
        since = datetime.now(UTC) - timedelta(days=1)
        files = served.log_files(ws, since)
        if not files:
            return
        from modelcycle.sources import build_source

        report = served.served_drift(ws, build_source(ws.config, ws.root), since, champion=champion, files=files)
    except Exception as exc:  # noqa: BLE001 - status shows what it can
        why = exc.message if isinstance(exc, ModelcycleError) else f"{type(exc).__name__}: {exc}"
        console.print(escape(f"served requests: drift not measured: {why}"), style="muted", soft_wrap=True)
        return
    if report is not None:
        console.print(escape("\n".join(served_lines(report, champion.version))), soft_wrap=True)


def _waiting(ws: Workspace) -> None:
    """A deployed cycle that holds the workspace while it waits for a human's answer."""
    path = ws.state_dir / "pending.json"  # written by lifecycle.approval while the run waits
    try:
        waiting = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    window = escape(str(waiting.get("window", "?")))
    console.print(f"[escalate]waiting for a human:[/escalate] the cycle for {window} escalated "
                  f"(flow run {escape(str(waiting.get('flow_run_id', '?')))}); answer in the Prefect UI, or "
                  f"`modelcycle approve {window}` / `modelcycle reject {window}`", soft_wrap=True)


def _backends(ws: Workspace) -> None:
    """The source and each backend, with any password in their URLs shown as ***."""
    origins = ws.backend_origins()
    src = ws.config.source
    what = f"{src.kind} {redact(src.url)}" + (f", table {src.table}" if src.table else "")
    console.print(escape(f"Source   {what}\n"
                         f"MLflow   {redact(ws.tracking_uri)}  (from {origins['mlflow']})\n"
                         f"Prefect  {redact(ws.prefect_api_url) or 'local, home ' + str(ws.prefect_home)}  "
                         f"(from {origins['prefect']})\n"
                         f"DVC      {_dvc_remote(ws, origins['dvc'])}"),
                  style="muted", soft_wrap=True)
    _unpushed(ws)
    from modelcycle.lifecycle import servers

    for name, text in servers.describe(ws):
        console.print(escape(f"{'up':<9}{servers.TITLES[name]:<8} {text}"), style="muted", soft_wrap=True)


def _dvc_remote(ws: Workspace, origin: str) -> str:
    """The remote DVC pushes to (its own config, which every cycle and `modelcycle push` bring in
    line with the configured one), and the configured one when they differ."""
    from modelcycle.versioning.remote import endpoint_of, remote_in_use

    configured = ws.dvc_remote
    used = remote_in_use(ws.root)
    if used is None:
        return (f"no remote (the next cycle pushes to {redact(configured)}, from {origin})" if configured
                else f"no remote  (from {origin})")
    same = (configured is not None and used.url == configured
            and used.endpoint == endpoint_of(configured))
    if same:
        return f"{used.describe()}  (from {origin})"
    return (f"{used.describe()}  (DVC's config; the next cycle or `modelcycle push` changes it to "
            f"{redact(configured) or 'no remote'}, from {origin})")


def _unpushed(ws: Workspace) -> None:
    """With versioning.push: best-effort, the cycles whose data and model are not on the remote."""
    from modelcycle.lifecycle import unpushed

    entries = unpushed.pending(ws)
    if not entries:
        return
    console.print(f"[escalate]not pushed:[/escalate] {escape(unpushed.sentence(entries) or '')}", soft_wrap=True)
    for line in unpushed.describe(entries):
        console.print(escape(f"  {line}"), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("status",
                short_help='Show the champion and challenger with their lineage, and recent decisions.')(status)
