"""Temporal's checks on a StartBatchOperation request, with its error texts."""

from __future__ import annotations

from temporalio.api.enums.v1 import batch_operation_pb2, reset_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors

BatchType = batch_operation_pb2.BatchOperationType

# The operation field of the request (its oneof) and the type Describe / List report.
OPERATION_TYPES: dict[str, int] = {
    "termination_operation": BatchType.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW,
    "cancellation_operation": BatchType.BATCH_OPERATION_TYPE_CANCEL_WORKFLOW,
    "signal_operation": BatchType.BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW,
    "deletion_operation": BatchType.BATCH_OPERATION_TYPE_DELETE_WORKFLOW,
    "reset_operation": BatchType.BATCH_OPERATION_TYPE_RESET_WORKFLOW,
    "update_workflow_options_operation": (
        BatchType.BATCH_OPERATION_TYPE_UPDATE_WORKFLOW_EXECUTION_OPTIONS
    ),
    "unpause_activities_operation": BatchType.BATCH_OPERATION_TYPE_UNPAUSE_ACTIVITY,
    "reset_activities_operation": BatchType.BATCH_OPERATION_TYPE_RESET_ACTIVITY,
    "update_activity_options_operation": BatchType.BATCH_OPERATION_TYPE_UPDATE_ACTIVITY_OPTIONS,
}
# Operations that only make sense on running workflows: their query is narrowed to them.
ON_RUNNING = frozenset(
    {
        "termination_operation",
        "cancellation_operation",
        "signal_operation",
        "update_workflow_options_operation",
        "unpause_activities_operation",
        "reset_activities_operation",
        "update_activity_options_operation",
    }
)
REQUIRED = (
    "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR "
    "Executions OR TargetExecutions)"
)
ACTIVITY_FILTER = "Either activity type must be set, or match all should be set to true"


def operation_of(request: rr.StartBatchOperationRequest) -> str:
    """The name of the request's operation field ("" when none is set)."""
    return request.WhichOneof("operation") or ""


def validate_start(request: rr.StartBatchOperationRequest) -> None:
    """INVALID_ARGUMENT as Temporal's frontend answers a malformed request."""
    selectors = sum(
        1
        for present in (
            request.visibility_query,
            len(request.executions),
            len(request.target_executions),
        )
        if present
    )
    operation = operation_of(request)
    if not operation or not request.reason or not request.namespace or selectors == 0:
        raise errors.InvalidArgument(REQUIRED)
    if not request.job_id:
        raise errors.InvalidArgument("JobId is not set on request.")
    if selectors > 1:
        raise errors.InvalidArgument(
            "visibility query, executions, and target executions are mutually exclusive"
        )
    if operation not in OPERATION_TYPES:  # standalone activities: Aion has none
        go_name = "".join(part.capitalize() for part in operation.split("_"))
        raise errors.InvalidArgument(
            f"The operation type *workflowservice.StartBatchOperationRequest_{go_name} is not "
            "supported for this namespace"
        )
    _validate_operation(request, operation)


def _validate_operation(request: rr.StartBatchOperationRequest, operation: str) -> None:
    if operation == "signal_operation" and not request.signal_operation.signal:
        raise errors.InvalidArgument("must provide signal name")
    if operation == "update_workflow_options_operation":
        op = request.update_workflow_options_operation
        if not op.HasField("workflow_execution_options"):
            raise errors.InvalidArgument("must provide UpdateOptions")
        if not op.HasField("update_mask"):
            raise errors.InvalidArgument("must provide UpdateMask")
    if operation == "reset_operation":
        reset = request.reset_operation
        if reset.HasField("options"):
            if reset.options.WhichOneof("target") is None:
                raise errors.InvalidArgument("batch reset missing target")
        elif reset.reset_type == reset_pb2.RESET_TYPE_UNSPECIFIED or (
            reset.reset_type not in reset_pb2.ResetType.values()
        ):
            name = reset_pb2.ResetType.Name(reset.reset_type).removeprefix("RESET_TYPE_")
            raise errors.InvalidArgument(f"unknown batch reset type {name.capitalize()}")
    if operation == "unpause_activities_operation":
        unpause = request.unpause_activities_operation
        which = unpause.WhichOneof("activity")
        if which is None:
            raise errors.InvalidArgument("activity filter must be set")
        if (which == "type" and not unpause.type) or (
            which == "match_all" and not unpause.match_all
        ):
            raise errors.InvalidArgument(ACTIVITY_FILTER)
    if operation == "reset_activities_operation":
        reset_activities = request.reset_activities_operation
        which = reset_activities.WhichOneof("activity")
        if which is None:
            raise errors.InvalidArgument("must provide ActivityType or MatchAll")
        if (which == "type" and not reset_activities.type) or (
            which == "match_all" and not reset_activities.match_all
        ):
            raise errors.InvalidArgument(ACTIVITY_FILTER)
    if operation == "update_activity_options_operation":
        update = request.update_activity_options_operation
        if update.HasField("activity_options") and update.restore_original:
            raise errors.InvalidArgument("cannot set both activity options and restore original")
        if not update.HasField("activity_options") and not update.restore_original:
            raise errors.InvalidArgument(
                "Either activity type must be set, or restore original should be set to true"
            )
        which = update.WhichOneof("activity")
        if (which == "type" and not update.type) or (which == "match_all" and not update.match_all):
            raise errors.InvalidArgument(ACTIVITY_FILTER)


def adjusted_query(request: rr.StartBatchOperationRequest) -> str:
    """The query the job selects its workflows by: the request's, narrowed to running (or
    paused) workflows for the operations that only act on those, as Temporal does."""
    query = request.visibility_query
    if operation_of(request) == "unpause_activities_operation":
        unpause = request.unpause_activities_operation
        if unpause.WhichOneof("activity") == "type":
            escaped = f"property:activityType={unpause.type}".replace("'", "\\'")
            query = f"TemporalPauseInfo = '{escaped}'"
    if query and operation_of(request) in ON_RUNNING:
        return f"({query}) AND (ExecutionStatus='Running' OR ExecutionStatus='Paused')"
    return query
