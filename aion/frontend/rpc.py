"""The decorator every RPC goes through: maps ServiceError to gRPC statuses with details."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from aion import errors, metrics, tracing
from aion.cluster import Cluster
from aion.cluster.peers import is_forwarded
from aion.metrics import UNKNOWN_NAMESPACE

log = logging.getLogger("aion.frontend")

R = TypeVar("R")

# A process dies: its shards move once its lease runs out (`aion.cluster.membership.LEASE_S`).
FAILOVER_WAIT_S = 15.0
FAILOVER_RETRY_S = 0.25
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def rpc(fn: Handler[R]) -> Handler[R]:
    operation = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        measured = metrics.service(
            getattr(request, "namespace", "") or UNKNOWN_NAMESPACE, operation, "frontend"
        )
        measured.requests.inc()
        started = time.perf_counter()
        try:
            return await tracing.traced(
                operation, request, context, _serve(fn, self, request, context)
            )
        except BaseException:
            measured.errors.inc()
            raise
        finally:
            measured.latency.observe(time.perf_counter() - started)

    return wrapper


async def _serve(fn: Handler[R], self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
    """Run the RPC, on the shard's owner if need be, ending it with Temporal's status on error."""
    try:
        try:
            return await fn(self, request, context)
        except errors.ShardNotOwned as e:
            cluster = getattr(getattr(self, "engine", None), "remote", None)
            if not isinstance(cluster, Cluster) or is_forwarded(context):
                raise
            # The execution lives on another process: make the same call there.
            return await _on_owner(cluster, e, fn, self, request, context)
    except errors.ServiceError as e:
        await abort(context, e)
    except Exception as e:
        log.exception("%s failed", fn.__name__)
        await abort(context, errors.Internal(f"{type(e).__name__}: {e}"))
    raise AssertionError("unreachable")


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
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    if error.details is not None:
        detail = any_pb2.Any()
        detail.Pack(error.details)
        status.details.append(detail)
    await context.abort(
        error.code,
        error.message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )


def deadline_seconds(context: grpc.aio.ServicerContext, default: float = 70.0) -> float:
    remaining = context.time_remaining()
    return default if remaining is None else float(remaining)
