"""Shared activity outcomes: retry an attempt or close the activity with its final event."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb

from aion import errors
from aion.history import retry
from aion.history.failures import timeout_failure
from aion.history.mutable_state import ActivityInfo, MutableState

RetryState = workflow_pb2.RetryState

TIMEOUT_NAMES: dict[int, str] = {
    workflow_pb2.TIMEOUT_TYPE_START_TO_CLOSE: "StartToClose",
    workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_START: "ScheduleToStart",
    workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE: "ScheduleToClose",
    workflow_pb2.TIMEOUT_TYPE_HEARTBEAT: "Heartbeat",
}
NO_TIME_FOR_RETRY = (
    "Not enough time to schedule next retry before activity ScheduleToClose timeout, "
    "giving up retrying"
)


def _retry_or_state(ms: MutableState, ai: ActivityInfo, failure: failure_pb.Failure) -> int:
    if ai.cancel_requested:
        return RetryState.RETRY_STATE_CANCEL_REQUESTED
    if ai.paused and retry.failure_allows_retry(ai.retry_policy, failure):
        ms.activities.retry(ai, failure, 0)  # waits, paused, for UnpauseActivity
        return RetryState.RETRY_STATE_IN_PROGRESS
    expiration = ai.scheduled_time_ns + ai.schedule_to_close_ns if ai.schedule_to_close_ns else 0
    delay, state = retry.next_backoff(ai.retry_policy, ai.attempt, failure, ms.now(), expiration)
    if delay >= 0:
        ms.activities.retry(ai, failure, delay)
    return state


def fail_attempt(
    ms: MutableState, ai: ActivityInfo, failure: failure_pb.Failure, identity: str
) -> bool:
    """A worker reported failure: retry, or close the activity. True when it closed."""
    state = _retry_or_state(ms, ai, failure)
    if state == RetryState.RETRY_STATE_IN_PROGRESS:
        return False
    ms.activities.fail(ai, failure, state, identity)
    return True


def time_out_attempt(ms: MutableState, ai: ActivityInfo, timeout_type: int) -> bool:
    """A timeout fired: retry, or close the activity as timed out. True when it closed."""
    failure = timeout_failure(f"activity {TIMEOUT_NAMES[timeout_type]} timeout", timeout_type)
    if timeout_type == workflow_pb2.TIMEOUT_TYPE_HEARTBEAT and ai.heartbeat_details is not None:
        failure.timeout_failure_info.last_heartbeat_details.CopyFrom(ai.heartbeat_details)
    state = _retry_or_state(ms, ai, failure)
    if state == RetryState.RETRY_STATE_IN_PROGRESS:
        return False
    if (
        state == RetryState.RETRY_STATE_TIMEOUT
        and timeout_type != workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_START
    ):
        failure = timeout_failure(NO_TIME_FOR_RETRY, workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)
    if ai.last_failure is not None:
        failure.cause.CopyFrom(ai.last_failure)
    ms.activities.time_out(ai, failure, state)
    return True


def ensure_workflow_task(ms: MutableState) -> None:
    """Something happened the workflow must see: schedule a workflow task unless one is pending."""
    if ms.running and not ms.workflow_task.pending:
        ms.workflow_task.schedule()


ACTIVITY_NOT_FOUND = (
    "Can't find pending activity with such ID. Invalid activityID or activity already completed"
)


def select_activities(ms: MutableState, request: Any) -> list[ActivityInfo]:
    """The pending activities an operator request names: by id, by type, or all of them."""
    if not ms.running:
        raise errors.workflow_completed()
    which = request.WhichOneof("activity")
    if which == "id":
        scheduled_id = ms.s.activity_ids.get(request.id)
        selected = [ms.s.activities[scheduled_id]] if scheduled_id else []
    elif which == "type":
        selected = [ai for ai in ms.s.activities.values() if ai.activity_type == request.type]
    else:
        selected = list(ms.s.activities.values())
    if not selected:
        raise errors.NotFound(ACTIVITY_NOT_FOUND)
    return selected
