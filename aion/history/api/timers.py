"""Durable timer tasks firing: user timers, activity and workflow task timeouts, retries, run timeouts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import workflow_pb2

from aion import errors
from aion.history import continuation
from aion.history.api import transfer
from aion.history.api.activities import ensure_workflow_task, time_out_attempt
from aion.history.mutable_state import (
    ACTIVITY_RETRY,
    ACTIVITY_TIMEOUT,
    USER_TIMER,
    WORKFLOW_BACKOFF,
    WORKFLOW_EXECUTION_TIMEOUT,
    WORKFLOW_RUN_TIMEOUT,
    WORKFLOW_TASK_TIMEOUT,
    MutableState,
)
from aion.persistence import TimerTask

if TYPE_CHECKING:
    from aion.history.engine import HistoryEngine

TimeoutType = workflow_pb2.TimeoutType


async def process_timer_task(engine: HistoryEngine, task: TimerTask) -> None:
    data = json.loads(task.data) if task.data else {}
    transfer_handler = transfer.HANDLERS.get(task.kind)
    if transfer_handler is not None:
        await transfer_handler(engine, task, data)
        return
    handler = HANDLERS[task.kind]

    def fire(ms: MutableState) -> None:
        ms.tasks.timer_task_done(task.task_id)
        if ms.running:
            handler(ms, data)

    try:
        await engine.update_execution((task.namespace_id, task.workflow_id, task.run_id), fire)
    except errors.NotFound:
        await engine.store.delete_timer_tasks(task.shard_id, [task.task_id])


def _user_timer(ms: MutableState, data: dict[str, object]) -> None:
    timer = ms.s.timers.get(str(data["id"]))
    if timer is None or timer.started_event_id != data["started"]:
        return
    ms.timers.fire(timer)
    ensure_workflow_task(ms)


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
