"""ResetWorkflowExecution: a new run replaying history up to a workflow task, signals reapplied."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from temporalio.api.enums.v1 import event_type_pb2, failed_cause_pb2, reset_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import HISTORY_SERVICE, ExecutionState, MutableState
from aion.history.rebuild import replay
from aion.ids import uuid7
from aion.namespaces import Namespace
from aion.persistence import CurrentExecution

ET = event_type_pb2.EventType
RESETTER = "history-resetter"
MAX_EVENTS = 1_000_000


async def reset_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.ResetWorkflowExecutionRequest
) -> rr.ResetWorkflowExecutionResponse:
    execution = req.workflow_execution
    key = await engine.resolve(ns.id, execution.workflow_id, execution.run_id)
    base = await engine.get_execution(key)
    finish = req.workflow_task_finish_event_id
    if finish <= 1 or finish >= base.s.next_event_id:
        raise errors.InvalidArgument(
            "Workflow task finish ID must be > 1 && <= workflow last event ID."
        )
    current = await engine.current_execution(ns.id, execution.workflow_id)
    if req.request_id and current.start_request_id == req.request_id:
        return rr.ResetWorkflowExecutionResponse(run_id=current.run_id)  # a retried request
    run_id = await reset_run(
        engine, base, current, finish, req.reason, req.request_id, _reapplies_signals(req)
    )
    return rr.ResetWorkflowExecutionResponse(run_id=run_id)


async def reset_run(
    engine: HistoryEngine,
    base: MutableState,
    current: CurrentExecution,
    finish: int,
    reason: str,
    request_id: str,
    reapply_signals: bool,
    then: Callable[[MutableState], object] | None = None,
) -> str:
    """Reset `base` (a run of the workflow id whose current run is `current`) to the workflow
    task finished by event `finish`: a new run replaying its history up to there, the task
    failed with `reason`, the signals after it re-applied if `reapply_signals`, its next task
    scheduled and `then` applied to it; the current run terminated if it runs. The new run's
    id."""
    key = (base.s.namespace_id, base.s.workflow_id, base.s.run_id)
    history = await engine.read_history(key, 1, MAX_EVENTS)
    prefix = [e for e in history if e.event_id < finish]
    if not prefix:  # the run was deleted since it was read
        raise errors.workflow_not_found(*key[1:])
    started = prefix[0].workflow_execution_started_event_attributes
    run_id = uuid7()
    state = dataclasses.replace(
        ExecutionState(
            namespace_id=base.s.namespace_id,
            namespace=base.s.namespace,
            workflow_id=base.s.workflow_id,
            run_id=run_id,
            workflow_type=base.s.workflow_type,
            task_queue=base.s.task_queue,
            start_time_ns=engine.clock(),
            execution_time_ns=engine.clock(),
            run_timeout_ns=base.s.run_timeout_ns,
            execution_timeout_ns=base.s.execution_timeout_ns,
            task_timeout_ns=base.s.task_timeout_ns,
            start_request_id=request_id or str(uuid.uuid4()),
            first_run_id=base.s.first_run_id,
            failover_version=base.s.failover_version,
        ),
        memo=started.memo if started.HasField("memo") else None,
        search_attributes=started.search_attributes
        if started.HasField("search_attributes")
        else None,
        attempt=base.s.attempt,
        retry_policy=base.s.retry_policy,
        cron_schedule=base.s.cron_schedule,
        expiration_time_ns=base.s.expiration_time_ns,
        parent=base.s.parent,
        root_workflow_id=base.s.root_workflow_id,
        root_run_id=base.s.root_run_id,
        input=base.s.input,
        header=base.s.header,
        reset_points=list(base.s.reset_points),
    )
    replay(state, prefix)
    _check_resettable(state, finish)
    reset = engine.new_mutable_state(state)
    for event in prefix:
        reset.history.copy_event(event)
    reset.workflow_task.restart_for_reset(str(uuid.uuid4()), HISTORY_SERVICE)
    reset.workflow_task.fail(
        failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
        failure_pb.Failure(
            message=reason, reset_workflow_failure_info=failure_pb.ResetWorkflowFailureInfo()
        ),
        HISTORY_SERVICE,
        base_run_id=base.s.run_id,
        new_run_id=run_id,
        fork_event_version=prefix[-1].version,
    )
    if reapply_signals:
        for event in history[finish - 1 :]:
            if event.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                a = event.workflow_execution_signaled_event_attributes
                reset.signal(
                    a.signal_name,
                    a.input if a.HasField("input") else None,
                    a.identity,
                    a.header if a.HasField("header") else None,
                )
    reset.rearm_pending_work()
    reset.workflow_task.schedule_after_reset()
    if then is not None:
        then(reset)

    if current.running:

        def terminate_and_replace(ms: MutableState) -> None:
            if ms.running:
                ms.terminate(reason, None, RESETTER)
            ms.start_next_run(reset)

        await engine.update_execution(key[:2] + (current.run_id,), terminate_and_replace)
    else:
        await engine.create_execution(reset, current.run_id)
    return run_id


def _reapplies_signals(req: rr.ResetWorkflowExecutionRequest) -> bool:
    if req.reset_reapply_type == reset_pb2.RESET_REAPPLY_TYPE_NONE:
        return False
    return reset_pb2.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL not in req.reset_reapply_exclude_types


def _check_resettable(state: ExecutionState, finish: int) -> None:
    if state.workflow_task is None:
        raise errors.InvalidArgument(
            "Can only reset workflow to event ID in range "
            f"[WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: {finish}"
        )
    if state.children:
        raise errors.InvalidArgument(
            "it is not allowed resetting to a point that workflow has pending child workflow."
        )
    if state.cancel_requests:
        raise errors.InvalidArgument(
            "it is not allowed resetting to a point that workflow has pending request cancel."
        )
    if state.signal_requests:
        raise errors.InvalidArgument(
            "it is not allowed resetting to a point that workflow has pending signals to send."
        )
