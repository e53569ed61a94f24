"""RespondWorkflowTaskCompleted: apply the worker's commands and schedule what follows."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import failed_cause_pb2 as Cause
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api.activity_tasks import activity_task_response
from aion.history.api.workflow_tasks import workflow_task_response
from aion.history.commands import CommandContext, CommandError, handle_commands
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import ActivityInfo, MutableState, WorkflowTaskInfo
from aion.history.timeutil import ns_of
from aion.history.tokens import TaskToken
from aion.namespaces import Namespace

MAX_EAGER_ACTIVITIES = 3
PollActivity = rr.PollActivityTaskQueueResponse
INLINE_TASK_REQUEST_ID = "request-from-RespondWorkflowTaskCompleted"


def current_workflow_task(ms: MutableState, token: TaskToken) -> WorkflowTaskInfo:
    """The started workflow task the token names, or NOT_FOUND as Temporal answers."""
    wt = ms.s.workflow_task
    if not ms.running:
        raise errors.workflow_completed()
    if (
        wt is None
        or not wt.started_event_id
        or wt.scheduled_event_id != token.scheduled_event_id
        or wt.stamp != token.stamp
    ):
        raise errors.NotFound("Workflow task not found.")
    return wt


async def respond_workflow_task_completed(
    engine: HistoryEngine, req: rr.RespondWorkflowTaskCompletedRequest
) -> rr.RespondWorkflowTaskCompletedResponse:
    token = TaskToken.decode(req.task_token)
    key = (token.namespace_id, token.workflow_id, token.run_id)

    def complete(ms: MutableState) -> tuple[WorkflowTaskInfo | None, list[PollActivity]]:
        current_workflow_task(ms, token)
        had_buffered = bool(ms.s.buffered_events)
        fields: dict[str, object] = {"binary_checksum": req.binary_checksum}
        if req.HasField("sdk_metadata"):
            fields["sdk_metadata"] = req.sdk_metadata
        if req.HasField("metering_metadata"):
            fields["metering_metadata"] = req.metering_metadata
        if req.HasField("worker_version_stamp"):
            fields["worker_version"] = req.worker_version_stamp
        completed = ms.complete_workflow_task(req.identity, **fields)
        if req.HasField("sticky_attributes") and req.sticky_attributes.worker_task_queue.name:
            ms.s.sticky_task_queue = req.sticky_attributes.worker_task_queue.name
            ms.s.sticky_schedule_to_start_ns = ns_of(
                req.sticky_attributes.schedule_to_start_timeout
            )
        else:
            ms.clear_sticky()
        ctx = CommandContext(
            ms, completed.event_id, req.identity, had_buffered, engine.namespaces.id_of
        )
        ctx.validate_search_attributes = engine.namespaces.search_attributes.validate
        handle_commands(ctx, list(req.commands))
        if not ms.running:
            return None, []
        eager = _start_eager_activities(
            ms, engine.namespaces.by_id(ms.s.namespace_id), ctx.eager_activities, req.identity
        )
        needs_task = (
            req.force_create_new_workflow_task
            or had_buffered
            or bool(ms.s.buffered_events)
            or bool(ctx.canceled_before_start)
        )
        if not needs_task:
            return None, eager
        wt = ms.schedule_workflow_task()
        if req.return_new_workflow_task:
            _take_queue_task(ms, "workflow", wt.scheduled_event_id)  # started inline
            ms.start_workflow_task(INLINE_TASK_REQUEST_ID, req.identity)
            return wt, eager
        return None, eager

    try:
        new_task, eager = await engine.update_execution(key, complete)
    except CommandError as e:
        await _fail_for_bad_command(engine, key, token, req.identity, e)
        raise errors.InvalidArgument(e.message) from None
    response = rr.RespondWorkflowTaskCompletedResponse(activity_tasks=eager)
    if new_task is not None:
        ms = await engine.get_execution(key)
        response.workflow_task.CopyFrom(
            await workflow_task_response(
                engine, key, ms, new_task, ms.s.last_completed_wt_started_event_id, sticky=True
            )
        )
    return response


def _take_queue_task(ms: MutableState, kind: str, scheduled_event_id: int) -> None:
    """Drop a task this transition created: it is handed to the worker in the response."""
    ms.mutation.queue_tasks = [
        t
        for t in ms.mutation.queue_tasks
        if not (t.kind == kind and t.scheduled_event_id == scheduled_event_id)
    ]


def _start_eager_activities(
    ms: MutableState, ns: Namespace, requested: list[ActivityInfo], identity: str
) -> list[PollActivity]:
    """Activities the worker asked to run itself (same task queue) start in this transition."""
    tasks = []
    for ai in requested[:MAX_EAGER_ACTIVITIES]:
        if ms.s.activities.get(ai.scheduled_event_id) is not ai or ai.started_time_ns:
            continue
        _take_queue_task(ms, "activity", ai.scheduled_event_id)
        ms.start_activity(ai, str(uuid.uuid4()), identity)
        tasks.append(activity_task_response(ms, ns, ai))
    return tasks


async def _fail_for_bad_command(
    engine: HistoryEngine,
    key: tuple[str, str, str],
    token: TaskToken,
    identity: str,
    error: CommandError,
) -> None:
    """The commands were discarded; record the failed task and schedule the next attempt."""

    def fail(ms: MutableState) -> None:
        wt = current_workflow_task(ms, token)
        if wt.attempt > 1 and error.cause != Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND:
            return  # keeps failing: let it time out and retry later
        failure = failure_pb.Failure(
            message=error.message, server_failure_info=failure_pb.ServerFailureInfo()
        )
        ms.fail_workflow_task(error.cause, failure, identity)
        ms.schedule_workflow_task()

    await engine.update_execution(key, fail)
