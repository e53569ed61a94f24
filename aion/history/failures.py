"""Failures the server itself writes into history."""

from __future__ import annotations

from temporalio.api.failure.v1 import message_pb2 as failure_pb


def timeout_failure(message: str, timeout_type: int) -> failure_pb.Failure:
    """A timeout (of an activity attempt or a workflow run) of `timeout_type`."""
    return failure_pb.Failure(
        message=message,
        source="Server",
        timeout_failure_info=failure_pb.TimeoutFailureInfo(timeout_type=timeout_type),  # type: ignore[arg-type]
    )


def server_failure(message: str, non_retryable: bool) -> failure_pb.Failure:
    """A failure the server reports in the worker's stead (a payload past its size limit)."""
    return failure_pb.Failure(
        message=message,
        server_failure_info=failure_pb.ServerFailureInfo(non_retryable=non_retryable),
    )


def truncate(failure: failure_pb.Failure, max_size: int, depth: int = 20) -> failure_pb.Failure:
    """`failure` cut down to about `max_size` bytes, as Temporal cuts one: the failure info's
    type and retryability, then its source, message and stack trace, then its causes."""
    left = max_size

    def cut(text: str) -> str:
        nonlocal left
        data = text.encode()[: max(left, 0)].decode(errors="ignore")
        left -= len(data.encode()) + (4 if data else 0)
        return data

    cut_down = failure_pb.Failure()
    if failure.HasField("application_failure_info"):
        info = failure.application_failure_info
        cut_down.application_failure_info.non_retryable = info.non_retryable
        cut_down.application_failure_info.type = cut(info.type)
        left -= 8
    elif failure.HasField("server_failure_info"):
        cut_down.server_failure_info.non_retryable = failure.server_failure_info.non_retryable
        left -= 4
    cut_down.source = cut(failure.source)
    cut_down.message = cut(failure.message)
    cut_down.stack_trace = cut(failure.stack_trace)
    if failure.HasField("cause") and left > 4 and depth > 0:
        cut_down.cause.CopyFrom(truncate(failure.cause, left - 4, depth - 1))
    return cut_down
