"""The `action` metric: the billable actions of a WorkflowService call, named as the reference
names them (`grpc_StartWorkflowExecution`, `command_StartTimer`, `activity_retry`…)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from temporalio.api.enums.v1 import command_type_pb2
from temporalio.api.update.v1 import message_pb2 as update_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

# Calls that are an action each time they succeed.
GRPC_ACTIONS = frozenset(
    {
        "RecordActivityTaskHeartbeat",
        "RecordActivityTaskHeartbeatById",
        "ResetWorkflowExecution",
        "SignalWorkflowExecution",
        "SignalWithStartWorkflowExecution",
        "CreateSchedule",
        "UpdateSchedule",
        "DeleteSchedule",
        "PatchSchedule",
        "UpdateWorkflowExecutionOptions",
        "PauseWorkflowExecution",
        "UnpauseWorkflowExecution",
    }
)
_CT = command_type_pb2.CommandType
COMMAND_ACTIONS = {
    value: "command_" + "".join(part.capitalize() for part in _CT.Name(value)[13:].split("_"))
    for value in (
        _CT.COMMAND_TYPE_RECORD_MARKER,
        _CT.COMMAND_TYPE_START_TIMER,
        _CT.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        _CT.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        _CT.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
        _CT.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        _CT.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES,
        _CT.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
        _CT.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION,
        _CT.COMMAND_TYPE_REQUEST_CANCEL_NEXUS_OPERATION,
    )
}
_UPDATE_MESSAGES = {
    update_pb.Acceptance.DESCRIPTOR.full_name: "message_UpdateWorkflowExecution:Acceptance",
    update_pb.Rejection.DESCRIPTOR.full_name: "message_UpdateWorkflowExecution:Rejection",
}
METADATA_QUERY = "__temporal_workflow_metadata"


def actions(operation: str, request: Any, response: Any) -> Iterator[str]:
    """The action types one successful call counts."""
    if operation in GRPC_ACTIONS:
        yield f"grpc_{operation}"
    elif operation == "StartWorkflowExecution":
        if response.started:
            yield "grpc_StartWorkflowExecution"
    elif operation == "ExecuteMultiOperation":
        if response.responses and response.responses[0].start_workflow.started:
            yield "grpc_ExecuteMultiOperation"
    elif operation == "QueryWorkflow":
        if request.query.query_type != METADATA_QUERY:
            yield "grpc_QueryWorkflow"
    elif operation == "PollActivityTaskQueue":
        if response.task_token and response.attempt > 1:
            yield "activity_retry"
    elif operation == "RespondWorkflowTaskCompleted":
        yield from _workflow_task_actions(request)


def _workflow_task_actions(request: rr.RespondWorkflowTaskCompletedRequest) -> Iterator[str]:
    markers = False
    for command in request.commands:
        name = COMMAND_ACTIONS.get(command.command_type)
        if name is None:
            continue
        yield name
        if command.command_type == _CT.COMMAND_TYPE_RECORD_MARKER:
            markers = True
        elif command.command_type == _CT.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION:
            yield f"{name}_Extra"  # a child counts twice
    if markers:
        yield "command_BatchMarkers"
    for message in request.messages:
        name = _UPDATE_MESSAGES.get(message.body.TypeName())
        if name is not None:
            yield name
