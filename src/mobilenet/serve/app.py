"""The HTTP application: the web page, the JSON API, the Open Inference Protocol, health and metrics.

Routes (all but liveness need the bearer token when one is set; a browser may give it as the
password of HTTP Basic authentication, which it asks for on the page):

- ``GET /``: the page (drop images, see each one's top-5, the model card and the latency);
- ``GET /v1/models``; ``POST /v1/classify?model=NAME&topk=K``: an image as the body, or several as a
  ``multipart/form-data`` upload -> top-k, the model and server-side timings;
- the Open Inference Protocol (:mod:`mobilenet.serve.protocol`): ``GET /v2``,
  ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``, ``/v2/models/{name}/ready``,
  ``POST /v2/models/{name}/infer``;
- ``GET /metrics``: Prometheus.

Every error is a JSON ``{"error": ...}`` with its status (400 bad input, 401, 404 unknown model
or route, 408 body too slow, 413 too large, 503 loading or queue full, with ``Retry-After``);
an unexpected failure is logged here and answered 500 without details.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mobilenet import __version__
from mobilenet.errors import BadImageError
from mobilenet.serve.batcher import QueueFullError
from mobilenet.serve.protocol import HEADER_LENGTH, ProtocolError, encode_response, metadata, parse_infer
from mobilenet.serve.service import Model, NotReadyError, Service

LIVE = "/v2/health/live"
RETRY_AFTER_S = 1
MAX_FILES = 64
"""Images per multipart upload."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status`` (and ``Retry-After`` for 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _BodyTooLargeError(Exception):
    pass


class _BodyTimeoutError(Exception):
    pass


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error every route answers with."""
    headers = dict(headers or {})
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse({"error": message}, status, headers)


class Guard:
    """ASGI middleware: metrics of every request, the bearer token, the body size limit and read timeout."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], service: Service, routes: frozenset[str]
    ) -> None:
        self.app = app
        self.service = service
        self.routes = routes
        token = service.config.token
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.service.metrics
        route, status, start = self.route_label(scope["path"]), 500, time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.in_flight.inc()
        try:
            refusal = self._refuse(scope)
            if refusal is not None:
                await refusal(scope, receive, send_status)
            else:
                await self.app(scope, self._limited(receive), send_status)
        finally:
            metrics.in_flight.dec()
            metrics.requests.labels(route, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - start)

    def route_label(self, path: str) -> str:
        """The route a path belongs to, for metrics (model names folded into ``{name}``)."""
        label = re.sub(r"^/v2/models/[^/]+", "/v2/models/{name}", path)
        return label if label in self.routes else "other"

    def _refuse(self, scope: Scope) -> Response | None:
        headers = dict(scope["headers"])
        if self.token is not None and scope["path"] != LIVE and not self._authorized(headers.get(b"authorization")):
            scheme = 'Basic realm="mobilenet", charset="UTF-8"' if scope["path"] == "/" else "Bearer"
            return error_response(401, "a bearer token is required", {"WWW-Authenticate": scheme})
        length = headers.get(b"content-length")
        limit = self.service.config.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            return error_response(413, f"the body is {int(length):,} bytes, more than the limit of {limit:,}")
        return None

    def _authorized(self, header: bytes | None) -> bool:
        assert self.token is not None
        scheme, _, value = (header or b"").partition(b" ")
        if scheme.lower() == b"basic":
            with contextlib.suppress(binascii.Error):
                value = base64.b64decode(value, validate=True).partition(b":")[2]
        elif scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(value.strip(), self.token)

    def _limited(self, receive: Receive) -> Receive:
        limit, timeout, received = self.service.config.max_body_bytes, self.service.config.read_timeout_s, 0

        async def limited() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise _BodyTimeoutError from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        return limited


async def read_body(request: Request) -> bytes:
    """The whole request body, within the size limit and read timeout (413, 408)."""
    try:
        return await request.body()
    except _BodyTooLargeError:
        raise ApiError(413, "the body is larger than the server's limit") from None
    except _BodyTimeoutError:
        raise ApiError(408, "the request body came too slowly") from None


