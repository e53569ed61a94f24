"""One batch operation on one workflow: the request Temporal's batcher sends for it, and the
named operation ("batch_apply") that runs it on the process owning the workflow's shard.

Each is safe to repeat after a crash, so a job resumed from its last saved position acts on no
workflow twice: a terminated run answers "already completed" (NotFound, which the batcher counts
as done, as Temporal's does), a signal and a reset carry a request id derived from the job and
the run, a cancel request is recorded once, and deleting, unpausing or updating options again
changes nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.codec import pack, unpack
from aion.history.api import (
    delete_workflow,
    request_cancel_workflow,
    reset_activity,
    reset_workflow,
    signal_workflow,
    terminate_workflow,
    unpause_activity,
    update_activity_options,
    update_workflow_options,
)
from aion.history.engine import HistoryEngine
from aion.history.ports import Op

ET = event_type_pb2.EventType
# Who terminates and cancels: Temporal's batcher does it through its worker's SDK client, whose
# identity is `pid@host@`.
BATCHER_IDENTITY = f"{os.getpid()}@{socket.gethostname()}@"
MAX_EVENTS = 1_000_000

Apply = Callable[[HistoryEngine, Any, Any], Awaitable[Any]]
# kind: (request type, the history operation)
KINDS: dict[str, tuple[type[Message], Apply]] = {
    "terminate": (
        rr.TerminateWorkflowExecutionRequest,
        terminate_workflow.terminate_workflow,
    ),
    "cancel": (
        rr.RequestCancelWorkflowExecutionRequest,
        request_cancel_workflow.request_cancel_workflow,
    ),
    "signal": (rr.SignalWorkflowExecutionRequest, signal_workflow.signal_workflow),
    "delete": (rr.DeleteWorkflowExecutionRequest, delete_workflow.delete_workflow),
    "reset": (rr.ResetWorkflowExecutionRequest, reset_workflow.reset_workflow),
    "update_options": (
        rr.UpdateWorkflowExecutionOptionsRequest,
        update_workflow_options.update_workflow_options,
    ),
    "unpause_activities": (rr.UnpauseActivityRequest, unpause_activity.unpause_activity),
    "reset_activities": (rr.ResetActivityRequest, reset_activity.reset_activity),
    "update_activity_options": (
        rr.UpdateActivityOptionsRequest,
        update_activity_options.update_activity_options,
    ),
}


def request_id(job_id: str, *parts: str) -> str:
    """A request id fixed by the job and the target, as Temporal's batcher derives it."""
    return str(uuid.uuid5(uuid.UUID(int=0), ":".join((job_id, *parts))))


