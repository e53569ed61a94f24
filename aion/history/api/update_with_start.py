"""ExecuteMultiOperation [Start, Update]: update the running workflow, or start it with the update.

A new run is committed with the update already admitted, so its first workflow task carries the
update. An id whose running workflow is kept (USE_EXISTING) gets the update like any other.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api import start_workflow, update_workflow
from aion.history.engine import HistoryEngine
from aion.namespaces import Namespace
from aion.persistence import ConditionFailedError

Status = workflow_pb2.WorkflowExecutionStatus
Response = rr.ExecuteMultiOperationResponse.Response


async def update_with_start(
    engine: HistoryEngine,
    ns: Namespace,
    start: rr.StartWorkflowExecutionRequest,
    update: rr.UpdateWorkflowExecutionRequest,
    deadline_s: float,
) -> rr.ExecuteMultiOperationResponse:
    try:
        current = await engine.current_execution(ns.id, start.workflow_id)
    except errors.NotFound:
        current = None
    try:
        existing = None
        if current is not None:
            existing = await start_workflow.existing_run_answer(engine, ns, start, current)
        if existing is None:
            ms = start_workflow.new_run(engine, ns, start)
            admitted = ms.updates.admit(update.request)
            await engine.create_execution(ms, current.run_id if current else None)
    except ConditionFailedError:
        error = errors.Unavailable("concurrent start of the same workflow id; retry")
        raise errors.multi_operation_failed(error, None) from None
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(e, None) from None
    if existing is not None:  # kept running (USE_EXISTING) or this start's own retry
        update.workflow_execution.run_id = existing.run_id
        try:
            updated = await update_workflow.update_workflow(engine, ns, update, deadline_s)
        except errors.ServiceError as e:
            raise errors.multi_operation_failed(None, e) from None
        return _response(existing, updated)
    key = (ms.s.namespace_id, ms.s.workflow_id, ms.s.run_id)
    started = rr.StartWorkflowExecutionResponse(
        run_id=ms.s.run_id, started=True, status=Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    )
    try:
        status = await update_workflow.wait_for_stage(
            engine,
            key,
            admitted,
            update.wait_policy.lifecycle_stage,
            min(update_workflow.LONG_POLL_S, deadline_s),
            deadline_s,
        )
    except update_workflow.UpdateAborted:
        status = update_workflow.ADMITTED, None  # the caller asks again
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(None, e) from None
    updated = update_workflow.update_response(key, update.request.meta.update_id, status)
    return _response(started, updated)


def _response(
    started: rr.StartWorkflowExecutionResponse, updated: rr.UpdateWorkflowExecutionResponse
) -> rr.ExecuteMultiOperationResponse:
    return rr.ExecuteMultiOperationResponse(
        responses=[Response(start_workflow=started), Response(update_workflow=updated)]
    )
