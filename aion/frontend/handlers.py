"""Registers a servicer's RPCs on the gRPC server so that no request body gets an unclean status:
one that does not parse answers INVALID_ARGUMENT saying why, and an RPC Aion does not implement
answers UNIMPLEMENTED (with a DEBUG line, not an error traceback)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

log = logging.getLogger("aion.frontend")

# What upb's parse errors mean, in the caller's terms.
_DECODE_ERRORS = {
    "Wire format was corrupt": "the request is not a valid protobuf message (corrupt wire format)",
    "String field had bad UTF-8": "a string field of the request holds invalid UTF-8",
    "Exceeded upb_DecodeOptions_MaxDepth": (
        "the request nests messages deeper than protobuf's recursion limit (100)"
    ),
}


@dataclass(frozen=True)
class _Unparsable:
    """Stands for a request body that did not parse; the handler refuses it."""

    message: str


def add_service(
    server: grpc.aio.Server, servicer: Any, service: ServiceDescriptor, base: type
) -> None:
    """Serve `service`'s RPCs with `servicer`; those it inherits from the generated `base` (the
    stubs answering UNIMPLEMENTED) are answered UNIMPLEMENTED here."""
    handlers = {
        method.name: _handler(servicer, method, base, service.name) for method in service.methods
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )


def _handler(
    servicer: Any, method: MethodDescriptor, base: type, service: str
) -> grpc.RpcMethodHandler:
    request_type = message_factory.GetMessageClass(method.input_type)
    behaviour = getattr(servicer, method.name)
    implemented = getattr(type(servicer), method.name) is not getattr(base, method.name, None)
    name = f"{service}/{method.name}"

    def deserialize(body: bytes) -> Message | _Unparsable:
        try:
            return request_type.FromString(body)
        except DecodeError as e:
            cause = str(e).rpartition(": ")[2]
            return _Unparsable(_DECODE_ERRORS.get(cause, cause))

    async def handle(request: Message | _Unparsable, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Unparsable):
            log.debug("%s: unparsable request: %s", name, request.message)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"{request.message} ({method.input_type.name})"
            )
        if not implemented:
            log.debug("%s is not implemented", name)
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented")
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=deserialize,
        response_serializer=lambda response: response.SerializeToString(),
    )