def build(
    batch: rr.StartBatchOperationRequest, workflow_id: str, run_id: str
) -> tuple[str, Message, dict[str, Any]]:
    """The operation kind, its request on one workflow, and extra arguments (a reset's target)."""
    namespace, job_id = batch.namespace, batch.job_id
    execution = common_pb.WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
    which = batch.WhichOneof("operation")
    extra: dict[str, Any] = {}
    if which == "termination_operation":
        return (
            "terminate",
            rr.TerminateWorkflowExecutionRequest(
                namespace=namespace,
                workflow_execution=execution,
                reason=batch.reason,
                identity=BATCHER_IDENTITY,
            ),
            extra,
        )
    if which == "cancellation_operation":
        return (
            "cancel",
            rr.RequestCancelWorkflowExecutionRequest(
                namespace=namespace,
                workflow_execution=execution,
                identity=BATCHER_IDENTITY,
                request_id=request_id(job_id, "cancel", workflow_id, run_id),
            ),
            extra,
        )
    if which == "signal_operation":
        op = batch.signal_operation
        signal = rr.SignalWorkflowExecutionRequest(
            namespace=namespace,
            workflow_execution=execution,
            signal_name=op.signal,
            identity=op.identity,
            request_id=request_id(job_id, "signal", workflow_id, run_id, op.signal),
        )
        if op.HasField("input"):
            signal.input.CopyFrom(op.input)
        if op.HasField("header"):
            signal.header.CopyFrom(op.header)
        return "signal", signal, extra
    if which == "deletion_operation":
        return (
            "delete",
            rr.DeleteWorkflowExecutionRequest(namespace=namespace, workflow_execution=execution),
            extra,
        )
    if which == "reset_operation":
        reset = batch.reset_operation
        request = rr.ResetWorkflowExecutionRequest(
            namespace=namespace,
            workflow_execution=execution,
            reason=batch.reason,
            request_id=request_id(job_id, "reset", workflow_id, run_id),
            identity=reset.identity,
        )
        request.post_reset_operations.extend(reset.post_reset_operations)
        if reset.HasField("options"):
            options = reset.options
            request.reset_reapply_type = options.reset_reapply_type
            request.reset_reapply_exclude_types.extend(options.reset_reapply_exclude_types)
            target = options.WhichOneof("target") or ""
            extra["target"] = target
            if target == "workflow_task_id":
                extra["event_id"] = options.workflow_task_id
            elif target == "build_id":
                extra["build_id"] = options.build_id
                extra["current_run_only"] = options.current_run_only
        else:
            request.reset_reapply_type = reset.reset_reapply_type
            extra["target"] = {1: "first_workflow_task", 2: "last_workflow_task"}.get(
                reset.reset_type, ""
            )
        return "reset", request, extra
    if which == "update_workflow_options_operation":
        update = batch.update_workflow_options_operation
        return (
            "update_options",
            rr.UpdateWorkflowExecutionOptionsRequest(
                namespace=namespace,
                workflow_execution=execution,
                workflow_execution_options=update.workflow_execution_options,
                update_mask=update.update_mask,
                identity=update.identity,
            ),
            extra,
        )
    if which == "unpause_activities_operation":
        unpause = batch.unpause_activities_operation
        unpause_request = rr.UnpauseActivityRequest(
            namespace=namespace,
            execution=execution,
            identity=unpause.identity,
            reset_attempts=unpause.reset_attempts,
            reset_heartbeat=unpause.reset_heartbeat,
            jitter=unpause.jitter,
        )
        if unpause.WhichOneof("activity") == "type":
            unpause_request.type = unpause.type
        else:
            unpause_request.unpause_all = True
        return "unpause_activities", unpause_request, extra
    if which == "reset_activities_operation":
        ra = batch.reset_activities_operation
        reset_request = rr.ResetActivityRequest(
            namespace=namespace,
            execution=execution,
            identity=ra.identity,
            reset_heartbeat=ra.reset_heartbeat,
            keep_paused=ra.keep_paused,
            jitter=ra.jitter,
            restore_original_options=ra.restore_original_options,
        )
        if ra.WhichOneof("activity") == "type":
            reset_request.type = ra.type
        else:
            reset_request.match_all = True
        return "reset_activities", reset_request, extra
    if which == "update_activity_options_operation":
        ua = batch.update_activity_options_operation
        options_request = rr.UpdateActivityOptionsRequest(
            namespace=namespace,
            execution=execution,
            identity=ua.identity,
            update_mask=ua.update_mask,
            restore_original=ua.restore_original,
        )
        if ua.HasField("activity_options"):
            options_request.activity_options.CopyFrom(ua.activity_options)
        if ua.WhichOneof("activity") == "type":
            options_request.type = ua.type
        else:
            options_request.match_all = True
        return "update_activity_options", options_request, extra
    raise errors.InvalidArgument(f"unknown batch type: {which}")


async def apply(
    engine: HistoryEngine, namespace_id: str, kind: str, request: Message, extra: dict[str, Any]
) -> None:
    """Run the operation on the workflow's shard, here or on the process that owns it."""
    field = (
        "workflow_execution"
        if "workflow_execution" in request.DESCRIPTOR.fields_by_name
        else "execution"
    )
    execution = getattr(request, field)
    await engine.call(
        engine.shard_id_of(namespace_id, execution.workflow_id),
        "batch_apply",
        {"namespace_id": namespace_id, "kind": kind, "request": pack(request), "extra": extra},
    )


async def _apply_op(engine: Any, args: dict[str, Any]) -> dict[str, Any]:
    cls, operation = KINDS[args["kind"]]
    request = unpack(cls, args["request"])
    ns = engine.namespaces.by_id(args["namespace_id"])
    if isinstance(request, rr.ResetWorkflowExecutionRequest):
        await _find_reset_point(engine, ns.id, request, args["extra"])
    await operation(engine, ns, request)
    return {}


OPS: dict[str, Op] = {"batch_apply": _apply_op}


async def _find_reset_point(
    engine: HistoryEngine, namespace_id: str, request: rr.ResetWorkflowExecutionRequest, extra: Any
) -> None:
    """Fill in the workflow task a batch reset goes back to, as Temporal's batcher finds it."""
    target = extra.get("target", "")
    if target == "workflow_task_id":
        request.workflow_task_finish_event_id = int(extra["event_id"])
        return
    execution = request.workflow_execution
    key = await engine.resolve(namespace_id, execution.workflow_id, execution.run_id)
    if target == "build_id":
        ms = await engine.get_execution(key)
        for point in ms.s.reset_points:
            if point.build_id == extra["build_id"] and point.resettable:
                request.workflow_task_finish_event_id = point.first_workflow_task_completed_id
                return
        raise errors.InvalidArgument(f"Can't find reset point for {extra['build_id']}")
    events = await engine.read_history(key, 1, MAX_EVENTS)
    if target == "last_workflow_task":
        events = list(reversed(events))
    elif target != "first_workflow_task":
        raise errors.InvalidArgument(f"provided reset target ({target}) is not supported.")
    found = 0
    for event in events:
        if event.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            found = event.event_id
            break
        if event.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and (
            target == "last_workflow_task" or not found
        ):
            found = event.event_id + 1
    if not found:
        raise errors.InvalidArgument("unable to find any scheduled or completed task")
    request.workflow_task_finish_event_id = found
