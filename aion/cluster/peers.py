"""Calls between server processes: named operations on a shard's owner, forwarded API calls.

Both travel over the processes' own gRPC port, with TLS when the server has it (this process's
certificate as the client certificate). A named operation (`aion.cluster.v1.Peer/Invoke`)
carries JSON: `{"op": name, "args": {...}}`, answered with the operation's JSON result or its
ServiceError's status; it carries the cluster's secret (kept in the shared database), without
which it is refused. A forwarded WorkflowService call is the client's request as it came, with
the client's credentials, marked so that it is never forwarded twice.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import Message
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors, tracing
from aion.auth.plugin import Unauthenticated
from aion.common.channels import Channels, caller_metadata
from aion.history.ports import Op
from aion.persistence import StoreUnavailableError

INVOKE_METHOD = "/aion.cluster.v1.Peer/Invoke"
WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
FORWARDED = "aion-forwarded"
SECRET = "aion-peer-secret"
# Trailing metadata of an answer from a process that is not the shard's owner (ShardNotOwned).
NOT_OWNER = "aion-not-owner"
_STATUS_DETAILS = "grpc-status-details-bin"  # on every status a process answers itself
INVOKE_TIMEOUT_S = 30.0


class Peers:
    """Channels to the other processes, opened on first use."""

    def __init__(self, credentials: Callable[[], grpc.ChannelCredentials] | None = None) -> None:
        """`credentials`: TLS credentials for a new channel; None: plaintext."""
        self._channels = Channels(credentials)
        self._channel = self._channels.get
        # The callables of the methods called, by (address, method path), made once.
        self._callables: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable] = {}
        self.secret = ""
        """The cluster's secret (`Store.cluster_secret`), set when the process joins."""

    def authentic(self, context: grpc.aio.ServicerContext) -> bool:
        """Whether a call comes from a process of this cluster (it knows the secret)."""
        sent = next((v for k, v in context.invocation_metadata() or () if k == SECRET), "")
        return bool(self.secret) and hmac.compare_digest(str(sent).encode(), self.secret.encode())

    async def close(self) -> None:
        self._callables.clear()
        await self._channels.close()

    def _callable(
        self,
        address: str,
        path: str,
        deserializer: Callable[[bytes], Message] | None = None,
    ) -> grpc.aio.UnaryUnaryMultiCallable:
        """The method at `path` on `address`: raw bytes, or messages read by `deserializer`."""
        call = self._callables.get((address, path))
        if call is None:
            serializer = None if deserializer is None else _serialize
            call = self._callables[(address, path)] = self._channel(address).unary_unary(
                path, request_serializer=serializer, response_deserializer=deserializer
            )
        return call

    async def invoke(
        self, address: str, op: str, args: dict[str, Any], timeout: float = INVOKE_TIMEOUT_S
    ) -> dict[str, Any]:
        call = self._callable(address, INVOKE_METHOD)
        try:
            raw = await call(
                json.dumps({"op": op, "args": args}).encode(),
                timeout=timeout,
                metadata=((SECRET, self.secret),),
            )
        except grpc.aio.AioRpcError as e:
            raise errors.from_status(e.code(), e.details() or "") from None
        result: dict[str, Any] = json.loads(raw)
        return result

    async def forward(
        self, address: str, method: str, request: Message, context: grpc.aio.ServicerContext
    ) -> Message | None:
        """Make the client's WorkflowService call on `address`; its answer, or its error
        passed through to the client unchanged; None when the peer did not serve it (it is
        unreachable, or does not own the shard (yet))."""
        call = self._callable(
            address, WORKFLOW_SERVICE + method, getattr(rr, f"{method}Response").FromString
        )
        metadata = caller_metadata(context)
        metadata.append((FORWARDED, "1"))
        if tracing.ACTIVE is not None:  # the owner's span is a child of this process's
            metadata = tracing.ACTIVE.inject(metadata)
        try:
            response: Message = await call(
                request, timeout=context.time_remaining(), metadata=metadata
            )
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE and _not_served(e):
                return None
            await context.abort(
                e.code(), e.details() or "", trailing_metadata=tuple(e.trailing_metadata() or ())
            )
            raise AssertionError("unreachable") from None
        return response


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _not_served(error: grpc.aio.AioRpcError) -> bool:
    """Whether the peer could not serve the call: unreachable (no status of its own), or not
    the shard's owner (any more, or yet). Its other UNAVAILABLE answers (its database is down)
    go to the client as they are, which retries them."""
    keys = {key for key, _ in error.trailing_metadata() or ()}
    return NOT_OWNER in keys or _STATUS_DETAILS not in keys


def is_forwarded(context: grpc.aio.ServicerContext) -> bool:
    return any(k == FORWARDED for k, _ in context.invocation_metadata() or ())


def peer_handler(
    engine: Any,
    ops: Mapping[str, Op],
    abort: Callable[[grpc.aio.ServicerContext, errors.ServiceError], Awaitable[None]],
    peers: Peers,
) -> grpc.GenericRpcHandler:
    """The server side of `Peers.invoke`: runs the named operation on this process's engine,
    for the processes of its cluster only."""

    async def invoke(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if not peers.authentic(context):
            await abort(context, Unauthenticated())
        message = json.loads(request)
        op = ops.get(message.get("op", ""))
        if op is None:
            await abort(context, errors.Unimplemented(f"unknown peer operation {message!r}"))
        try:
            result = await op(engine, message["args"])  # type: ignore[misc]
        except errors.ServiceError as e:
            await abort(context, e)
        except StoreUnavailableError as e:
            await abort(context, errors.Unavailable(f"persistence unavailable: {e}"))
        return json.dumps(result).encode()

    return grpc.method_handlers_generic_handler(
        "aion.cluster.v1.Peer", {"Invoke": grpc.unary_unary_rpc_method_handler(invoke)}
    )
