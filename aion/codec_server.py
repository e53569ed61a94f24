"""`aion codec-server`: Temporal's remote codec protocol over HTTP, for the Web UI and the CLI.

`POST /encode` and `POST /decode` (also under a namespace segment, `/{namespace}/decode`, for
endpoint templates) take `{"payloads": [...]}` in Temporal's protobuf JSON and answer the same shape,
run through an `EncryptionCodec`. The `X-Namespace` header is accepted; one key ring serves every
namespace. Browsers from the `--cors-origin` origins may call it with credentials. Every request
but the CORS preflight needs a credential: with a static token set, `Authorization: Bearer
<token>`; with auth on, a credential the server would accept (API key, JWT, biscuit, client
certificate) whose role in the namespace allows reading (decode) or writing (encode) it.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from aion import errors
from aion.auth.guard import Guard
from aion.auth.methods import CODEC_SERVICE
from aion.codec import CodecError, EncryptionCodec
from aion.http.server import HTTP_STATUS, HttpContext

log = logging.getLogger("aion.codec_server")

MAX_BODY = 4 * 1024 * 1024
ALLOWED_HEADERS = "X-Namespace, Content-Type, Authorization"
ANY_ORIGIN = "*"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


# protobuf's JSON parser skips characters outside the alphabet; reject them instead.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _check_shape(document: dict[str, Any]) -> None:
    """What protobuf's JSON parser lets through: payloads that are not objects, bad base64."""
    for i, payload in enumerate(document["payloads"]):
        if not isinstance(payload, dict):
            raise ValueError(f"payloads[{i}] must be an object")
        values = [("data", payload.get("data"))]
        metadata = payload.get("metadata")
        if isinstance(metadata, dict):
            values += [(f"metadata.{key}", value) for key, value in metadata.items()]
        for name, value in values:
            if isinstance(value, str) and not (
                _BASE64.fullmatch(value) and len(value.rstrip("=")) % 4 != 1
            ):
                raise ValueError(f"payloads[{i}].{name} is not base64")


def _parse(body: bytes) -> Payloads:
    """The request's payloads; raises `ValueError` with a message for the client."""
    try:
        document: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"the body is not JSON: {e}") from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
        raise ValueError('the body must be an object {"payloads": [...]}')
    _check_shape(document)
    try:
        return json_format.ParseDict(document, Payloads())
    except json_format.ParseError as e:
        raise ValueError(f"malformed payloads: {e}") from None


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


async def _refused(guard: Guard, request: web.Request) -> web.Response | None:
    """The answer to a request whose credentials do not allow it; None when they do."""
    operation = "Encode" if request.path.endswith("/encode") else "Decode"
    namespace = request.match_info.get("namespace") or request.headers.get("X-Namespace", "")
    try:
        await guard.check(
            CODEC_SERVICE + operation, SimpleNamespace(namespace=namespace), HttpContext(request)
        )
    except errors.ServiceError as e:
        status = HTTP_STATUS.get(e.code, 500)
        response = _error(status, e.message)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return None


def create_app(
    codec: EncryptionCodec,
    cors_origins: Sequence[str] = (),
    token: str | None = None,
    guard: Guard | None = None,
) -> web.Application:
    """The codec server's aiohttp application: a request needs `token`, or credentials `guard`
    allows (neither: any request is served)."""
    origins = frozenset(cors_origins)

    def allowed(origin: str | None) -> bool:
        return origin is not None and (origin in origins or ANY_ORIGIN in origins)

    @web.middleware
    async def cors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            if not allowed(origin):
                return _error(403, f"origin {origin!r} is not allowed (see --cors-origin)")
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        elif token is not None and not _bearer_matches(request, token):
            response = _error(401, "a valid 'Authorization: Bearer <token>' header is required")
            response.headers["WWW-Authenticate"] = "Bearer"
        elif guard is not None and (refused := await _refused(guard, request)) is not None:
            response = refused
        else:
            try:
                response = await handler(request)
            except web.HTTPException as e:
                # aiohttp's own errors (unknown path, wrong method, body too large) as JSON.
                response = _error(e.status, e.reason)
        if allowed(origin):
            assert origin is not None
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Vary"] = "Origin"
        return response

    def endpoint(run: Callable[[Sequence[Payload]], list[Payload]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                payloads = _parse(await request.read()).payloads
                result = run(payloads)
            except (ValueError, CodecError) as e:
                return _error(400, str(e))
            log.debug(
                "%s %d payloads (namespace %r)",
                request.path,
                len(payloads),
                request.match_info.get("namespace") or request.headers.get("X-Namespace", ""),
            )
            return web.json_response({"payloads": [json_format.MessageToDict(p) for p in result]})

        return handle

    encode, decode = endpoint(codec.encrypt), endpoint(codec.decrypt)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[cors_and_auth])
    for prefix in ("", "/{namespace}"):
        app.router.add_post(f"{prefix}/encode", encode)
        app.router.add_post(f"{prefix}/decode", decode)
    return app


async def start(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, tuple[str, int]]:
    """Serves `app` on the running event loop (with TLS when given an SSL context); returns the
    runner (to `cleanup()`) and the bound address (`port` 0 picks a free one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    host_bound, port_bound = runner.addresses[0][:2]
    return runner, (host_bound, port_bound)
