"""modelcycle serve: answer predictions from the champion over HTTP, following the alias."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape

from modelcycle.cli import common
from modelcycle.console import err_console


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default: serve.host in "
                                    "modelcycle.yaml, else 127.0.0.1). Any other than the loopback needs "
                                    "MODELCYCLE_SERVE_TOKEN set."),
    port: int | None = typer.Option(None, "--port", min=0, max=65535,
                                    help="Port (default: serve.port, else 8080; 0 picks a free one and prints it)."),
) -> None:
    """Serve the champion: POST /predict (JSON records, dataframe_split, dataframe_records or CSV),
    GET /health, GET /model. When the champion alias moves (a cycle, promote, the MLflow UI) the
    server loads the new version in the background and swaps it in; requests never wait for it,
    and a version that does not load is never swapped in. Ctrl-C stops it after the requests in
    flight are answered."""
    from modelcycle.config.models import ServeConfig
    from modelcycle.registry.workspace import open_registry
    from modelcycle.serving import runner

    ws = common.load_workspace(ctx)
    cfg = ws.config.serve or ServeConfig()
    settings = runner.Settings(
        host=host or cfg.host, port=cfg.port if port is None else port, poll_seconds=cfg.poll_seconds,
        max_body_mb=cfg.max_body_mb, token=os.environ.get(runner.TOKEN_VAR) or None,
        key_columns=list(cfg.key_columns), log_level="info" if common.options(ctx).verbose else "warning",
        webhook_url=cfg.webhook_url, image_paths=cfg.image_paths)
    runner.check_binding(settings.host, settings.token)  # before opening anything
    common.check_backends(ws, "mlflow")
    reg = open_registry(ws)
    on_move = _move_recorder(ws, reg, ws.config.name)
    on_move(None, None)  # a move made outside modelcycle while nothing served is recorded now
    hooks = runner.Hooks(say=_say, on_move=on_move, shadow=_shadow_factory(ws, cfg) if cfg.shadow else None)
    runner.serve(reg, ws.config.name, ws.state_dir, settings, hooks)


def _say(text: str) -> None:
    err_console.print(escape(text), highlight=False, soft_wrap=True)


#: Seconds the alias history waits before taking a move the server saw for one made outside
#: modelcycle: a modelcycle command records its own move a moment after making it.
HISTORY_GRACE = 5.0


def _move_recorder(ws: Any, reg: Any, name: str) -> Callable[[str | None, str | None], None]:
    """A move the server sees goes to the alias history as made outside modelcycle when nothing
    recorded it (after the history's grace: a modelcycle command records its own move a moment
    after making it). It runs in a thread of its own: the swap never waits for it."""
    import logging
    import threading

    from modelcycle.lifecycle.actions import announce_outside
    from modelcycle.lifecycle.services import notifier_of
    from modelcycle.registry import history

    def record() -> None:
        try:
            found = history.detect_outside(reg, name, grace=HISTORY_GRACE)
            if found:
                announce_outside(notifier_of(ws, console=False), name, found)
                for move in found:
                    _say(f"the {move.alias} alias was moved outside modelcycle: "
                         f"{history.named(move.before)} -> {history.named(move.after)} (recorded in its history)")
        except Exception as exc:  # noqa: BLE001 - the history never stops serving
            logging.getLogger(__name__).warning("could not record an alias move of %s: %s", name, exc)

    def on_move(_before: str | None, _after: str | None) -> None:
        threading.Thread(target=record, name="modelcycle-history", daemon=True).start()

    return on_move


def _shadow_factory(ws: Any, cfg: Any) -> Callable[[Callable[[], Any]], Any]:
    """The prediction log (serving.shadow.ShadowLog) fed by the challenger's follower."""
    from modelcycle.serving import shadow

    def make(challenger: Callable[[], Any]) -> Any:
        data = ws.config.data
        log = shadow.ShadowLog(ws.state_dir / "predictions", challenger=challenger, key_columns=list(cfg.key_columns),
                               input_columns=[c for c in data.columns if c != data.target])
        log.start()
        return log

    return make


def register(app: typer.Typer) -> None:
    app.command("serve", short_help="Serve the champion over HTTP (/predict, /health, /model); follows the "
                "alias when it moves.")(serve)
