"""The HTTP API server: each request matched to its RPC, the request message built from the
path, the query string or the JSON body, and the same servicer method the gRPC server calls run
with the request's headers as its metadata. Errors come out as `{code, message, details}` with
the HTTP status grpc-gateway gives each gRPC code."""

from __future__ import annotations

import base64
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2

from aion.auth.tls import certificate_names
from aion.http import jsonpb
from aion.http.routes import Route, Router, load_routes

log = logging.getLogger("aion.http")

MAX_BODY_BYTES = 4 * 1024 * 1024  # gRPC's default message limit, as the reference's HTTP API
NO_SHORTHAND = "no-payload-shorthand"
# Headers passed on as metadata under their own (lower-case) name, besides `Grpc-Metadata-*`
# ones (passed without the prefix), as the reference's HTTP API does.
FORWARDED_HEADERS = frozenset(
    {"authorization", "authorization-extras", "x-forwarded-for", "client-name", "client-version"}
)
# grpc-gateway's status for each gRPC code.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
Servicer = Callable[[Message, Any], Awaitable[Message]]


class HttpAbort(BaseException):
    """A servicer ended the call with a status (what `context.abort` raises on gRPC).

    A BaseException, as grpc.aio's abort is: the servicers' catch-all for unexpected errors
    must not turn it into INTERNAL."""

    def __init__(self, status: status_pb2.Status, http_status: int) -> None:
        super().__init__(status.message)
        self.status = status
        self.http_status = http_status


class HttpContext:
    """What the servicers use of `grpc.aio.ServicerContext`, for one HTTP request."""

    def __init__(self, request: web.Request) -> None:
        self._metadata = tuple(_metadata(request.headers.items()))
        self._timeout = _grpc_timeout(request.headers.get("Grpc-Timeout", ""))
        self._peer = request.remote or ""
        self._certificate = certificate_names(request.transport)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return self._timeout

    def auth_context(self) -> dict[str, list[bytes]]:
        """The verified client certificate's names (mTLS), as grpc's context gives them."""
        return self._certificate

    def peer(self) -> str:
        return f"ipv4:{self._peer}"

    def code(self) -> None:
        return None

    def set_code(self, code: grpc.StatusCode) -> None:
        """Called by grpc's generated stub of a method Aion does not implement, before it
        raises NotImplementedError (answered as UNIMPLEMENTED)."""

    def set_details(self, details: str) -> None:
        """As `set_code`."""

    def details(self) -> None:
        return None

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Iterable[tuple[str, str | bytes]] = (),
    ) -> None:
        status = status_pb2.Status(code=code.value[0], message=details)
        for key, value in trailing_metadata:
            if key == "grpc-status-details-bin" and isinstance(value, bytes):
                status.ParseFromString(value)
        raise HttpAbort(status, HTTP_STATUS.get(code, 500))


