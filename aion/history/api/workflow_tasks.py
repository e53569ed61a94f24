"""Workflow tasks: record a polled task as started, and build the poll response."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import task_queue_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.protocol.v1.message_pb2 import Message
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import ts
from aion.common.tokens import TaskToken
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.mutable_state import MutableState, WorkflowTaskInfo
from aion.persistence import QueueTask

MAX_HISTORY_EVENTS_PER_RESPONSE = 100_000


class StaleTaskError(errors.NotFound):
    """The polled task no longer matches the execution (already started, completed or gone)."""

    def __init__(self) -> None:
        super().__init__("Workflow task not found.")


async def record_workflow_task_started(
    engine: HistoryEngine, task: QueueTask, identity: str, poll_request_id: str
) -> rr.PollWorkflowTaskQueueResponse:
    """Mark the task started (writing WorkflowTaskStarted) and return what the worker needs."""
    key = (task.namespace_id, task.workflow_id, task.run_id)

    def record(ms: MutableState) -> tuple[WorkflowTaskInfo, int, bool, list[Message]]:
        ms.tasks.queue_task_done(task.task_id)
        wt = ms.s.workflow_task
        # The stamp names the task; a retried task's scheduled id may have moved on.
        if not ms.running or wt is None or wt.stamp != task.stamp or wt.started_event_id:
            raise StaleTaskError()
        sticky = task.task_queue == ms.s.sticky_task_queue and bool(ms.s.sticky_task_queue)
        ms.workflow_task.start(poll_request_id, identity)
        messages = ms.updates.deliver(wt)
        return wt, ms.s.last_completed_wt_started_event_id, sticky, messages

    try:
        wt, previous_started, sticky, messages = await engine.update_execution(key, record)
    except StaleTaskError:
        await engine.drop_task(task)
        raise
    ms = await engine.get_execution(key)
    return await workflow_task_response(engine, key, ms, wt, previous_started, sticky, messages)


async def workflow_task_response(
    engine: HistoryEngine,
    key: ExecutionKey,
    ms: MutableState,
    wt: WorkflowTaskInfo,
    previous_started: int,
    sticky: bool,
    messages: Sequence[Message] = (),
) -> rr.PollWorkflowTaskQueueResponse:
    """A poll response for a started workflow task: full history, or the tail for sticky."""
    first = previous_started + 1 if sticky and previous_started else 1
    events = await engine.read_history(key, first, MAX_HISTORY_EVENTS_PER_RESPONSE)
    events += ms.workflow_task.transient_events()
    token = TaskToken(
        namespace_id=key[0],
        workflow_id=key[1],
        run_id=key[2],
        scheduled_event_id=wt.scheduled_event_id,
        attempt=wt.attempt,
        stamp=wt.stamp,
    )
    return rr.PollWorkflowTaskQueueResponse(
        task_token=token.encode(),
        workflow_execution=common_pb.WorkflowExecution(workflow_id=key[1], run_id=key[2]),
        workflow_type=common_pb.WorkflowType(name=ms.s.workflow_type),
        previous_started_event_id=previous_started,
        started_event_id=wt.started_event_id,
        attempt=wt.attempt,
        history=history_pb.History(events=events),
        workflow_execution_task_queue=taskqueue_pb.TaskQueue(
            name=ms.s.task_queue, kind=task_queue_pb2.TASK_QUEUE_KIND_NORMAL
        ),
        scheduled_time=ts(wt.scheduled_time_ns),
        started_time=ts(wt.started_time_ns),
        messages=messages,
    )