async def read_images(request: Request) -> list[tuple[str, bytes]]:
    """The images of a ``/v1/classify`` request: every file of a multipart upload, else the body."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES)
        except _BodyTooLargeError:
            raise ApiError(413, "the body is larger than the server's limit") from None
        except _BodyTimeoutError:
            raise ApiError(408, "the request body came too slowly") from None
        except MultiPartException as err:
            raise ApiError(400, f"malformed multipart upload: {err.message}") from None
        files = [
            (item.filename or key, await item.read())
            for key, item in form.multi_items()
            if isinstance(item, UploadFile)
        ]
        await form.close()
        if not files:
            raise ApiError(400, "the multipart upload holds no file: attach one or more images")
        return files
    body = await read_body(request)
    if not body:
        raise ApiError(400, "the body is empty: send an image file, or a multipart upload of images")
    return [("body", body)]


def create_app(service: Service) -> Starlette:
    """The application serving ``service``'s models; the models load when the application starts."""
    page = resources.files("mobilenet.serve").joinpath("page.html").read_text(encoding="utf-8")
    config = service.config

    def model_for(name: str | None) -> Model:
        try:
            return service.model(name)
        except KeyError as err:
            raise ApiError(404, str(err.args[0])) from None
        except NotReadyError as err:
            raise ApiError(503, str(err)) from None

    async def infer(model: Model, images: Any) -> Any:
        if len(images) > config.max_queue:
            raise ApiError(413, f"{len(images)} images in one request: at most {config.max_queue}")
        try:
            return await service.infer(model, images)
        except QueueFullError as err:
            raise ApiError(503, f"busy: {err}; retry later") from None
        except BadImageError as err:
            raise ApiError(400, f"{err.path}: {err.reason}") from None

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def models(request: Request) -> Response:
        return JSONResponse({"models": [describe(model) for model in service.models.values()]})

    def describe(model: Model) -> dict[str, Any]:
        info: dict[str, Any] = {"name": model.name, "source": model.source, "ready": model.ready}
        if model.ready:
            card = model.served.card
            info |= {
                "backend": model.served.backend,
                "summary": card.summary(),
                "arch": card.arch,
                "classes": card.num_classes - card.label_offset,
                "input_size": card.input_size,
                "in_chans": card.in_chans,
                "quantization": card.quantization,
                "card_source": card.source,
                "load_seconds": model.load_seconds,
            }
        return info

    async def classify(request: Request) -> Response:
        start = time.perf_counter()
        model = model_for(request.query_params.get("model"))
        topk = _topk(request.query_params.get("topk"), config.topk)
        images = await read_images(request)
        read = time.perf_counter()
        probs = await infer(model, images)
        done = time.perf_counter()
        predictor = model.served.predictor
        results = [
            {"file": name, "topk": top} for (name, _), top in zip(images, predictor.top(probs, topk), strict=True)
        ]
        timings = {
            "read_ms": 1e3 * (read - start),
            "inference_ms": 1e3 * (done - read),
            "total_ms": 1e3 * (done - start),
        }
        return JSONResponse(
            {"model": model.name, "backend": model.served.backend, "results": results, "timings": timings}
        )

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(
            {"name": "mobilenet", "version": __version__, "extensions": ["binary_tensor_data", "classification"]}
        )

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": service.ready}, 200 if service.ready else 503)

    async def model_metadata(request: Request) -> Response:
        model = model_for(request.path_params["name"])
        return JSONResponse(metadata(model.name, model.served.card, model.served.backend))

    async def model_ready(request: Request) -> Response:
        try:
            model_for(request.path_params["name"])
        except ApiError as err:
            if err.status != 503:
                raise
            return JSONResponse({"name": request.path_params["name"], "ready": False}, 503)
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    async def model_infer(request: Request) -> Response:
        model = model_for(request.path_params["name"])
        body = await read_body(request)
        try:
            parsed = parse_infer(body, request.headers.get(HEADER_LENGTH), model.served.card)
        except ProtocolError as err:
            raise ApiError(400, str(err)) from None
        names = model.served.predictor.names
        images = (
            parsed.tensor
            if parsed.tensor is not None
            else list(zip(["image"] * parsed.count, parsed.images, strict=True))
        )
        probs = await infer(model, images)
        content, header_length = encode_response(model.name, parsed.id, probs, names, parsed.outputs)
        if header_length is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", index),
        Route("/v1/models", models),
        Route("/v1/classify", classify, methods=["POST"]),
        Route("/v2", server_metadata),
        Route(LIVE, live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/infer", model_infer, methods=["POST"]),
        Route("/metrics", metrics),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        yield
        await service.close()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    app.add_middleware(Guard, service=service, routes=frozenset(route.path for route in routes))
    return app


def _topk(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ApiError(400, f"topk must be a positive integer, got {text!r}")
    return int(text)


async def _api_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, ApiError)
    return error_response(err.status, str(err))


async def _http_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, HTTPException)
    return error_response(err.status_code, str(err.detail), dict(err.headers or {}))


async def _disconnected(request: Request, err: Exception) -> Response:
    return error_response(499, "the client closed the connection")


async def _unexpected(request: Request, err: Exception) -> Response:
    return error_response(500, "internal error (logged by the server)")  # the server logs the traceback


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    HTTPException: _http_error,
    ClientDisconnect: _disconnected,
    Exception: _unexpected,
}
