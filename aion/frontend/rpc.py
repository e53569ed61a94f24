"""The decorator every RPC goes through: maps ServiceError to gRPC statuses with details."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from aion import errors

log = logging.getLogger("aion.frontend")

R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def rpc(fn: Handler[R]) -> Handler[R]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except errors.ServiceError as e:
            await _abort(context, e)
        except Exception as e:
            log.exception("%s failed", fn.__name__)
            await _abort(context, errors.Internal(f"{type(e).__name__}: {e}"))
        raise AssertionError("unreachable")

    return wrapper


async def _abort(context: grpc.aio.ServicerContext, error: errors.ServiceError) -> None:
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
