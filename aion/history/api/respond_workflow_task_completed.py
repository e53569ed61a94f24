"""RespondWorkflowTaskCompleted: apply the worker's commands and schedule what follows."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field

from temporalio.api.deployment.v1 import message_pb2 as deployment_pb
from temporalio.api.enums.v1 import deployment_pb2 as deployment_enums
from temporalio.api.enums.v1 import failed_cause_pb2 as Cause
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.protocol.v1.message_pb2 import Message
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.durations import capped_ns
from aion.common.tokens import TaskToken
from aion.history.api.activity_tasks import activity_task_response
from aion.history.api.workflow_tasks import workflow_task_response
from aion.history.commands import CommandContext, CommandError, handle_commands
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import (
    HISTORY_SERVICE,
    ActivityInfo,
    MutableState,
    WorkflowTaskInfo,
)
from aion.history.protocol import Messages
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


@dataclass
class _Completion:
    new_task: WorkflowTaskInfo | None = None
    messages: list[Message] = field(default_factory=list)
    eager: list[PollActivity] = field(default_factory=list)
    reset_history_event_id: int = 0


async def respond_workflow_task_completed(
    engine: HistoryEngine, req: rr.RespondWorkflowTaskCompletedRequest
) -> rr.RespondWorkflowTaskCompletedResponse:
    token = TaskToken.decode(req.task_token)
    key = (token.namespace_id, token.workflow_id, token.run_id)

    def complete(ms: MutableState) -> _Completion:
        wt = current_workflow_task(ms, token)
        had_buffered = bool(ms.s.buffered_events)
        messages = Messages(ms, list(req.messages))
        heartbeat = req.force_create_new_workflow_task
        _apply_sticky_attributes(ms, req)
        if (
            wt.speculative
            and not req.commands
            and not had_buffered
            and not heartbeat
            and messages.only_rejections
        ):
            return _discard(ms, wt, messages, req)
        fields: dict[str, object] = {"binary_checksum": req.binary_checksum}
        if req.HasField("sdk_metadata"):
            fields["sdk_metadata"] = req.sdk_metadata
        if req.HasField("metering_metadata"):
            fields["metering_metadata"] = req.metering_metadata
        if req.HasField("worker_version_stamp"):
            fields["worker_version"] = req.worker_version_stamp
        fields.update(_deployment_fields(engine, ms, req))
        completed = ms.workflow_task.complete(req.identity, **fields)
        stamp = req.worker_version_stamp if req.HasField("worker_version_stamp") else None
        ms.versioning.record_build_ids(stamp)
        ctx = CommandContext(
            ms, completed.event_id, req.identity, had_buffered, engine.namespaces.id_of
        )
        registry = engine.namespaces.search_attributes
        ctx.validate_search_attributes = functools.partial(registry.validate, sizes=False)
        ctx.validate_search_attribute_sizes = registry.validate_size
        ctx.apply_message = messages.apply
        handle_commands(ctx, list(req.commands))
        if not ms.running:
            return _Completion()
        messages.apply_remaining()
        if not heartbeat:
            messages.reject_unprocessed(wt)
        result = _Completion()
        result.eager = _start_eager_activities(
            ms, engine.namespaces.by_id(ms.s.namespace_id), ctx.eager_activities, req.identity
        )
        needs_task = (
            heartbeat
            or had_buffered
            or bool(ms.s.buffered_events)
            or bool(ctx.canceled_before_start)
        )
        if needs_task or ms.updates.admitted():
            speculative = not needs_task and req.return_new_workflow_task
            _next_workflow_task(ms, req, result, speculative)
        return result

    try:
        result = await engine.update_execution(key, complete)
    except CommandError as e:
        await _fail_for_bad_command(engine, key, token, req.identity, e)
        raise errors.InvalidArgument(e.message) from None
    response = rr.RespondWorkflowTaskCompletedResponse(
        activity_tasks=result.eager, reset_history_event_id=result.reset_history_event_id
    )
    if result.new_task is not None:
        ms = await engine.get_execution(key)
        response.workflow_task.CopyFrom(
            await workflow_task_response(
                engine,
                key,
                ms,
                result.new_task,
                ms.s.last_completed_wt_started_event_id,
                sticky=True,
                messages=result.messages,
            )
        )
    return response


def _apply_sticky_attributes(ms: MutableState, req: rr.RespondWorkflowTaskCompletedRequest) -> None:
    if req.HasField("sticky_attributes") and req.sticky_attributes.worker_task_queue.name:
        ms.workflow_task.set_sticky(
            req.sticky_attributes.worker_task_queue.name,
            capped_ns(req.sticky_attributes.schedule_to_start_timeout),
        )
    else:
        ms.workflow_task.clear_sticky()


def _discard(
    ms: MutableState,
    wt: WorkflowTaskInfo,
    messages: Messages,
    req: rr.RespondWorkflowTaskCompletedRequest,
) -> _Completion:
    """A speculative task that only rejected updates vanishes; the worker rolls its history back."""
    messages.apply_remaining()
    messages.reject_unprocessed(wt)
    ms.workflow_task.discard_speculative()
    result = _Completion(reset_history_event_id=ms.s.last_completed_wt_started_event_id)
    if ms.updates.admitted():
        _next_workflow_task(ms, req, result, speculative=True)
    return result


def _next_workflow_task(
    ms: MutableState,
    req: rr.RespondWorkflowTaskCompletedRequest,
    result: _Completion,
    speculative: bool,
) -> None:
    """Schedule the next task; a worker that asked for it gets it started in the response."""
    wt = ms.workflow_task.schedule(speculative=speculative)
    if req.return_new_workflow_task:
        _take_queue_task(ms, "workflow", wt.scheduled_event_id)  # started inline
        ms.workflow_task.start(INLINE_TASK_REQUEST_ID, req.identity)
        result.new_task = wt
        result.messages = ms.updates.deliver(wt)


def _take_queue_task(ms: MutableState, kind: str, scheduled_event_id: int) -> None:
    """Drop a task this transition created: it is handed to the worker in the response."""
    ms.tasks.drop_queue_task(kind, scheduled_event_id)


def _start_eager_activities(
    ms: MutableState, ns: Namespace, requested: list[ActivityInfo], identity: str
) -> list[PollActivity]:
    """Activities the worker asked to run itself (same task queue) start in this transition."""
    tasks = []
    for ai in requested[:MAX_EAGER_ACTIVITIES]:
        if ms.s.activities.get(ai.scheduled_event_id) is not ai or ai.started_time_ns:
            continue
        _take_queue_task(ms, "activity", ai.scheduled_event_id)
        ms.activities.start(ai, str(uuid.uuid4()), identity)
        tasks.append(activity_task_response(ms, ns, ai))
    return tasks


async def _fail_for_bad_command(
    engine: HistoryEngine,
    key: tuple[str, str, str],
    token: TaskToken,
    identity: str,
    error: CommandError,
) -> None:
    """The commands were discarded; record the failed task and schedule the next attempt, or
    terminate the workflow when the error says so (a payload past its size limit)."""

    def fail(ms: MutableState) -> None:
        wt = current_workflow_task(ms, token)
        if wt.attempt > 1 and error.cause != Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND:
            return  # keeps failing: let it time out and retry later
        failure = failure_pb.Failure(
            message=error.message, server_failure_info=failure_pb.ServerFailureInfo()
        )
        ms.workflow_task.fail(error.cause, failure, identity)
        if error.terminate:
            ms.terminate(error.message, None, HISTORY_SERVICE)
        else:
            ms.workflow_task.schedule()

    await engine.update_execution(key, fail)


def _deployment_fields(
    engine: HistoryEngine, ms: MutableState, req: rr.RespondWorkflowTaskCompletedRequest
) -> dict[str, object]:
    """The worker deployment the task completed on, for its event and the execution."""
    options = req.deployment_options
    versioned = options.worker_versioning_mode == deployment_enums.WORKER_VERSIONING_MODE_VERSIONED
    if req.versioning_behavior and not versioned:
        raise errors.InvalidArgument(
            "versioning behavior cannot be specified without deployment options being set "
            "with versioned mode"
        )
    if not req.HasField("deployment_options"):
        return {}
    deployment = engine.deployments.find(ms.s.namespace_id, options.deployment_name)
    ms.versioning.record_deployment(
        options, req.versioning_behavior, deployment.revision if deployment else 0
    )
    fields: dict[str, object] = {"worker_deployment_name": options.deployment_name}
    if versioned:
        fields["versioning_behavior"] = req.versioning_behavior
        fields["deployment_version"] = deployment_pb.WorkerDeploymentVersion(
            deployment_name=options.deployment_name, build_id=options.build_id
        )
    return fields
