"""How a run ends when its chain goes on: continue-as-new, workflow retry, cron."""

from __future__ import annotations

import dataclasses

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import task_queue_pb2, workflow_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb

from aion.common.timeutil import SECOND, dur, ns_of
from aion.history import cron, retry
from aion.history.failures import timeout_failure
from aion.history.mutable_state import MutableState
from aion.history.runs import RunOptions, build_run

Initiator = workflow_pb2.ContinueAsNewInitiator
RetryState = workflow_pb2.RetryState

# A chain may not start runs faster than this (Temporal's minimal workflow id reuse interval).
MIN_RUN_INTERVAL_NS = SECOND


USE_RAMPING_VERSION = workflow_pb2.ContinueAsNewVersioningBehavior.CONTINUE_AS_NEW_VERSIONING_BEHAVIOR_USE_RAMPING_VERSION


def _next_run_options(ms: MutableState, **changes: object) -> RunOptions:
    s = ms.s
    base = RunOptions(
        namespace_id=s.namespace_id,
        namespace=s.namespace,
        failover_version=s.failover_version,
        workflow_id=s.workflow_id,
        workflow_type=s.workflow_type,
        task_queue=s.task_queue,
        request_id=s.start_request_id,
        input=s.input,
        header=s.header,
        memo=s.memo,
        search_attributes=ms.versioning.inheritable_search_attributes(),
        execution_timeout_ns=s.execution_timeout_ns,
        run_timeout_ns=s.run_timeout_ns,
        task_timeout_ns=s.task_timeout_ns,
        retry_policy=s.retry_policy,
        cron_schedule=s.cron_schedule,
        expiration_time_ns=s.expiration_time_ns,
        continued_run_id=s.run_id,
        first_run_id=s.first_run_id,
        last_completion_result=s.last_completion_result,
        parent=s.parent,
        root_workflow_id=s.root_workflow_id,
        root_run_id=s.root_run_id,
        prev_reset_points=list(s.reset_points),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _spawn(ms: MutableState, opts: RunOptions) -> str:
    ms.start_next_run(build_run(ms.spawn, opts, ms.now()))
    return opts.run_id


def continue_as_new(
    ms: MutableState,
    wt_completed_id: int,
    attrs: command_pb.ContinueAsNewWorkflowExecutionCommandAttributes,
) -> None:
    s = ms.s
    lifetime = ms.now() - s.execution_time_ns
    backoff = ns_of(attrs.backoff_start_interval)
    if lifetime + backoff < MIN_RUN_INTERVAL_NS:
        backoff = MIN_RUN_INTERVAL_NS - lifetime
    changes: dict[str, object] = {
        "workflow_type": attrs.workflow_type.name or s.workflow_type,
        "task_queue": attrs.task_queue.name or s.task_queue,
        "input": attrs.input if attrs.HasField("input") else None,
        "header": attrs.header if attrs.HasField("header") else None,
        "run_timeout_ns": ns_of(attrs.workflow_run_timeout) or s.run_timeout_ns,
        "task_timeout_ns": ns_of(attrs.workflow_task_timeout) or s.task_timeout_ns,
        "initiator": Initiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW,
        "backoff_ns": backoff,
        "attempt": 1,
    }
    if attrs.HasField("retry_policy"):
        changes["retry_policy"] = attrs.retry_policy
    if attrs.cron_schedule:
        changes["cron_schedule"] = attrs.cron_schedule
    for name in ("memo", "search_attributes"):
        if attrs.HasField(name):
            changes[name] = getattr(attrs, name)
    if attrs.HasField("last_completion_result"):
        changes["last_completion_result"] = attrs.last_completion_result
    if attrs.initial_versioning_behavior == USE_RAMPING_VERSION:
        changes["use_ramping_version"] = True
    opts = _next_run_options(ms, **changes)
    event = history_pb.WorkflowExecutionContinuedAsNewEventAttributes(
        new_execution_run_id=opts.run_id,
        workflow_type=common_pb.WorkflowType(name=opts.workflow_type),
        task_queue=taskqueue_pb.TaskQueue(
            name=opts.task_queue, kind=task_queue_pb2.TASK_QUEUE_KIND_NORMAL
        ),
        workflow_task_timeout=dur(opts.task_timeout_ns),
        backoff_start_interval=dur(backoff),
        inherit_build_id=attrs.inherit_build_id,
    )
    for name in (
        "input",
        "header",
        "memo",
        "search_attributes",
        "last_completion_result",
        "failure",
    ):
        if attrs.HasField(name):  # type: ignore[arg-type]  # dynamic field name
            getattr(event, name).CopyFrom(getattr(attrs, name))
    if opts.run_timeout_ns:
        event.workflow_run_timeout.CopyFrom(dur(opts.run_timeout_ns))
    if not attrs.HasField("memo") and s.memo is not None:
        event.memo.CopyFrom(s.memo)
    inherited = ms.versioning.inheritable_search_attributes()
    if not attrs.HasField("search_attributes") and inherited is not None:
        event.search_attributes.CopyFrom(inherited)
    _spawn(ms, opts)
    ms.continue_as_new(wt_completed_id, event)


def _cron_backoff(ms: MutableState) -> int:
    return cron.backoff_ns(ms.s.cron_schedule, ms.now()) if ms.s.cron_schedule else -1


def complete(ms: MutableState, wt_completed_id: int, result: common_pb.Payloads | None) -> None:
    backoff = _cron_backoff(ms)
    new_run_id = ""
    if backoff >= 0:
        new_run_id = _spawn(
            ms,
            _next_run_options(
                ms,
                initiator=Initiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE,
                backoff_ns=backoff,
                last_completion_result=result,
                attempt=1,
                expiration_time_ns=0,
            ),
        )
    ms.complete(wt_completed_id, result, new_run_id)


def _retry_or_cron(ms: MutableState, failure: failure_pb.Failure) -> tuple[int, str]:
    """Start the chain's next run after a failure when policy allows; (retry state, new run id)."""
    s = ms.s
    state: int = RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    if s.retry_policy is not None:
        delay, state = retry.next_backoff(
            s.retry_policy, s.attempt, failure, ms.now(), s.expiration_time_ns
        )
        if delay >= 0:
            run_id = _spawn(
                ms,
                _next_run_options(
                    ms,
                    initiator=Initiator.CONTINUE_AS_NEW_INITIATOR_RETRY,
                    backoff_ns=delay,
                    attempt=s.attempt + 1,
                    continued_failure=failure,
                ),
            )
            return state, run_id
    backoff = _cron_backoff(ms)
    if backoff >= 0:
        run_id = _spawn(
            ms,
            _next_run_options(
                ms,
                initiator=Initiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE,
                backoff_ns=backoff,
                attempt=1,
                continued_failure=failure,
                expiration_time_ns=0,
            ),
        )
        return state, run_id
    return state, ""


def fail(ms: MutableState, wt_completed_id: int, failure: failure_pb.Failure) -> None:
    state, new_run_id = _retry_or_cron(ms, failure)
    ms.fail(wt_completed_id, failure, state, new_run_id)


def time_out(ms: MutableState) -> None:
    failure = timeout_failure("workflow timeout", workflow_pb2.TIMEOUT_TYPE_START_TO_CLOSE)
    state: int = RetryState.RETRY_STATE_TIMEOUT
    new_run_id = ""
    if not ms.s.expiration_time_ns or ms.s.expiration_time_ns > ms.now():
        state, new_run_id = _retry_or_cron(ms, failure)
    ms.time_out(state, new_run_id)
