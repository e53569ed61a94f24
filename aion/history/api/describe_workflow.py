"""DescribeWorkflowExecution: configuration, status, pending activities and workflow task."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2, task_queue_pb2, workflow_pb2
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import dur, ts
from aion.common.versions import described, dotted_version
from aion.history.api.update_activity_options import current_options
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import ActivityInfo, MutableState
from aion.namespaces import Namespace

ActivityState = workflow_pb2.PendingActivityState
WTState = workflow_pb2.PendingWorkflowTaskState
GO_ZERO_TIME_S = -62135596800  # 0001-01-01T00:00:00Z, Go's zero time


async def describe_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.DescribeWorkflowExecutionRequest
) -> rr.DescribeWorkflowExecutionResponse:
    key = await engine.resolve(ns.id, req.execution.workflow_id, req.execution.run_id)
    ms = await engine.get_execution(key)
    response = describe(ms)
    history = await engine.read_history(key, 1, 1)
    if not history:  # deleted since it was read
        raise errors.workflow_not_found(req.execution.workflow_id, req.execution.run_id)
    started = history[0]
    if started.HasField("user_metadata"):  # the start's summary and details
        response.execution_config.user_metadata.CopyFrom(started.user_metadata)
    return response


def execution_info(ms: MutableState) -> workflow_pb.WorkflowExecutionInfo:
    s = ms.s
    info = workflow_pb.WorkflowExecutionInfo(
        execution=ms.execution(),
        type=common_pb.WorkflowType(name=s.workflow_type),
        start_time=ts(s.start_time_ns),
        status=s.status,  # type: ignore[arg-type]
        history_length=s.next_event_id - 1,
        execution_time=ts(s.execution_time_ns),
        task_queue=s.task_queue,
        first_run_id=s.first_run_id,
        # One state transition per commit of the execution: its row's version counts them.
        state_transition_count=ms.db_version,
        history_size_bytes=s.history_size_bytes,
    )
    if s.parent is not None:
        info.parent_namespace_id = s.parent.namespace_id
        info.parent_execution.workflow_id = s.parent.workflow_id
        info.parent_execution.run_id = s.parent.run_id
    if s.reset_points:
        info.auto_reset_points.points.extend(s.reset_points)
    if s.root_workflow_id:
        info.root_execution.workflow_id = s.root_workflow_id
        info.root_execution.run_id = s.root_run_id
    if s.close_time_ns:
        info.close_time.CopyFrom(ts(s.close_time_ns))
        info.execution_duration.CopyFrom(dur(s.close_time_ns - s.execution_time_ns))
    info.memo.SetInParent()  # present even when empty, as the reference answers
    if s.memo is not None:
        info.memo.CopyFrom(s.memo)
    if s.search_attributes is not None:
        info.search_attributes.CopyFrom(s.search_attributes)
    info.auto_reset_points.SetInParent()
    info.worker_deployment_name = s.worker_deployment_name
    if s.versioning_override is not None:
        info.versioning_info.versioning_override.CopyFrom(described(s.versioning_override))
    if s.deployment_name:
        versioning = info.versioning_info
        versioning.behavior = s.versioning_behavior  # type: ignore[assignment]
        versioning.version = dotted_version(s.deployment_name, s.deployment_build_id)
        versioning.deployment_version.deployment_name = s.deployment_name
        versioning.deployment_version.build_id = s.deployment_build_id
        versioning.revision_number = s.versioning_revision
    return info


def _extended_info(ms: MutableState) -> workflow_pb.WorkflowExecutionExtendedInfo:
    s = ms.s
    extended = workflow_pb.WorkflowExecutionExtendedInfo(
        original_start_time=ts(s.start_time_ns), cancel_requested=s.cancel_requested
    )
    if s.run_timeout_ns:
        extended.run_expiration_time.CopyFrom(ts(s.execution_time_ns + s.run_timeout_ns))
    else:
        extended.run_expiration_time.seconds = GO_ZERO_TIME_S  # as Temporal reports "none"
    if s.expiration_time_ns:
        extended.execution_expiration_time.CopyFrom(ts(s.expiration_time_ns))
    if s.start_request_id:
        started = extended.request_id_infos[s.start_request_id]
        started.event_type = event_type_pb2.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        started.event_id = 1
    return extended


def describe(ms: MutableState) -> rr.DescribeWorkflowExecutionResponse:
    s = ms.s
    response = rr.DescribeWorkflowExecutionResponse(
        execution_config=workflow_pb.WorkflowExecutionConfig(
            task_queue=taskqueue_pb.TaskQueue(
                name=s.task_queue, kind=task_queue_pb2.TASK_QUEUE_KIND_NORMAL
            ),
            default_workflow_task_timeout=dur(s.task_timeout_ns),
        ),
        workflow_execution_info=execution_info(ms),
        pending_activities=[_pending_activity(ai) for ai in s.activities.values()],
        workflow_extended_info=_extended_info(ms),
        pending_children=[
            workflow_pb.PendingChildExecutionInfo(
                workflow_id=child.workflow_id,
                run_id=child.run_id,
                workflow_type_name=child.workflow_type,
                initiated_id=child.initiated_event_id,
                parent_close_policy=child.parent_close_policy,  # type: ignore[arg-type]
            )
            for child in s.children.values()
        ],
    )
    config = response.execution_config
    if s.execution_timeout_ns:
        config.workflow_execution_timeout.CopyFrom(dur(s.execution_timeout_ns))
    if s.run_timeout_ns:
        config.workflow_run_timeout.CopyFrom(dur(s.run_timeout_ns))
    wt = s.workflow_task
    if wt is not None:
        pending = response.pending_workflow_task
        pending.state = (
            WTState.PENDING_WORKFLOW_TASK_STATE_STARTED
            if wt.started_event_id
            else WTState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
        )
        pending.scheduled_time.CopyFrom(ts(wt.scheduled_time_ns))
        pending.original_scheduled_time.CopyFrom(ts(wt.scheduled_time_ns))
        pending.attempt = wt.attempt
        if wt.started_time_ns:
            pending.started_time.CopyFrom(ts(wt.started_time_ns))
    return response


def _pending_activity(ai: ActivityInfo) -> workflow_pb.PendingActivityInfo:
    if ai.cancel_requested:
        state = ActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    elif ai.started_time_ns:
        state = (
            ActivityState.PENDING_ACTIVITY_STATE_PAUSE_REQUESTED
            if ai.paused
            else ActivityState.PENDING_ACTIVITY_STATE_STARTED
        )
    elif ai.paused:
        state = ActivityState.PENDING_ACTIVITY_STATE_PAUSED
    else:
        state = ActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    info = workflow_pb.PendingActivityInfo(
        activity_id=ai.activity_id,
        activity_type=common_pb.ActivityType(name=ai.activity_type),
        state=state,
        attempt=ai.attempt,
        maximum_attempts=ai.retry_policy.maximum_attempts if ai.retry_policy else 0,
        scheduled_time=ts(ai.attempt_scheduled_time_ns),
        last_worker_identity=ai.last_worker_identity,
    )
    if ai.started_time_ns:
        info.last_started_time.CopyFrom(ts(ai.started_time_ns))
    if ai.paused:
        info.paused = True
        info.pause_info.pause_time.CopyFrom(ts(ai.pause_time_ns))
        info.pause_info.manual.identity = ai.pause_identity
        info.pause_info.manual.reason = ai.pause_reason
    if ai.last_heartbeat_ns:
        info.last_heartbeat_time.CopyFrom(ts(ai.last_heartbeat_ns))
    if ai.heartbeat_details is not None:
        info.heartbeat_details.CopyFrom(ai.heartbeat_details)
    if ai.last_failure is not None:
        info.last_failure.CopyFrom(ai.last_failure)
    if ai.schedule_to_close_ns:
        info.expiration_time.CopyFrom(ts(ai.scheduled_time_ns + ai.schedule_to_close_ns))
    info.activity_options.CopyFrom(current_options(ai))
    return info
