"""The HTTP app of ``modelcycle serve`` (FastAPI): ``POST /predict``, ``GET /health``,
``GET /model``, and ``POST /hooks/mlflow`` when an MLflow webhook is set up
(:mod:`modelcycle.serving.webhook`).

The app serves whatever :attr:`Follower.served <modelcycle.serving.follower.Follower.served>`
points at, read once per request. A request body is read (within the size limit), parsed and
checked column by column (:mod:`modelcycle.serving.inputs`), then predicted together with the
requests that wait beside it (:mod:`modelcycle.serving.batcher`). Every error is JSON,
``{"error": {"code", "message", "field"}}``: a client's mistake is a 4xx naming what was wrong,
and anything else a 500 with the request id the log holds the traceback under. A file path in an
image column is refused (422) unless ``serve.image_paths`` is true: the server reads no file a
client names.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelcycle.errors import DataError
from modelcycle.registry.base import CHAMPION, Registry
from modelcycle.serving import inputs, webhook
from modelcycle.serving.batcher import LABEL, PROBA, Batcher
from modelcycle.serving.follower import Follower
from modelcycle.serving.info import describe
from modelcycle.serving.inputs import InputError
from modelcycle.serving.webhook import Receiver

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = "application/json"
_IDS = itertools.count(1)
_PREFIX = os.urandom(4).hex()


def request_id() -> str:
    """A request id unique to this server's run (a random prefix and a counter: no system call
    per request)."""
    return f"{_PREFIX}-{next(_IDS):x}"

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _json(status: int, body: dict[str, Any], request_id: str | None = None) -> Response:
    headers = {"X-Request-Id": request_id} if request_id else None
    return Response(orjson.dumps(body, option=_OPTS, default=str), status_code=status, media_type=_JSON,
                    headers=headers)


def _error_body(code: str, message: str, request_id: str | None = None, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, **{k: v for k, v in more.items() if v is not None}}
    if request_id:
        body["request_id"] = request_id
    return {"error": body}


def error(status: int, code: str, message: str, request_id: str | None = None, **more: Any) -> Response:
    return _json(status, _error_body(code, message, request_id, **more), request_id)


async def read_body(length: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, refused (413) once it is larger than ``limit`` bytes: by its Content-Length
    before reading, and by counting while reading a chunked one."""
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise InputError(400, "bad_body", f"Content-Length is not a number: {length[:40]!r}") from None
        if declared > limit:
            raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _too_large(limit: int) -> InputError:
    return InputError(413, "body_too_large", f"the body is larger than {limit / 2**20:g} MB (serve.max_body_mb in "
                      "modelcycle.yaml): send fewer records per request")


