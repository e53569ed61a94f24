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
