"""modelcycle demo: the whole lifecycle on simulated New York cab rides, offline."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Optional

import typer

from modelcycle.cli import common
from modelcycle.cli.main import State
from modelcycle.config import CONFIG_FILE
from modelcycle.console import console, err_console
from modelcycle.errors import ConfigError, WorkspaceError

FIRST_CHAMPION = "2014-12"
BACKTEST = ("2015-01", "2015-06")


def _is_demo(root: Path) -> bool:
    """Whether ``root`` holds a taxifare workspace (which the demo may delete and rebuild): its
    modelcycle.yaml's ``reference.factory`` is the taxi simulator's, or it has the ``simulation``
    section of a demo built by an older modelcycle."""
    from modelcycle.config.load import read_yaml
    from modelcycle.examples.taxifare.scenario import FACTORY

    cfg = root / CONFIG_FILE
    if not cfg.is_file():
        return False
    try:
        data = read_yaml(cfg)
    except ConfigError:
        return False
    reference = data.get("reference")
    factory = reference.get("factory") if isinstance(reference, dict) else None
    return factory == FACTORY or isinstance(data.get("simulation"), dict)


def demo(
    directory: Path = typer.Argument(Path("demo"), help="Where to build the demo workspace.", file_okay=False),
    rows_per_month: Optional[int] = typer.Option(None, "--rows-per-month", min=1000,
                                                 help="Rides simulated per month (default: the simulator's)."),
) -> None:
    """Build a workspace of simulated New York cab rides (2009-2015) in a DuckDB warehouse, train a
    first champion on history up to 2014-12, then backtest January-June 2015 month by month: a
    fare-rule change in March and a month of broken data in May (its escalation is approved, as a
    human who checked the challenger would). Prints each decision, checked against the
    simulator's ground truth, and where
    the timeline picture, the MLflow data and the Prefect data are. An existing demo workspace
    in DIRECTORY is rebuilt."""
    from modelcycle.examples.taxifare.workspace import create

    started = time.perf_counter()
    root = directory.expanduser().resolve()
    if root.exists():
        if not _is_demo(root):
            raise WorkspaceError(f"{root} exists and is not a demo workspace",
                                 "pick another folder: the demo rebuilds its folder from scratch")
        err_console.print(f"[muted]· removing the previous demo in {root}[/muted]")
        shutil.rmtree(root)
    # Prefect's local server takes a while to start: let it come up while the workspace is built
    prefect_home = root / ".modelcycle" / "prefect"
    prefect_home.mkdir(parents=True)
    server = common.begin_prefect(prefect_home, os.environ.get("PREFECT_API_URL"))
    ws = create(root, rows_per_month=rows_per_month, force=True,
                progress=lambda t: err_console.print(f"[muted]· {t}[/muted]"))
    State.workspace = root
    common.await_prefect(server, ws)
    from modelcycle.cli.backtest import report
    from modelcycle.lifecycle import flows

    first, last = BACKTEST
    with common.cycle_progress(1 + 6, "starting Prefect's local server"):
        results = [flows.run(ws.root, FIRST_CHAMPION)]
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
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo", short_help='The whole lifecycle on simulated New York cab rides, offline (about a minute).')(demo)
