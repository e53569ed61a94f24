"""The decorator every RPC goes through: maps ServiceError to gRPC statuses with details."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2
from temporalio.api.enums.v1 import failed_cause_pb2 as enums_pb
from temporalio.api.errordetails.v1 import message_pb2 as details_pb

from aion import errors, metrics, tracing
from aion.cluster import Cluster
from aion.cluster.peers import NOT_OWNER, is_forwarded
from aion.frontend.actions import actions
from aion.metrics import UNKNOWN_NAMESPACE
from aion.persistence import ConditionFailedError, StoreUnavailableError, UnstorableValueError

if TYPE_CHECKING:  # the auth modules load only when auth is on
    from aion.auth.guard import ServiceGuard
    from aion.frontend.quotas import FrontendQuotas

log = logging.getLogger("aion.frontend")

R = TypeVar("R")

# A process dies: its shards move once its lease runs out (`aion.cluster.membership.LEASE_S`).
FAILOVER_WAIT_S = 15.0
FAILOVER_RETRY_S = 0.25
# Temporal's limit on namespace names in requests (`limit.maxIDLength`).
MAX_NAMESPACE_LENGTH = 1000
MAX_MESSAGE_BYTES = 2000
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def rpc(fn: Handler[R]) -> Handler[R]:
    operation = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        namespace = getattr(request, "namespace", "") or UNKNOWN_NAMESPACE
        measured = metrics.service(namespace, operation, "frontend")
        measured.requests.inc()
        started = time.perf_counter()
        try:
            response = await tracing.traced(
                operation, request, context, _serve(fn, self, request, context)
            )
        except errors.ServiceError as e:
            _count_error(e, namespace, operation)
            await abort(context, e)
            raise AssertionError("unreachable") from None
        except asyncio.CancelledError:
            metrics.service_error("serviceerror_Canceled", namespace, operation, "frontend").inc()
            raise
        finally:
            measured.latency.observe(time.perf_counter() - started)
        if metrics.enabled():
            for action in actions(operation, request, response):
                metrics.actions(action, namespace, operation).inc()
        return response

    return wrapper


def _count_error(error: errors.ServiceError, namespace: str, operation: str) -> None:
    """`service_error_with_type` for every failed call; `service_errors` only for the server's
    own failures, not the caller's (bad input, not found…), as the reference counts them."""
    if not metrics.enabled():
        return
    kind = error_type(error)
    metrics.service_error(kind, namespace, operation, "frontend").inc()
    if kind == "serviceerror_NamespaceNotActive":
        metrics.namespace_not_active(namespace, operation)
    if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        cause, scope = _exhaustion(error)
        metrics.resource_exhausted(namespace, operation, cause, scope)
    if error.code not in EXPECTED_CODES:
        metrics.service(namespace, operation, "frontend").errors.inc()


def error_type(error: errors.ServiceError) -> str:
    """The error's type as the reference's metrics name it: `serviceerror_` and the Go type,
    which is the failure detail's name without `Failure` (`serviceerror_NamespaceNotFound`),
    else the status code's (`serviceerror_InvalidArgument`)."""
    if error.details is not None:
        name = error.details.DESCRIPTOR.name.removesuffix("Failure")
        if name in _DETAIL_TYPES:
            return f"serviceerror_{name}"
    return f"serviceerror_{_CODE_TYPES.get(error.code, 'Internal')}"


def _exhaustion(error: errors.ServiceError) -> tuple[str, str]:
    details = error.details
    if isinstance(details, details_pb.ResourceExhaustedFailure):
        cause = enums_pb.ResourceExhaustedCause.Name(details.cause)
        scope = enums_pb.ResourceExhaustedScope.Name(details.scope)
    else:
        cause = "RESOURCE_EXHAUSTED_CAUSE_UNSPECIFIED"
        scope = "RESOURCE_EXHAUSTED_SCOPE_UNSPECIFIED"
    return cause, scope


# Status codes of the caller's mistakes, not the server's failures (not in `service_errors`).
EXPECTED_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
_CODE_TYPES = {
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.ABORTED: "MultiOperationExecution",
}
# Failure details whose Go error type has the detail's name.
_DETAIL_TYPES = frozenset(
    {
        "NamespaceNotFound",
        "NamespaceAlreadyExists",
        "NamespaceNotActive",
        "NamespaceInvalidState",
        "WorkflowExecutionAlreadyStarted",
        "CancellationAlreadyRequested",
        "QueryFailed",
        "PermissionDenied",
        "ResourceExhausted",
        "WorkflowNotReady",
        "NotFound",
        "ClientVersionNotSupported",
        "ServerVersionNotSupported",
        "MultiOperationExecution",
    }
)


