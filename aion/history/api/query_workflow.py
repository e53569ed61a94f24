"""QueryWorkflow: hand a query task to a worker and wait for its answer."""

from __future__ import annotations

import asyncio

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import query_pb2, task_queue_pb2, workflow_pb2
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.query.v1 import message_pb2 as query_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.tokens import TaskToken
from aion.history.engine import HistoryEngine
from aion.matching import QueryTask
from aion.namespaces import Namespace

Status = workflow_pb2.WorkflowExecutionStatus
Reject = query_pb2.QueryRejectCondition


class QueryFailed(errors.ServiceError):
    code = errors.InvalidArgument.code


async def query_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.QueryWorkflowRequest, deadline_s: float
) -> rr.QueryWorkflowResponse:
    key = await engine.resolve(ns.id, req.execution.workflow_id, req.execution.run_id)
    ms = await engine.get_execution(key)
    status = ms.s.status
    condition = req.query_reject_condition
    if (condition == Reject.QUERY_REJECT_CONDITION_NOT_OPEN and not ms.running) or (
        condition == Reject.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY
        and status
        not in (
            Status.WORKFLOW_EXECUTION_STATUS_RUNNING,
            Status.WORKFLOW_EXECUTION_STATUS_COMPLETED,
        )
    ):
        return rr.QueryWorkflowResponse(query_rejected=query_pb.QueryRejected(status=status))  # type: ignore[arg-type]
    # Strong consistency, as Temporal: while a workflow task is pending (including the first one),
    # events the worker has not seen yet precede this query; wait for the task to finish.
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + deadline_s
    until = loop.time() + max(1.0, deadline_s - 1.0)
    while ms.running and ms.workflow_task.pending and (left := until - loop.time()) > 0:
        await engine.wait_for_change(key, left)
        ms = await engine.get_execution(key)
    if ms.s.last_completed_wt_started_event_id == 0 and ms.running:
        raise errors.FailedPrecondition(
            "Cannot query workflow before its first workflow task completes.",
            details_pb.WorkflowNotReadyFailure(),
        )
    sticky = ms.s.sticky_task_queue
    queue = sticky if sticky and engine.matching.has_live_poller(ns.id, sticky) else ms.s.task_queue
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    task = QueryTask(
        key[0], key[1], key[2], req.query, future, version=ms.versioning.pinned_version
    )
    engine.pending_queries[task.task_id] = task
    engine.matching.add_query(ns.id, queue, task)  # pollers of other processes poll here too
    try:
        request = await asyncio.wait_for(future, max(deadline_at - loop.time() - 0.5, 0.1))
    except TimeoutError:
        raise errors.DeadlineExceeded("context deadline exceeded") from None
    finally:
        engine.pending_queries.pop(task.task_id, None)
        engine.matching.remove_query(ns.id, queue, task)
    assert isinstance(request, rr.RespondQueryTaskCompletedRequest)
    if request.completed_type == query_pb2.QUERY_RESULT_TYPE_ANSWERED:
        return rr.QueryWorkflowResponse(query_result=request.query_result)
    details = details_pb.QueryFailedFailure()
    if request.HasField("failure"):
        details.failure.CopyFrom(request.failure)
    raise QueryFailed(request.error_message, details)


async def query_task_response(
    engine: HistoryEngine, task: QueryTask, sticky_poll: bool
) -> rr.PollWorkflowTaskQueueResponse:
    """What a polling worker receives for a query: full history unless it holds the workflow."""
    key = (task.namespace_id, task.workflow_id, task.run_id)
    token = TaskToken(key[0], key[1], key[2], 0, 0, query_task_id=task.task_id)
    ms = await engine.get_execution(key)
    events: list[history_pb.HistoryEvent] = []
    if not sticky_poll:
        events = await engine.read_history(key, 1, ms.s.next_event_id)
    return rr.PollWorkflowTaskQueueResponse(
        task_token=token.encode(),
        workflow_execution=common_pb.WorkflowExecution(workflow_id=key[1], run_id=key[2]),
        workflow_type=common_pb.WorkflowType(name=ms.s.workflow_type),
        previous_started_event_id=ms.s.last_completed_wt_started_event_id,
        started_event_id=ms.s.last_completed_wt_started_event_id,
        history=history_pb.History(events=events),
        query=task.query,
        workflow_execution_task_queue=taskqueue_pb.TaskQueue(
            name=ms.s.task_queue, kind=task_queue_pb2.TASK_QUEUE_KIND_NORMAL
        ),
    )


def respond_query_task_completed(
    engine: HistoryEngine, req: rr.RespondQueryTaskCompletedRequest
) -> None:
    token = TaskToken.decode(req.task_token)
    task = engine.pending_queries.get(token.query_task_id)
    if task is None:
        raise errors.NotFound("query task not found, or already expired")
    if not task.result.done():
        task.result.set_result(req)