class _Front:
    """In front of the FastAPI app: the token check, and ``POST /predict`` answered straight
    from ASGI (FastAPI's routing, dependency solving and middleware cost more per request than
    parsing and checking a one-row body)."""

    def __init__(self, app: Any, server: Server, token: str | None) -> None:
        self.app = app
        self.server = server
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path")
        if path == webhook.PATH and self.server.webhook is not None and scope.get("method") == "POST":
            await self._hook(scope, receive, send)  # authenticated by MLflow's signature, not the token
            return
        if self.expected is not None and path != "/health":
            given = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                said = "a wrong token" if given else "no token"
                response = error(401, "unauthorized", f"this server needs `Authorization: Bearer <token>` "
                                 f"(the token in MODELCYCLE_SERVE_TOKEN where it runs); the request sent {said}")
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        if path == "/predict" and scope.get("method") == "POST":
            await self._predict(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _hook(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        receiver = self.server.webhook
        assert receiver is not None
        try:
            body = await read_body(headers.get("content-length"), _chunks(receive), webhook.MAX_BODY)
        except InputError as exc:
            await _json(exc.status, exc.body())(scope, receive, send)
            return
        except asyncio.CancelledError:
            return
        status, answer = receiver.handle(headers, body)  # at most a follower's wake(): never a load
        await _json(status, answer)(scope, receive, send)

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = length = None
        for key, value in scope.get("headers", ()):
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                length = value.decode("latin-1")
        try:
            status, body, rid, after = await self.server.answer(content_type, length, _chunks(receive))
        except asyncio.CancelledError:
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", rid.encode())]})
        await send({"type": "http.response.body", "body": body})
        if after is not None:
            after()


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError  # the client left: nothing to answer
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


class Server:
    """What the routes share: the follower (the served version), the batcher, the limits, the
    optional shadow log, the optional webhook receiver."""

    def __init__(self, follower: Follower, *, max_body_mb: float = 16, shadow: Any = None,
                 key_columns: list[str] | None = None, reg: Registry | None = None, alias: str = CHAMPION,
                 webhook: Receiver | None = None, image_paths: bool = False) -> None:
        self.follower = follower
        self.batcher = Batcher()
        self.max_body = int(max_body_mb * 2**20)
        self.shadow = shadow
        self.key_columns = list(key_columns or [])
        self.reg = reg
        self.alias = alias
        self.webhook = webhook
        #: serve.image_paths: read file paths clients send in image columns (else a 422)
        self.image_paths = image_paths
        self._described: tuple[Any, dict[str, Any]] | None = None

    async def answer(self, content_type: str | None, length: str | None, chunks: AsyncIterator[bytes]
                     ) -> tuple[int, bytes, str, Callable[[], None] | None]:
        """``POST /predict``: the status, the JSON body, the request id, and what to do once
        the answer is sent (hand the request to the shadow log)."""
        rid = request_id()
        served = self.follower.served  # read once: this request finishes on this version
        if served is None:
            return 503, orjson.dumps(_error_body("not_ready", "no model is loaded yet: the server is loading the "
                                                 "champion or waiting for one (see GET /health)", rid)), rid, None
        try:
            body = await read_body(length, chunks, self.max_body)
            parsed = inputs.parse(body, content_type)
            output = _output(parsed.params, served.gives_probabilities)
            columns = inputs.check(parsed, served.columns, served.zones, self.key_columns,
                                   image_paths=self.image_paths)
            result = await self.batcher.predict(served, columns, parsed.rows, output)
        except InputError as exc:
            return exc.status, orjson.dumps(exc.body()), rid, None
        except DataError as exc:  # a record the model cannot read (an image file that does not exist)
            return 422, orjson.dumps(InputError(422, "invalid_value", exc.message).body()), rid, None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request %s to version %s of %s failed", rid, served.version.version, served.name)
            return 500, orjson.dumps(_error_body("internal", f"the server failed on this request (request id {rid}, "
                                                 "in its log); the records were valid", rid)), rid, None
        values = result.values()
        content = orjson.dumps({"predictions": values, "model": served.name, "version": served.version.version},
                               option=_OPTS, default=_plain)
        after = None
        if self.shadow is not None and output == LABEL:
            version = served.version.version

            def after() -> None:
                self._shadow(rid, result, values, version)

        return 200, content, rid, after

    def _shadow(self, request_id: str, result: Any, values: Any, version: str) -> None:
        try:
            self.shadow.submit(request_id, result.rows(), np.asarray(values), version)
        except Exception:  # the shadow never costs a response
            log.exception("the prediction log refused request %s", request_id)

    def health(self) -> Response:
        f = self.follower
        served = f.served
        body: dict[str, Any] = {
            "status": "ok" if served else ("failed" if f.failure else "loading"),
            "model": f.name, "alias": f.alias,
            "version": served.version.version if served else None,
            "loaded_at": f.loaded_at, "last_poll": f.last_poll, "poll_seconds": f.poll_seconds,
            "poll_error": f.poll_error,
            "notice": f.notice,
            "last_failure": f.failure.to_dict() if f.failure else None,
            "swaps": f.swaps, "requests": self.batcher.requests, "batches": self.batcher.batches,
        }
        if self.shadow is not None:
            body["shadow"] = _counters(self.shadow)
        return _json(200 if served else 503, body)

    async def model(self) -> Response:
        served = self.follower.served
        if served is None:
            return error(503, "not_ready", "no model is loaded yet (see GET /health)")
        cached = self._described
        if cached is None or cached[0] is not served:
            info = await asyncio.to_thread(describe, self.reg, served, self.alias)
            self._described = cached = (served, info)
        return _json(200, cached[1])


def _output(params: dict[str, Any], gives_probabilities: bool) -> str:
    wanted = str(params.get("output") or LABEL).strip().lower()
    if wanted in (LABEL, "predict", "prediction", "predictions"):
        return LABEL
    if wanted == PROBA:
        if not gives_probabilities:
            raise InputError(422, "invalid_params", "`params.output` 'proba': this model gives no class "
                             "probabilities (it is not a classifier modelcycle registered)", field="params.output")
        return PROBA
    raise InputError(422, "invalid_params", f"`params.output` must be 'label' or 'proba', not {wanted!r}",
                     field="params.output")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _counters(shadow: Any) -> Any:
    counters = getattr(shadow, "counters", None)
    try:
        return counters() if callable(counters) else (counters or {"enabled": True})
    except Exception as exc:  # noqa: BLE001 - health never fails on the shadow's account
        return {"enabled": True, "error": str(exc)}


def create_app(server: Server, *, token: str | None = None) -> Any:
    """The ASGI app: FastAPI routes, behind the token check when a token is given."""
    app = FastAPI(title="modelcycle serve", docs_url="/docs", redoc_url=None,
                  description="Predictions from the champion; follows the alias when it moves.")

    @app.post("/predict", summary="Predict records: {'records': [...]}, {'dataframe_split': ...}, "
              "{'dataframe_records': [...]} or text/csv")
    async def predict(request: Request) -> Response:  # the same as _Front's fast path (tests, mounts)
        status, body, rid, after = await server.answer(request.headers.get("content-type"),
                                                       request.headers.get("content-length"), request.stream())
        return Response(body, status_code=status, media_type=_JSON, headers={"X-Request-Id": rid},
                        background=BackgroundTask(after) if after else None)

    @app.get("/health", summary="200 once a model is loaded (503 before), with the served version and the "
             "follower's state")
    async def health() -> Response:
        return server.health()

    @app.get("/model", summary="The served version and its lineage")
    async def model() -> Response:
        return await server.model()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> Response:
        rid = request_id()
        log.error("request %s failed: %s: %s", rid, type(exc).__name__, exc, exc_info=exc)
        return error(500, "internal", f"the server failed on this request (request id {rid}, in its log)",
                     rid)

    app.state.server = server
    return _Front(app, server, token)
