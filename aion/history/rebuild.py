"""Rebuilding an execution's pending state from its history events (used by reset)."""

from __future__ import annotations

from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.common.timeutil import ns_of
from aion.history.state.execution import (
    ActivityInfo,
    ChildInfo,
    ExecutionState,
    TimerInfo,
    UpdateRecord,
    WorkflowTaskInfo,
    external_request,
)

ET = event_type_pb2.EventType


def replay(state: ExecutionState, events: list[history_pb.HistoryEvent]) -> None:
    """Apply `events` (a history prefix) to a fresh `state`: pending work, signals, attributes."""
    for event in events:
        _apply(state, event)
        state.next_event_id = event.event_id + 1
        state.last_event_task_id = event.task_id


def _apply(s: ExecutionState, e: history_pb.HistoryEvent) -> None:
    t = e.event_type
    time_ns = ns_of(e.event_time)
    if t == ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        scheduled = e.workflow_task_scheduled_event_attributes
        s.workflow_task = WorkflowTaskInfo(
            scheduled_event_id=e.event_id,
            attempt=scheduled.attempt or 1,
            task_queue=s.task_queue,
            sticky=False,
            scheduled_time_ns=time_ns,
            timeout_ns=ns_of(scheduled.start_to_close_timeout),
        )
    elif t == ET.EVENT_TYPE_WORKFLOW_TASK_STARTED and s.workflow_task is not None:
        started = e.workflow_task_started_event_attributes
        s.workflow_task.started_event_id = e.event_id
        s.workflow_task.started_time_ns = time_ns
        s.workflow_task.request_id = started.request_id
        s.workflow_task.identity = started.identity
    elif t == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        s.last_completed_wt_started_event_id = (
            e.workflow_task_completed_event_attributes.started_event_id
        )
        s.workflow_task = None
    elif t in (ET.EVENT_TYPE_WORKFLOW_TASK_FAILED, ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT):
        s.workflow_task = None
    elif t == ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        activity = e.activity_task_scheduled_event_attributes
        s.activities[e.event_id] = ActivityInfo(
            scheduled_event_id=e.event_id,
            activity_id=activity.activity_id,
            activity_type=activity.activity_type.name,
            task_queue=activity.task_queue.name,
            schedule_to_close_ns=ns_of(activity.schedule_to_close_timeout),
            schedule_to_start_ns=ns_of(activity.schedule_to_start_timeout),
            start_to_close_ns=ns_of(activity.start_to_close_timeout),
            heartbeat_ns=ns_of(activity.heartbeat_timeout),
            scheduled_time_ns=time_ns,
            retry_policy=activity.retry_policy if activity.HasField("retry_policy") else None,
            input=activity.input if activity.HasField("input") else None,
            header=activity.header if activity.HasField("header") else None,
        )
        s.activity_ids[activity.activity_id] = e.event_id
    elif t == ET.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
        cancel = e.activity_task_cancel_requested_event_attributes
        ai = s.activities.get(cancel.scheduled_event_id)
        if ai is not None:
            ai.cancel_requested = True
            ai.cancel_requested_event_id = e.event_id
    elif t in _ACTIVITY_CLOSED:
        scheduled_id = getattr(e, _ACTIVITY_CLOSED[t]).scheduled_event_id
        ai = s.activities.pop(scheduled_id, None)
        if ai is not None:
            s.activity_ids.pop(ai.activity_id, None)
    elif t == ET.EVENT_TYPE_TIMER_STARTED:
        timer = e.timer_started_event_attributes
        s.timers[timer.timer_id] = TimerInfo(
            timer.timer_id, e.event_id, time_ns + ns_of(timer.start_to_fire_timeout)
        )
    elif t == ET.EVENT_TYPE_TIMER_FIRED:
        s.timers.pop(e.timer_fired_event_attributes.timer_id, None)
    elif t == ET.EVENT_TYPE_TIMER_CANCELED:
        s.timers.pop(e.timer_canceled_event_attributes.timer_id, None)
    elif t == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        s.cancel_requested = True
    elif t == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
        update_id = e.workflow_execution_update_admitted_event_attributes.request.meta.update_id
        s.updates[update_id] = UpdateRecord(admitted_event_id=e.event_id)
    elif t == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        update_id = e.workflow_execution_update_accepted_event_attributes.protocol_instance_id
        s.updates.setdefault(update_id, UpdateRecord()).accepted_event_id = e.event_id
    elif t == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
        update_id = e.workflow_execution_update_completed_event_attributes.meta.update_id
        if update_id in s.updates:
            s.updates[update_id].completed_event_id = e.event_id
    elif t == ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes
        if s.search_attributes is not None:
            for key, value in fields.indexed_fields.items():
                s.search_attributes.indexed_fields[key].CopyFrom(value)
        else:
            s.search_attributes = fields
    elif t == ET.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
        memo = e.workflow_properties_modified_event_attributes.upserted_memo
        if s.memo is not None:
            for key, value in memo.fields.items():
                s.memo.fields[key].CopyFrom(value)
        else:
            s.memo = memo
    elif t == ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        initiated = e.start_child_workflow_execution_initiated_event_attributes
        s.children[e.event_id] = ChildInfo(
            initiated_event_id=e.event_id,
            namespace=initiated.namespace,
            namespace_id=initiated.namespace_id,
            workflow_id=initiated.workflow_id,
            workflow_type=initiated.workflow_type.name,
            parent_close_policy=initiated.parent_close_policy,
            create_request_id=f"{s.run_id}:{e.event_id}",
        )
    elif t == ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
        child_started = e.child_workflow_execution_started_event_attributes
        child = s.children.get(child_started.initiated_event_id)
        if child is not None:
            child.run_id = child_started.workflow_execution.run_id
            child.started_event_id = e.event_id
    elif t in _CHILD_CLOSED:
        s.children.pop(getattr(e, _CHILD_CLOSED[t]).initiated_event_id, None)
    elif t == ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
        signal = e.signal_external_workflow_execution_initiated_event_attributes
        s.signal_requests[e.event_id] = external_request(s.run_id, e.event_id, signal)
    elif t == ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED:
        s.signal_requests.pop(
            e.external_workflow_execution_signaled_event_attributes.initiated_event_id, None
        )
    elif t == ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
        s.signal_requests.pop(
            e.signal_external_workflow_execution_failed_event_attributes.initiated_event_id, None
        )
    elif t == ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
        cancel_ext = e.request_cancel_external_workflow_execution_initiated_event_attributes
        s.cancel_requests[e.event_id] = external_request(s.run_id, e.event_id, cancel_ext)
    elif t == ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        s.cancel_requests.pop(
            e.external_workflow_execution_cancel_requested_event_attributes.initiated_event_id, None
        )
    elif t == ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
        s.cancel_requests.pop(
            e.request_cancel_external_workflow_execution_failed_event_attributes.initiated_event_id,
            None,
        )


_ACTIVITY_CLOSED = {
    ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    ET.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    ET.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}
_CHILD_CLOSED = {
    ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: "start_child_workflow_execution_failed_event_attributes",
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "child_workflow_execution_completed_event_attributes",
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "child_workflow_execution_failed_event_attributes",
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "child_workflow_execution_canceled_event_attributes",
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "child_workflow_execution_terminated_event_attributes",
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "child_workflow_execution_timed_out_event_attributes",
}
