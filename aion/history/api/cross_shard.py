"""Operations a process runs on its own shards for another process (see `aion.cluster`).

A poller on one process may take a task whose execution lives on another: recording the task
as started happens on the shard's owner. Transfer tasks reach other shards the same way.
Schedules start and watch their workflows through these operations too; the polls of other
processes' pollers are in `task_polls`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion.common.codec import pack, unpack
from aion.history.api import (
    activity_tasks,
    run_outcome,
    start_workflow,
    workflow_tasks,
)
from aion.history.engine import HistoryEngine
from aion.history.ports import Op
from aion.persistence import QueueTask


async def record_workflow_task_started(
    engine: HistoryEngine, task: QueueTask, identity: str, poll_request_id: str
) -> rr.PollWorkflowTaskQueueResponse:
    """Start a polled workflow task on its execution's shard, wherever that is."""
    if task.shard_id in engine.shards:
        return await workflow_tasks.record_workflow_task_started(
            engine, task, identity, poll_request_id
        )
    result = await engine.call(
        task.shard_id, "record_workflow_task_started", _poll_args(task, identity, poll_request_id)
    )
    return unpack(rr.PollWorkflowTaskQueueResponse, result["response"])


async def record_activity_task_started(
    engine: HistoryEngine, task: QueueTask, identity: str, poll_request_id: str
) -> rr.PollActivityTaskQueueResponse:
    """Start a polled activity task on its execution's shard, wherever that is."""
    if task.shard_id in engine.shards:
        ns = engine.namespaces.by_id(task.namespace_id)
        return await activity_tasks.record_activity_task_started(
            engine, ns, task, identity, poll_request_id
        )
    result = await engine.call(
        task.shard_id, "record_activity_task_started", _poll_args(task, identity, poll_request_id)
    )
    return unpack(rr.PollActivityTaskQueueResponse, result["response"])


def _poll_args(task: QueueTask, identity: str, poll_request_id: str) -> dict[str, Any]:
    return {"task": dataclasses.asdict(task), "identity": identity, "request_id": poll_request_id}


async def _workflow_task_started_op(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    response = await workflow_tasks.record_workflow_task_started(
        engine, QueueTask(**args["task"]), args["identity"], args["request_id"]
    )
    return {"response": pack(response)}


async def _activity_task_started_op(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    task = QueueTask(**args["task"])
    ns = engine.namespaces.by_id(task.namespace_id)
    response = await activity_tasks.record_activity_task_started(
        engine, ns, task, args["identity"], args["request_id"]
    )
    return {"response": pack(response)}


async def _start_workflow_op(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    """A schedule's start, on the workflow's shard."""
    ns = engine.namespaces.by_id(args["namespace_id"])
    request = unpack(rr.StartWorkflowExecutionRequest, args["request"])
    response = await start_workflow.start_workflow(engine, ns, request)
    return {"run_id": response.run_id}


# With the transfer tasks' operations (`aion.history.tasks.transfer.OPS`), what the engine runs
# for other processes.
OPS: dict[str, Op] = {
    "record_workflow_task_started": _workflow_task_started_op,
    "record_activity_task_started": _activity_task_started_op,
    "start_workflow": _start_workflow_op,
    "run_outcome": run_outcome.run_outcome,
}
