"""ExecuteMultiOperation [Start, Update]: update the running workflow, or start it with the update.

What happens depends on the workflow id's current run, in Temporal's order:

1. the current run (running or closed) holds a *completed* update with this update id: answer
   with its outcome, whatever the conflict and reuse policies say;
2. the current run is running and this start is a retry of the one that started it (same request
   id), or it already has an update with this id (admitted or accepted), or the conflict policy is
   USE_EXISTING: the update goes to that run (attaching to the existing update if there is one);
3. otherwise a new run is started (conflict policy FAIL refuses a running id, TERMINATE_EXISTING
   terminates it first; a closed id follows the reuse policy), committed with the update already
   admitted so that its first workflow task carries the update.

A failure answers with one status per operation (errors.MultiOperationFailed): the failed
operation's error, "aborted" for the other one, or OK for a start that did happen.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api import start_workflow, update_workflow
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.state.updates import UpdateAborted, aborted_by_close
from aion.namespaces import Namespace
from aion.persistence import ConditionFailedError, CurrentExecution

Status = workflow_pb2.WorkflowExecutionStatus
Conflict = workflow_pb2.WorkflowIdConflictPolicy
Response = rr.ExecuteMultiOperationResponse.Response
RUNNING = Status.WORKFLOW_EXECUTION_STATUS_RUNNING


async def update_with_start(
    engine: HistoryEngine,
    ns: Namespace,
    start: rr.StartWorkflowExecutionRequest,
    update: rr.UpdateWorkflowExecutionRequest,
    deadline_s: float,
) -> rr.ExecuteMultiOperationResponse:
    try:
        return await _update_with_start(engine, ns, start, update, deadline_s)
    except _ClosedUnderUpdate:
        pass
    # The update went to a running workflow that closed (or continued as new) before accepting
    # it. Update-with-Start can start a new run, so it is tried once more, from the top; if that
    # happens again, the update's status becomes ABORTED (retryable) instead of NOT_FOUND.
    try:
        return await _update_with_start(engine, ns, start, update, deadline_s)
    except _ClosedUnderUpdate as e:
        raise errors.multi_operation_failed(
            errors.operation_aborted(), errors.Aborted(e.error.message)
        ) from None


class _ClosedUnderUpdate(Exception):
    def __init__(self, error: errors.ServiceError) -> None:
        super().__init__(error.message)
        self.error = error


async def _update_with_start(
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
    except errors.ShardNotOwned:
        raise
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(e, errors.operation_aborted()) from None
    if current is not None:
        answer = await _on_current_run(engine, ns, start, update, current, deadline_s)
        if answer is not None:
            return answer
    return await _start_and_update(engine, ns, start, update, current, deadline_s)


async def _on_current_run(
    engine: HistoryEngine,
    ns: Namespace,
    start: rr.StartWorkflowExecutionRequest,
    update: rr.UpdateWorkflowExecutionRequest,
    current: CurrentExecution,
    deadline_s: float,
) -> rr.ExecuteMultiOperationResponse | None:
    """The answer when the update belongs to the current run (steps 1 and 2), else None."""
    key: ExecutionKey = (ns.id, start.workflow_id, current.run_id)
    update_id = update.request.meta.update_id
    try:
        ms = await engine.get_execution(key)
    except errors.NotFound:
        return None  # the run is gone: start a new one
    except errors.ShardNotOwned:
        raise
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(e, errors.operation_aborted()) from None
    record = ms.s.updates.get(update_id)
    if record is not None and record.completed_event_id:
        started = _existing(key, ms.s.status)
        try:
            status = await update_workflow.wait_for_stage(
                engine, key, record, update_workflow.COMPLETED, 0.0, deadline_s
            )
        except errors.ShardNotOwned:
            raise
        except errors.ServiceError as e:
            raise errors.multi_operation_failed(errors.operation_aborted(), e) from None
        return _response(started, update_workflow.update_response(key, update_id, status))
    if not ms.running:
        return None
    attach = (
        (start.request_id and start.request_id == ms.s.start_request_id)
        or update_id in ms.updates.in_flight
        or record is not None
        or start.workflow_id_conflict_policy == Conflict.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
    )
    if not attach:
        return None
    request = rr.UpdateWorkflowExecutionRequest()
    request.CopyFrom(update)
    request.workflow_execution.run_id = current.run_id
    try:
        updated = await update_workflow.update_workflow(engine, ns, request, deadline_s)
    except errors.ShardNotOwned:
        raise
    except errors.ServiceError as e:
        if _aborted_by_close(e):
            raise _ClosedUnderUpdate(e) from None
        raise errors.multi_operation_failed(errors.operation_aborted(), e) from None
    return _response(_existing(key, RUNNING), updated)


async def _start_and_update(
    engine: HistoryEngine,
    ns: Namespace,
    start: rr.StartWorkflowExecutionRequest,
    update: rr.UpdateWorkflowExecutionRequest,
    current: CurrentExecution | None,
    deadline_s: float,
) -> rr.ExecuteMultiOperationResponse:
    """Step 3: a new run that starts with the update admitted."""
    try:
        start_workflow.check_start_limits(engine, start)
        existing = None
        if current is not None:
            existing = await start_workflow.existing_run_answer(engine, ns, start, current)
        if existing is not None:
            # The id changed hands between the look above and here (a concurrent start): the
            # caller retries from the top, as Temporal asks it to.
            raise errors.Unavailable("Workflow was not started: the workflow id is in use; retry")
        ms = start_workflow.new_run(engine, ns, start)
    except errors.ShardNotOwned:
        raise
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(e, errors.operation_aborted()) from None
    try:
        admitted = ms.updates.admit(update.request)
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(errors.operation_aborted(), e) from None
    try:
        await engine.create_execution(ms, current.run_id if current else None)
    except ConditionFailedError:
        error = errors.Unavailable("concurrent start of the same workflow id; retry")
        raise errors.multi_operation_failed(error, errors.operation_aborted()) from None
    except errors.ShardNotOwned:
        raise
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(e, errors.operation_aborted()) from None
    key = (ms.s.namespace_id, ms.s.workflow_id, ms.s.run_id)
    started = rr.StartWorkflowExecutionResponse(run_id=ms.s.run_id, started=True, status=RUNNING)
    try:
        status = await update_workflow.wait_for_stage(
            engine,
            key,
            admitted,
            update.wait_policy.lifecycle_stage,
            min(update_workflow.LONG_POLL_S, deadline_s),
            deadline_s,
        )
    except UpdateAborted:
        status = update_workflow.ADMITTED, None  # the caller asks again
    except errors.ServiceError as e:
        raise errors.multi_operation_failed(None, e) from None  # the start did happen
    updated = update_workflow.update_response(key, update.request.meta.update_id, status)
    return _response(started, updated)


def _existing(key: ExecutionKey, status: int) -> rr.StartWorkflowExecutionResponse:
    return rr.StartWorkflowExecutionResponse(
        run_id=key[2],
        started=False,
        status=status,  # type: ignore[arg-type]
    )


def _aborted_by_close(error: errors.ServiceError) -> bool:
    """The run closed (completed, or continued as new) before it accepted the update."""
    return isinstance(error, errors.NotFound) and error.message in _CLOSED_UNDER_UPDATE


_CLOSED_UNDER_UPDATE = frozenset((aborted_by_close().message, errors.workflow_completed().message))


def _response(
    started: rr.StartWorkflowExecutionResponse, updated: rr.UpdateWorkflowExecutionResponse
) -> rr.ExecuteMultiOperationResponse:
    return rr.ExecuteMultiOperationResponse(
        responses=[Response(start_workflow=started), Response(update_workflow=updated)]
    )
