"""Run ``modelcycle serve``: listen, load the champion, follow the alias, write the server marker,
stop gracefully.

:func:`serve` binds the socket first (``--port 0`` then knows its port), loads the champion
before the first request is answered, starts the follower, and runs uvicorn until SIGINT or
SIGTERM: it stops accepting, lets the requests in flight finish, and returns (the command
exits 0). While it runs, ``<workspace>/.modelcycle/serving.json`` says which process serves
what where (the cycle reads it to know the workspace is served); it is removed on the way out.
When the registry is an MLflow tracking server, a registry webhook (created at start, deleted
on the way out, SIGTERM included) wakes the follower as soon as the alias moves
(:mod:`modelcycle.serving.webhook`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.errors import ConfigError, ServingError
from modelcycle.registry.base import CHALLENGER, CHAMPION, ModelVersion, Registry
from modelcycle.serving.app import Server, create_app
from modelcycle.serving.follower import Failure, Follower, now_text
from modelcycle.serving.loader import Served
from modelcycle.serving.marker import MARKER, remove_marker, write_marker
from modelcycle.serving.webhook import PATH as HOOK_PATH
from modelcycle.serving.webhook import Receiver, Webhook, is_tracking_server, new_secret, open_webhook

log = logging.getLogger(__name__)

TOKEN_VAR = "MODELCYCLE_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Any address but the loopback needs a token: refuse to start without one."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"serving on {host} would answer anyone who reaches this machine, and no token is set",
                          f"set {TOKEN_VAR} in the environment (clients then send `Authorization: Bearer "
                          f"<token>`), or serve on 127.0.0.1")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family, backlog=2048)
    except OSError as exc:
        raise ServingError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                           "choose another port (--port N, or --port 0 for any free one) or stop what uses it"
                           ) from None
    # accepted connections inherit it: a response is sent at once, not after the client's
    # delayed ACK (40 ms a request); asyncio sets it only on sockets it opens itself
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    poll_seconds: float = 2.0
    max_body_mb: float = 16
    token: str | None = None
    key_columns: list[str] = field(default_factory=list)
    log_level: str = "warning"
    #: where the MLflow server reaches this server's /hooks/mlflow (None: the bound URL's)
    webhook_url: str | None = None
    #: read file paths clients send in image columns (serve.image_paths); refused (422) when False
    image_paths: bool = False


@dataclass
class Hooks:
    """What the command line plugs in: progress lines, the alias-move recorder, the shadow log."""

    say: Callable[[str], None] = print
    on_move: Callable[[str | None, str | None], None] | None = None
    #: called with ``challenger`` (a callable giving the challenger's Served or None); returns a
    #: started object with ``submit(...)`` and ``close()``, or None
    shadow: Callable[[Callable[[], Served | None]], Any] | None = None


def serve(reg: Registry, name: str, state_dir: Path, settings: Settings, hooks: Hooks | None = None,
          *, ready: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> None:
    """Serve ``name``'s champion until SIGINT/SIGTERM (or ``stop`` is set); ``ready(url)`` is
    called once it answers."""
    import uvicorn

    hooks = hooks or Hooks()
    check_binding(settings.host, settings.token)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown_host}:{port}"
    marker = state_dir / MARKER
    batcher_box: list[Server] = []

    def sample() -> Any:
        return batcher_box[0].batcher.last_frame if batcher_box else None

    def loading(version: ModelVersion) -> None:
        hooks.say(f"loading {name} v{version.version} ...")

    def swapped(old: Served | None, new: Served) -> None:
        if old is not None:
            hooks.say(f"swapped {name} v{old.version.version} -> v{new.version.version}")
        with contextlib.suppress(OSError):
            if marker.exists():
                write_marker(marker, {**info, "version": new.version.version})

    def failed(failure: Failure) -> None:
        hooks.say(f"version {failure.version} of {name} was not swapped in: {failure.message}")

    follower = Follower(reg, name, alias=CHAMPION, poll_seconds=settings.poll_seconds, on_move=hooks.on_move,
                        on_swap=swapped, on_failure=failed, on_loading=loading, sample=sample)
    info: dict[str, Any] = {"pid": os.getpid(), "host": settings.host, "port": port, "started": now_text(),
                            "url": url, "model": name, "version": None}
    shadow = challenger = None
    hook: Webhook | None = None
    registry_uri = getattr(reg, "registry_uri", None)
    receiver = Receiver(new_secret(), name, {CHAMPION: follower.wake}) if is_tracking_server(registry_uri) else None
    try:
        follower.poll()  # the champion is loaded before the first request is answered
        if follower.poll_error is not None:
            hooks.say(f"cannot read the champion of {name} yet ({follower.poll_error}): /predict answers 503 "
                      f"until the registry answers")
        elif follower.served is None and follower.failure is None:
            hooks.say(f"no champion for {name} yet: /predict answers 503 until one is promoted")
        if hooks.shadow is not None:
            challenger = Follower(reg, name, alias=CHALLENGER, poll_seconds=settings.poll_seconds)
            challenger.poll()
            challenger.start()
            follower_of_challenger = challenger
            shadow = hooks.shadow(lambda: follower_of_challenger.served)
            if receiver is not None:
                receiver.wake = {**receiver.wake, CHALLENGER: challenger.wake}
        server = Server(follower, max_body_mb=settings.max_body_mb, shadow=shadow, key_columns=settings.key_columns,
                        reg=reg, webhook=receiver, image_paths=settings.image_paths)
        batcher_box.append(server)
        app = create_app(server, token=settings.token)
        config = uvicorn.Config(app, log_level=settings.log_level, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=30, server_header=False)
        uv = _Uvicorn(config, stop)
        info["version"] = follower.served.version.version if follower.served else None
        write_marker(marker, info)
        follower.start()
        serving = f"{name} v{info['version']}" if info["version"] else f"{name} (no model yet)"
        hooks.say(f"serving {serving} at {url}" + (" (token required)" if settings.token else ""))
        if receiver is not None:
            hook = _open_hook(reg, name, settings.webhook_url or url + HOOK_PATH, receiver, port, follower, hooks.say)
        if ready is not None:
            uv.on_started = lambda: ready(url)
        uv.run(sockets=[sock])
        hooks.say("stopped: the requests in flight were answered")
    finally:
        if hook is not None:
            hook.close()
        follower.stop()
        if challenger is not None:
            challenger.stop()
        if shadow is not None:
            with contextlib.suppress(Exception):
                shadow.close()
        if batcher_box:
            batcher_box[0].batcher.close()
        remove_marker(marker)
        sock.close()


def _open_hook(reg: Registry, name: str, url: str, receiver: Receiver, port: int, follower: Follower,
               say: Callable[[str], None]) -> Webhook | None:
    if follower.poll_error is not None:
        say("no MLflow webhook: the registry did not answer at start; following the champion by polling only")
        return None
    tracking_uri = str(getattr(reg, "tracking_uri", None) or getattr(reg, "registry_uri", ""))
    return open_webhook(tracking_uri, str(getattr(reg, "registry_uri", "")), model=name, url=url,
                        secret=receiver.secret, port=port, say=say)


class _Uvicorn:
    """uvicorn's server, stopped by SIGINT/SIGTERM (or an event) gracefully, without handing the
    signal on afterwards (the command then exits 0)."""

    def __init__(self, config: Any, stop: threading.Event | None) -> None:
        import uvicorn

        outer = self

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handlers = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
                try:
                    yield
                finally:
                    for s, handler in handlers.items():
                        signal.signal(s, handler)

            async def on_tick(self, counter: int) -> bool:
                if outer.stop is not None and outer.stop.is_set():
                    self.should_exit = True
                if self.started and outer.on_started is not None:
                    started, outer.on_started = outer.on_started, None
                    started()
                return await super().on_tick(counter)

        self.stop = stop
        self.on_started: Callable[[], None] | None = None
        self.server = _Server(config)

    def run(self, sockets: list[socket.socket]) -> None:
        self.server.run(sockets=sockets)
