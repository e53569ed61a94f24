"""Durable timer tasks firing: user timers, activity and workflow task timeouts, retries, run
timeouts, and the deletion of a closed run when its retention ends."""

from __future__ import annotations

from temporalio.api.enums.v1 import workflow_pb2

from aion.history import continuation
from aion.history.api.activities import ensure_workflow_task, time_out_attempt
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import (
    ACTIVITY_RETRY,
    ACTIVITY_TIMEOUT,
    DELETE_EXECUTION,
    USER_TIMER,
    WORKFLOW_BACKOFF,
    WORKFLOW_EXECUTION_TIMEOUT,
    WORKFLOW_RUN_TIMEOUT,
    WORKFLOW_TASK_TIMEOUT,
    ActivityInfo,
    MutableState,
)
from aion.persistence import TimerTask

TimeoutType = workflow_pb2.TimeoutType


async def fire(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    """Apply a due timer (user timer, timeout, retry, backoff) to its running execution."""
    handler = HANDLERS[task.kind]

    def apply(ms: MutableState) -> None:
        if ms.running:
            handler(ms, {**data, "fire_time_ns": task.fire_time_ns})

    await engine.finish_timer_task(task, apply)


def _user_timer(ms: MutableState, data: dict[str, object]) -> None:
    timer = ms.s.timers.get(str(data["id"]))
    if timer is None or timer.started_event_id != data["started"]:
        return
    ms.timers.fire(timer)
    ensure_workflow_task(ms)


def _later_deadline(ai: ActivityInfo, timeout_type: int, fire_time_ns: int) -> bool:
    """Whether the activity's timeout of this type now falls after this timer's time."""
    if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
        start, timeout = ai.scheduled_time_ns, ai.schedule_to_close_ns
    elif timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
        start, timeout = ai.attempt_scheduled_time_ns, ai.schedule_to_start_ns
    elif timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
        start, timeout = ai.started_time_ns, ai.start_to_close_ns
    else:
        return False
    return timeout == 0 or start + timeout > fire_time_ns


def _activity_timeout(ms: MutableState, data: dict[str, object]) -> None:
    ai = ms.s.activities.get(int(data["id"]))  # type: ignore[call-overload]
    if ai is None or ai.paused:
        return  # unpausing re-arms the timeouts
    timeout_type = int(data["type"])  # type: ignore[call-overload]
    if timeout_type != TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE and data["stamp"] != ai.stamp:
        return  # belongs to an earlier attempt
    if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START and ai.started_time_ns:
        return
    if (
        timeout_type
        in (
            TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
            TimeoutType.TIMEOUT_TYPE_HEARTBEAT,
        )
        and not ai.started_time_ns
    ):
        return
    fire_time_ns = data.get("fire_time_ns")
    if isinstance(fire_time_ns, int) and _later_deadline(ai, timeout_type, fire_time_ns):
        return  # UpdateActivityOptions lengthened the timeout: its own timer is armed
    if timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT:
        deadline = max(ai.last_heartbeat_ns, ai.started_time_ns) + ai.heartbeat_ns
        if deadline > ms.now():
            ms.activities.rearm_heartbeat_timeout(ai, deadline)  # beats arrived since
            return
    if time_out_attempt(ms, ai, timeout_type):
        ensure_workflow_task(ms)


def _activity_retry(ms: MutableState, data: dict[str, object]) -> None:
    ai = ms.s.activities.get(int(data["id"]))  # type: ignore[call-overload]
    if ai is None or ai.stamp != data["stamp"] or ai.started_time_ns:
        return
    ms.activities.dispatch_retry(ai)


def _workflow_task_timeout(ms: MutableState, data: dict[str, object]) -> None:
    wt = ms.s.workflow_task
    if wt is None or wt.stamp != data["stamp"]:
        return
    timeout_type = int(data["type"])  # type: ignore[call-overload]
    if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START and wt.started_event_id:
        return
    ms.workflow_task.time_out(timeout_type)
    ms.workflow_task.schedule()


def _workflow_timeout(ms: MutableState, data: dict[str, object]) -> None:
    continuation.time_out(ms)


def _workflow_backoff(ms: MutableState, data: dict[str, object]) -> None:
    if ms.s.workflow_task is None and ms.s.last_completed_wt_started_event_id == 0:
        ms.workflow_task.schedule()


HANDLERS = {
    USER_TIMER: _user_timer,
    ACTIVITY_TIMEOUT: _activity_timeout,
    ACTIVITY_RETRY: _activity_retry,
    WORKFLOW_TASK_TIMEOUT: _workflow_task_timeout,
    WORKFLOW_RUN_TIMEOUT: _workflow_timeout,
    WORKFLOW_EXECUTION_TIMEOUT: _workflow_timeout,
    WORKFLOW_BACKOFF: _workflow_backoff,
}


async def _delete_execution(
    engine: HistoryEngine, task: TimerTask, data: dict[str, object]
) -> None:
    await engine.delete_execution((task.namespace_id, task.workflow_id, task.run_id), task)


TASK_HANDLERS = {**{kind: fire for kind in HANDLERS}, DELETE_EXECUTION: _delete_execution}