def _metadata(headers: Iterable[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    for name, value in headers:
        lower = name.lower()
        if lower.startswith("grpc-metadata-"):
            yield lower.removeprefix("grpc-metadata-"), value
        elif lower in FORWARDED_HEADERS:
            yield lower, value


def _grpc_timeout(value: str) -> float | None:
    """A `Grpc-Timeout` header (`10S`, `500m`, ...) in seconds."""
    units = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        return None
    return int(value[:-1]) * units[value[-1]]


def error_response(code: grpc.StatusCode, message: str) -> web.Response:
    status = status_pb2.Status(code=code.value[0], message=message)
    return _status_response(status, HTTP_STATUS.get(code, 500))


def _status_response(status: status_pb2.Status, http_status: int) -> web.Response:
    try:
        body = jsonpb.to_json(status)
    except (TypeError, json_format.Error):  # a detail of a type this process does not know
        body = json.dumps({"code": status.code, "message": status.message}).encode()
    return web.Response(body=body, status=http_status, content_type="application/json")


class HttpApi:
    """Temporal's HTTP API over the given servicers (by service full name)."""

    def __init__(self, servicers: Mapping[str, object]) -> None:
        self.router = Router(load_routes())
        self._servicers = servicers
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, ip: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on `ip:port` (port 0: a free one, then in `self.port`), with TLS when given
        an SSL context."""
        self._runner, self.port = await listen(self.application(), ip, port, ssl_context)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except Exception as e:  # a bug: answered as the gRPC server answers one
            log.exception("HTTP %s %s failed", request.method, request.path)
            return error_response(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        found = self.router.match(request.method, request.path)
        if found is None:
            if self.router.has_path(request.path):
                return error_response(grpc.StatusCode.UNIMPLEMENTED, "Method Not Allowed")
            return error_response(grpc.StatusCode.NOT_FOUND, "Not Found")
        route, variables = found
        shorthand = not _no_shorthand(request)
        try:
            message = await _request_message(request, route, variables, shorthand)
        except (jsonpb.JsonError, ValueError) as e:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body larger than {MAX_BODY_BYTES} bytes",
            )
        response = await self.call(request, route.service, route.method, message)
        if isinstance(response, web.Response):
            return response
        content_type = "application/json" if shorthand else f"application/json+{NO_SHORTHAND}"
        return web.Response(
            body=jsonpb.to_json(response, shorthand),
            headers={"Content-Type": content_type},
        )

    async def call(
        self, request: web.Request, service: str, method: str, message: Message
    ) -> Message | web.Response:
        """Run one RPC for `request`: its response message, or the error response."""
        servicer = getattr(self._servicers[service], method)
        try:
            response: Message = await servicer(message, HttpContext(request))
        except HttpAbort as e:
            return _status_response(e.status, e.http_status)
        except NotImplementedError:
            return error_response(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        return response


async def listen(
    app: web.Application, ip: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Serve `app` on `ip:port` on the running loop, with TLS when given an SSL context: the
    runner (to `cleanup()`) and the port bound (a free one when `port` is 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, ip, port, ssl_context=ssl_context)
    await site.start()
    return runner, runner.addresses[0][1]


def _no_shorthand(request: web.Request) -> bool:
    return "noPayloadShorthand" in request.query or NO_SHORTHAND in request.headers.get(
        "Accept", ""
    )


async def _request_message(
    request: web.Request, route: Route, variables: dict[str, str], shorthand: bool
) -> Message:
    message = _new_message(route.request_type)
    if route.body == "*":
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise jsonpb.JsonError(f"the body is not JSON: {e}") from None
            jsonpb.parse(body, message, shorthand)
    else:
        _set_query(message, request.query.items())
    for path, value in variables.items():
        _set_field(message, path, value)
    return message


def _new_message(descriptor: Any) -> Message:
    return message_factory.GetMessageClass(descriptor)()


def _set_query(message: Message, items: Iterable[tuple[str, str]]) -> None:
    """Query parameters into request fields (dotted paths, either name style); parameters that
    name no field are ignored, as grpc-gateway does."""
    for key, value in items:
        if _resolve(message.DESCRIPTOR, key):
            _set_field(message, key, value)


def _resolve(descriptor: Any, path: str) -> list[Any]:
    """The fields along a dotted `path` (either name style), or [] when it names no field."""
    fields = []
    for part in path.split("."):
        if descriptor is None:
            return []
        field = descriptor.fields_by_name.get(part) or descriptor.fields_by_camelcase_name.get(part)
        if field is None:
            return []
        fields.append(field)
        descriptor = field.message_type
    return fields


def _set_field(message: Message, path: str, value: str) -> None:
    """Set the field at `path` from its text form; ValueError saying which field when the text
    is not a value of its type."""
    *parents, field = _resolve(message.DESCRIPTOR, path) or [None]
    if field is None:
        raise ValueError(f"no field {path!r} in {message.DESCRIPTOR.name}")
    target = message
    for parent in parents:
        target = getattr(target, parent.name)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        wrapped = _new_message(field.message_type)
        try:
            json_format.Parse(json.dumps(value), wrapped)
        except json_format.ParseError as e:
            raise ValueError(f'parsing field "{field.name}": {e}') from None
        getattr(target, field.name).CopyFrom(wrapped)
        return
    converted = _scalar(field, value)
    if jsonpb.repeated(field):
        getattr(target, field.name).append(converted)
    else:
        setattr(target, field.name, converted)


_INTEGERS = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _scalar(field: Any, value: str) -> Any:
    try:
        if field.type in _INTEGERS:
            return int(value)
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return float(value)
        if field.type == FieldDescriptor.TYPE_BOOL:
            if value.lower() in ("true", "1", "t"):
                return True
            if value.lower() in ("false", "0", "f"):
                return False
            raise ValueError(f"invalid boolean {value!r}")
        if field.type == FieldDescriptor.TYPE_ENUM:
            by_name = field.enum_type.values_by_name.get(value)
            if by_name is not None:
                return by_name.number
            if not value.lstrip("-").isdigit():
                raise ValueError(f'"{value}" is not a valid value')
            number = int(value)
            if number not in field.enum_type.values_by_number:
                raise ValueError(f"{value!r} is not a value of {field.enum_type.name}")
            return number
        if field.type == FieldDescriptor.TYPE_BYTES:
            return base64.b64decode(value + "=" * (-len(value) % 4))
    except ValueError as e:
        raise ValueError(f'parsing field "{field.name}": {e}') from None
    return value
