"""Service errors with the gRPC status codes and failure details Temporal uses."""

from __future__ import annotations

from collections.abc import Sequence

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


# Temporal formats the state with Go's enum name ("Handover"), as its other handover messages.
NAMESPACE_HANDOVER = "Namespace replication in Handover state."


def namespace_handover() -> ServiceError:
    """A call on a namespace in graceful handover, past its wait (UNAVAILABLE, no details:
    Temporal's ErrNamespaceHandover)."""
    return Unavailable(NAMESPACE_HANDOVER)


def namespace_not_active(namespace: str, current_cluster: str, active_cluster: str) -> ServiceError:
    """A write on a global namespace's standby cluster (FAILED_PRECONDITION)."""
    return FailedPrecondition(
        f"Namespace: {namespace} is active in cluster: {active_cluster}, while current cluster "
        f"{current_cluster} is a standby cluster.",
        details_pb.NamespaceNotActiveFailure(
            namespace=namespace, current_cluster=current_cluster, active_cluster=active_cluster
        ),
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


def workflow_already_started(
    message: str, request_id: str, run_id: str, first_run_id: str = ""
) -> AlreadyExists:
    return AlreadyExists(
        message,
        details_pb.WorkflowExecutionAlreadyStartedFailure(
            start_request_id=request_id, run_id=run_id, first_execution_run_id=first_run_id
        ),
    )


def workflow_completed() -> NotFound:
    return NotFound("workflow execution already completed")


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


class MultiOperationAborted(Aborted):
    """An operation of a multi-operation call that did not run because another one failed."""

    def __init__(self) -> None:
        super().__init__("Operation was aborted.", failure_pb.MultiOperationExecutionAborted())


def operation_aborted() -> MultiOperationAborted:
    return MultiOperationAborted()


class MultiOperationFailed(ServiceError):
    """A multi-operation call (Update-with-Start) failed: one status per operation, in order
    (None: that operation succeeded). The call answers with the code of the first operation that
    really failed (neither succeeded nor aborted), as Temporal does, so that callers see
    ALREADY_EXISTS, INVALID_ARGUMENT, UNAVAILABLE… and retry only what is retryable; ABORTED
    only when every failure is an abort."""

    def __init__(self, operations: Sequence[ServiceError | None]) -> None:
        failure = details_pb.MultiOperationExecutionFailure()
        code: grpc.StatusCode | None = None
        for error in operations:
            status = failure.statuses.add()
            if error is None:
                continue  # OK, no message
            status.code = error.code.value[0]
            status.message = error.message
            if error.details is not None:
                status.details.add().Pack(error.details)
            if code is None and not isinstance(error, MultiOperationAborted):
                code = error.code
        super().__init__("Update-with-Start could not be executed.", failure)
        self.code = code or grpc.StatusCode.ABORTED
        self.operations = list(operations)


def multi_operation_failed(
    start: ServiceError | None, update: ServiceError | None
) -> MultiOperationFailed:
    """Update-with-Start failed: each operation's error (`operation_aborted()` for one that did
    not run, None for one that succeeded)."""
    return MultiOperationFailed([start, update])


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
