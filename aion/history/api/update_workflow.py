"""UpdateWorkflowExecution and PollWorkflowExecutionUpdate: admit an update, wait for a stage.

Admission writes nothing: the update waits in memory for a workflow task to carry it (a
speculative one when none is pending). The caller waits until the stage it asked for, or until
the long-poll interval ends and it is told the stage reached so far (then it asks again).
"""

from __future__ import annotations

import asyncio

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import update_pb2 as update_enums
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.update.v1 import message_pb2 as update_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.api import links
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.mutable_state import MutableState
from aion.history.state.updates import Update, UpdateAborted, UpdateRecord
from aion.namespaces import Namespace

Stage = update_enums.UpdateWorkflowExecutionLifecycleStage
UNSPECIFIED = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_UNSPECIFIED
ADMITTED = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
ACCEPTED = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED
COMPLETED = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
LONG_POLL_S = 20.0  # Temporal's long-poll expiration interval
FAILING_TASK_ATTEMPTS = 3

Found = Update | UpdateRecord
Status = tuple["Stage.ValueType", update_pb.Outcome | None]


async def update_workflow(
    engine: HistoryEngine,
    ns: Namespace,
    req: rr.UpdateWorkflowExecutionRequest,
    deadline_s: float,
) -> rr.UpdateWorkflowExecutionResponse:
    execution = req.workflow_execution
    update_id = req.request.meta.update_id
    stage = req.wait_policy.lifecycle_stage
    loop = asyncio.get_running_loop()
    until = loop.time() + min(LONG_POLL_S, deadline_s)
    while True:
        key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)
        found: Found = await engine.update_execution(key, lambda ms: admit(ms, req))
        try:
            status = await wait_for_stage(
                engine, key, found, stage, until - loop.time(), deadline_s
            )
        except UpdateAborted:
            # Dropped before acceptance (state reloaded, run continued): admit it again.
            if loop.time() < until:
                continue
            status = ADMITTED, None
        response = update_response(key, update_id, status)
        if response.stage >= Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED and not (
            response.outcome.HasField("failure")
        ):
            response.link.CopyFrom(links.to_request(ns.name, key, "", links.UPDATE_ACCEPTED))
        return response


def admit(ms: MutableState, req: rr.UpdateWorkflowExecutionRequest) -> Found:
    """The existing update with this id, or a newly admitted one."""
    if req.first_execution_run_id and req.first_execution_run_id != ms.s.first_run_id:
        raise errors.workflow_not_found()
    found = ms.updates.find(req.request.meta.update_id)
    if found is not None:
        return found
    if not ms.running:
        raise errors.workflow_completed()
    wt = ms.s.workflow_task
    if (wt.attempt if wt else ms.s.next_workflow_task_attempt) >= FAILING_TASK_ATTEMPTS:
        # Updates are applied after the task's events: they cannot fix a failing task.
        raise errors.FailedPrecondition(
            "Unable to perform workflow execution update due to Workflow Task in failed state.",
            details_pb.WorkflowNotReadyFailure(),
        )
    return ms.updates.admit(req.request)


async def poll_update(
    engine: HistoryEngine,
    ns: Namespace,
    req: rr.PollWorkflowExecutionUpdateRequest,
    deadline_s: float,
) -> rr.PollWorkflowExecutionUpdateResponse:
    ref = req.update_ref
    key = await engine.resolve(
        ns.id, ref.workflow_execution.workflow_id, ref.workflow_execution.run_id
    )
    found = await engine.update_execution(key, lambda ms: ms.updates.find(ref.update_id))
    if found is None:
        raise errors.NotFound(f'update "{ref.update_id}" not found')
    timeout = min(LONG_POLL_S, deadline_s)
    try:
        reached, outcome = await wait_for_stage(
            engine, key, found, req.wait_policy.lifecycle_stage, timeout, deadline_s
        )
    except UpdateAborted:
        raise errors.Unavailable("workflow update was aborted") from None
    return rr.PollWorkflowExecutionUpdateResponse(
        update_ref=update_ref(key, ref.update_id), outcome=outcome, stage=reached
    )


def update_ref(key: ExecutionKey, update_id: str) -> update_pb.UpdateRef:
    return update_pb.UpdateRef(
        workflow_execution=common_pb.WorkflowExecution(workflow_id=key[1], run_id=key[2]),
        update_id=update_id,
    )


def update_response(
    key: ExecutionKey, update_id: str, status: Status
) -> rr.UpdateWorkflowExecutionResponse:
    stage, outcome = status
    return rr.UpdateWorkflowExecutionResponse(
        update_ref=update_ref(key, update_id), outcome=outcome, stage=stage
    )


async def wait_for_stage(
    engine: HistoryEngine,
    key: ExecutionKey,
    found: Found,
    stage: int,
    timeout: float,
    deadline_s: float,
) -> Status:
    """Wait until the update reaches `stage`; at `timeout`, the stage reached so far (or, when the
    caller's own deadline, `deadline_s` from the call's start, is shorter than a long poll,
    DEADLINE_EXCEEDED)."""
    if isinstance(found, UpdateRecord):
        return COMPLETED, await _recorded_outcome(engine, key, found)
    update = found
    try:
        if stage == COMPLETED or update.outcome.done():
            return COMPLETED, await asyncio.wait_for(asyncio.shield(update.outcome), timeout)
        if stage == ACCEPTED:
            await asyncio.wait_for(asyncio.shield(update.accepted), timeout)
    except TimeoutError:
        if deadline_s <= LONG_POLL_S:
            raise errors.DeadlineExceeded("context deadline exceeded") from None
    return _reached(update)


def _reached(update: Update) -> Status:
    if update.outcome.done() and update.outcome.exception() is None:
        return COMPLETED, update.outcome.result()
    if update.accepted.done() and update.accepted.exception() is None:
        return ACCEPTED, None
    if update.accepted.done():
        raise update.accepted.exception()  # type: ignore[misc]
    return ADMITTED, None


async def _recorded_outcome(
    engine: HistoryEngine, key: ExecutionKey, record: UpdateRecord
) -> update_pb.Outcome:
    events = await engine.read_history(key, record.completed_event_id, 1)
    if not events:  # the run was deleted since it was read
        raise errors.workflow_not_found(key[1], key[2])
    return events[0].workflow_execution_update_completed_event_attributes.outcome
