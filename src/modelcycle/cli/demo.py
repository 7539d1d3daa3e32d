"""modelcycle demo: the whole lifecycle on an example's data (simulated New York cab rides by
default), offline."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import typer

from modelcycle.cli import common
from modelcycle.console import console, err_console
from modelcycle.errors import WorkspaceError

EXAMPLE = "taxifare"
#: Written by the demo into the folder it builds, before anything else: only a folder holding it
#: is one the demo may delete and rebuild.
MARKER = Path(".modelcycle") / "demo.json"


def _is_demo(root: Path) -> bool:
    """Whether ``root`` was built by ``modelcycle demo`` (it holds :data:`MARKER`)."""
    return (root / MARKER).is_file()


def _mark(root: Path, example: str) -> None:
    marker = root / MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"built_by": "modelcycle demo", "example": example}) + "\n", encoding="utf-8")


def _example_of(root: Path) -> str:
    """The example the demo in ``root`` was built from (its marker says; taxifare before it did)."""
    try:
        return str(json.loads((root / MARKER).read_text(encoding="utf-8")).get("example") or EXAMPLE)
    except (OSError, ValueError, AttributeError):
        return EXAMPLE


def demo(
    ctx: typer.Context,
    directory: Path = typer.Argument(Path("demo"), help="Where to build the demo workspace.", file_okay=False),
    example: str = typer.Option(EXAMPLE, "--example", help="Which example: taxifare (simulated cab rides in a "
                                "DuckDB warehouse, the default) or digits (handwritten digit images in class "
                                "folders, trained by a small CNN: needs the torch extra)."),
    rows_per_month: int | None = typer.Option(None, "--rows-per-month", min=1000,
                                                 help="Rides simulated per month (default: the simulator's)."),
    append: bool = typer.Option(False, "--append", help="Instead of building: append the next month of rides "
                                "to DIRECTORY's warehouse, as fresh data arrives (a deployed workspace's "
                                "`modelcycle worker` then starts its cycle by itself)."),
) -> None:
    """Build a workspace of simulated New York cab rides (2009-2015) in a DuckDB warehouse, train a
    first champion on history up to 2014-12, then backtest January-June 2015 month by month: a
    fare-rule change in March and a month of broken data in May (its escalation is approved, as a
    human who checked the challenger would). Prints each decision, checked against the
    simulator's ground truth, and where
    the timeline picture, the MLflow data and the Prefect data are. An existing demo workspace
    in DIRECTORY is rebuilt. `--example digits` does the same with handwritten digit images
    released in monthly batches."""
    from modelcycle.cli import examples

    started = time.perf_counter()
    root = directory.expanduser().resolve()
    if append:
        _append(root)
        return
    pkg = examples.package(example)
    first_window = str(pkg.FIRST_WINDOW)
    months = getattr(pkg, "DEMO_MONTHS", None)
    if not months:
        raise WorkspaceError(f"the example '{example}' has no demo", "build its workspace with "
                             f"modelcycle init DIR --example {example} and run its cycles yourself")
    first, last = str(months[0]), str(months[1])
    if rows_per_month is not None and example != EXAMPLE:
        raise WorkspaceError(f"--rows-per-month is an option of the {EXAMPLE} example, not of {example}",
                             "leave it out")
    if root.exists():
        if not _is_demo(root):
            raise WorkspaceError(f"{root} exists and is not a demo workspace (it has no {MARKER})",
                                 "pick another folder: the demo rebuilds from scratch only a folder it "
                                 "built itself (a demo built by an older modelcycle has no marker: delete it "
                                 "yourself if you no longer need it)")
        err_console.print(f"[muted]· removing the previous demo in {root}[/muted]")
        shutil.rmtree(root)
    # Prefect's local server takes a while to start: let it come up while the workspace is built
    _mark(root, example)  # first: a demo that fails half-way is still the demo's to rebuild
    prefect_home = root / ".modelcycle" / "prefect"
    prefect_home.mkdir(parents=True)
    server = common.begin_prefect(prefect_home, os.environ.get("PREFECT_API_URL"),
                                 verbose=common.options(ctx).verbose)
    options = {"rows_per_month": rows_per_month} if rows_per_month is not None else {}
    ws = examples.create(example, root, force=True, progress=lambda t: err_console.print(f"[muted]· {t}[/muted]"),
                         **options)
    common.await_prefect(server, ws)
    from modelcycle.cli.backtest import report
    from modelcycle.lifecycle import flows

    from modelcycle.config import month_range

    with common.cycle_progress(1 + len(month_range(first, last)), "starting Prefect's local server"):
        results = [flows.run(ws.root, first_window)]
        results += flows.backtest(ws.root, first, last, approve_escalations=True)
    png = report(ws, results, ws.path(f"reports/backtest-{first}-{last}.png"), first_has_champion=False, drawn=1)
    rel = Path(directory)
    console.print(f"\n[bold]done in {time.perf_counter() - started:.0f}s[/bold]")
    console.print(f"timeline picture   [path]{rel / png.relative_to(ws.root)}[/path]")
    console.print(f"MLflow runs+models [path]{rel}/.modelcycle/mlflow.db[/path], artifacts in "
                  f"{rel}/.modelcycle/mlartifacts\n"
                  f"                   browse: mlflow ui --backend-store-uri sqlite:///{ws.root}/.modelcycle/mlflow.db")
    console.print(f"Prefect flow runs  [path]{rel}/.modelcycle/prefect[/path]\n"
                  f"                   browse: PREFECT_HOME={ws.root}/.modelcycle/prefect prefect server start")
    console.print(f"versions           git -C {rel} log --oneline --decorate   (DVC remote: "
                  f"{rel}/.modelcycle/dvc-remote)")
    console.print(f"decisions          [path]{rel}/.modelcycle/notifications.log[/path]; "
                  f"try: cd {rel} && modelcycle status")
    console.print(f"serve the champion cd {rel} && modelcycle serve   (POST /predict; `modelcycle history` lists "
                  "the champion's moves)")
    console.print(f"run by itself      cd {rel} && modelcycle up && modelcycle deploy && modelcycle worker; then, "
                  f"in another terminal, `modelcycle demo {rel} --append` adds a month and its cycle starts")
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)


def _append(root: Path) -> None:
    """Append the month after the newest to the demo warehouse in ``root``."""
    from modelcycle.cli import examples
    from modelcycle.config import Workspace

    if not _is_demo(root):
        raise WorkspaceError(f"{root} is not a demo workspace (it has no {MARKER})",
                             "build one first: modelcycle demo DIRECTORY")
    ws = Workspace.load(root)
    month, rows = examples.append(_example_of(root), ws)
    console.print(f"appended {month}: {rows} rows to {ws.path(ws.config.source.url)}")


def register(app: typer.Typer) -> None:
    app.command("demo",
                short_help='The whole lifecycle on an example\'s data (simulated cab rides by default), offline '
                           '(about a minute).')(demo)
