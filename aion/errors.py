"""Service errors with the gRPC status codes and failure details Temporal uses."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb


class ServiceError(Exception):
    """An error answered to the caller as a gRPC status, optionally with a details message."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, details: Message | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, message: str, details: Message | None = None) -> None:
        super().__init__(message, details or details_pb.NotFoundFailure())


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL


def namespace_not_found(name: str) -> NotFound:
    return NotFound(
        f"Namespace {name} is not found.", details_pb.NamespaceNotFoundFailure(namespace=name)
    )


def workflow_not_found(workflow_id: str = "", run_id: str = "") -> NotFound:
    """Temporal's texts: the current run of an id, or one run of it."""
    if workflow_id and run_id:
        return NotFound(
            f'workflow execution not found for workflow ID "{workflow_id}" and run ID "{run_id}"'
        )
    if workflow_id:
        return NotFound(f"workflow not found for ID: {workflow_id}")
    return NotFound("workflow execution not found")


def workflow_already_started(message: str, request_id: str, run_id: str) -> AlreadyExists:
    return AlreadyExists(
        message,
        details_pb.WorkflowExecutionAlreadyStartedFailure(
            start_request_id=request_id, run_id=run_id
        ),
    )


def workflow_completed() -> NotFound:
    return NotFound("workflow execution already completed")


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


def multi_operation_failed(start: ServiceError | None, update: ServiceError | None) -> Aborted:
    """Update-with-Start failed: the failing operation's status, the other one aborted."""
    failure = details_pb.MultiOperationExecutionFailure()
    for error in (start, update):
        status = failure.statuses.add()
        if error is None:
            error = Aborted("Operation was aborted.", failure_pb.MultiOperationExecutionAborted())
        status.code = error.code.value[0]
        status.message = error.message
        if error.details is not None:
            status.details.add().Pack(error.details)
    return Aborted("Update-with-Start could not be executed.", failure)


class ShardNotOwned(Unavailable):
    """The execution's history shard is owned by another server process (or by none, while
    ownership moves); the frontend forwards the call to the owner."""

    def __init__(self, shard_id: int) -> None:
        super().__init__(f"shard {shard_id} is not owned by this server process; retry")
        self.shard_id = shard_id


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        PermissionDenied,
        ResourceExhausted,
        Unavailable,
        Unimplemented,
        Internal,
        DeadlineExceeded,
        Aborted,
    )
}


def from_status(
    code: grpc.StatusCode, message: str, details: Message | None = None
) -> ServiceError:
    """The ServiceError for a status another process answered with."""
    return _BY_CODE.get(code, Internal)(message, details)