async def _serve(fn: Handler[R], self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
    """Run the RPC; a servicer with a guard (auth on) has it checked and audited first."""
    guard: ServiceGuard | None = getattr(self, "guard", None)
    if guard is None:
        return await _run(fn, self, request, context)
    return await guard.serve(fn.__name__, request, context, functools.partial(_run, fn, self))


async def _dispatch(
    fn: Handler[R], self: Any, request: Any, context: grpc.aio.ServicerContext
) -> R:
    """Serve the RPC here, on the active cluster of its global namespace, or on the process
    owning its execution."""
    try:
        redirection = getattr(self, "redirection", None)
        if redirection is None:
            return await fn(self, request, context)
        # A global namespace: served here, on its active cluster, or refused.
        here = functools.partial(fn, self, request, context)
        served: R = await redirection.serve(fn.__name__, request, context, here)
        return served
    except errors.ShardNotOwned as e:
        cluster = getattr(getattr(self, "engine", None), "remote", None)
        if not isinstance(cluster, Cluster) or is_forwarded(context):
            raise
        # The execution lives on another process: make the same call there.
        return await _on_owner(cluster, e, fn, self, request, context)


async def _run(fn: Handler[R], self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
    """Run the RPC, on the shard's owner if need be; any failure comes out as a ServiceError."""
    try:
        if len(getattr(request, "namespace", "")) > MAX_NAMESPACE_LENGTH:
            raise errors.InvalidArgument("Namespace length exceeds limit.")
        # After the guard, so calls it refuses spend none of the namespace's rate. A call
        # forwarded to its shard's owner counts there too: the header saying so is the
        # caller's to set, so it cannot be what exempts a call.
        quotas: FrontendQuotas | None = getattr(self, "quotas", None)
        if quotas is None:
            return await _dispatch(fn, self, request, context)
        try:
            with quotas.admit(fn.__name__, request):
                return await _dispatch(fn, self, request, context)
        except errors.ResourceExhausted as e:
            await quotas.hold_refusal(request.namespace, e, context.time_remaining())
            raise
    except (errors.ServiceError, grpc.aio.AbortError):  # (aborted: the owner's answer, passed on)
        raise
    except UnstorableValueError as e:
        raise errors.InvalidArgument(str(e)) from None
    except ConditionFailedError as e:  # a race the operation did not expect: the caller retries
        log.warning("%s: %s", fn.__name__, e)
        raise errors.Unavailable(f"changed concurrently; retry: {e}") from None
    except StoreUnavailableError as e:  # the database is down or restarting: retry later
        raise errors.Unavailable(f"persistence unavailable: {e}") from None
    except Exception as e:
        log.exception("%s failed", fn.__name__)
        raise errors.Internal(f"{type(e).__name__}: {e}") from e


async def _on_owner(
    cluster: Any,
    error: errors.ShardNotOwned,
    fn: Handler[R],
    servicer: Any,
    request: Any,
    context: grpc.aio.ServicerContext,
) -> R:
    """Forward the call to the shard's owner. While ownership moves (the owner died or is
    handing over), wait for the shard to settle here or elsewhere, within the caller's deadline."""
    loop = asyncio.get_running_loop()
    until = loop.time() + min(FAILOVER_WAIT_S, deadline_seconds(context, FAILOVER_WAIT_S) - 1.0)
    while True:
        response = await cluster.forward(error.shard_id, fn.__name__, request, context)
        if response is not None:
            return response  # type: ignore[no-any-return]
        if loop.time() >= until:
            raise error
        await asyncio.sleep(FAILOVER_RETRY_S)
        try:
            return await fn(servicer, request, context)
        except errors.ShardNotOwned as e:
            error = e


async def abort(context: grpc.aio.ServicerContext, error: errors.ServiceError) -> None:
    """End the call with the error's status and details."""
    message = _shortened(error.message)
    status = status_pb2.Status(code=error.code.value[0], message=message)
    if error.details is not None:
        detail = any_pb2.Any()
        detail.Pack(_bounded(error.details))
        status.details.append(detail)
    metadata: tuple[tuple[str, str | bytes], ...] = (
        ("grpc-status-details-bin", status.SerializeToString()),
    )
    if isinstance(error, errors.ShardNotOwned):
        metadata += ((NOT_OWNER, "1"),)
    await context.abort(error.code, message, trailing_metadata=metadata)


def _shortened(message: str) -> str:
    """`message`, cut short if it quotes a huge value from the request: clients refuse the
    call's trailers (which carry it twice) over 8 KiB. Measured as sent: gRPC percent-encodes
    all but printable ASCII."""
    size = 0
    for i, char in enumerate(message):
        size += 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode())
        if size > MAX_MESSAGE_BYTES:
            return message[:i] + "…"
    return message


def _bounded(details: Message) -> Message:
    """`details`, with the strings of a huge one (quoting a huge value from the request) cut
    short as messages are."""
    if details.ByteSize() <= MAX_MESSAGE_BYTES:
        return details
    bounded = type(details)()
    bounded.CopyFrom(details)
    _cut_strings(bounded)
    return bounded


def _cut_strings(message: Message) -> None:
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            setattr(message, field.name, _shortened(value))
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for item in value if field.is_repeated else (value,):
                _cut_strings(item)


def deadline_seconds(context: grpc.aio.ServicerContext, default: float = 70.0) -> float:
    remaining = context.time_remaining()
    return default if remaining is None else float(remaining)
