"""Transfer tasks: after a commit, act on another execution (children, signals, cancels, parents).

Each handler is idempotent: a crash between acting on the target and recording the outcome on the
source replays the task, and the target recognises the repeated request by its request id.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import failed_cause_pb2, workflow_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.history import cron
from aion.history.api.activities import ensure_workflow_task
from aion.history.api.request_cancel_workflow import deliver_cancel
from aion.history.api.signal_workflow import deliver_signal
from aion.history.api.terminate_workflow import terminate_workflow
from aion.history.mutable_state import (
    FAILED_STATUSES,
    ChildInfo,
    ExternalRequest,
    MutableState,
    ParentInfo,
)
from aion.history.runs import RunOptions, build_run
from aion.history.timeutil import ns_of
from aion.persistence import ConditionFailedError, TimerTask
from aion.queues.timer_queue import RetryLater

if TYPE_CHECKING:
    from aion.history.engine import ExecutionKey, HistoryEngine

Reuse = workflow_pb2.WorkflowIdReusePolicy
NOT_FOUND = failed_cause_pb2.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
CANCEL_NOT_FOUND = failed_cause_pb2.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
CHILD_EXISTS = failed_cause_pb2.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS


def _key(task: TimerTask) -> ExecutionKey:
    return (task.namespace_id, task.workflow_id, task.run_id)


async def _finish(engine: HistoryEngine, task: TimerTask, apply: object = None) -> None:
    """Record the outcome on the source execution and drop the task in the same commit."""

    def record(ms: MutableState) -> None:
        ms.mutation.done_timer_task_ids.append(task.task_id)
        if apply is not None:
            apply(ms)  # type: ignore[operator]

    try:
        await engine.update_execution(_key(task), record)
    except errors.NotFound:
        await engine.store.delete_timer_tasks(task.shard_id, [task.task_id])


async def start_child(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    parent = await engine.get_execution(_key(task))
    child = parent.s.children.get(int(data["id"]))  # type: ignore[call-overload]
    if child is None or child.started_event_id or not parent.running:
        await _finish(engine, task)
        return
    initiated = (await engine.read_history(_key(task), child.initiated_event_id, 1))[0]
    attrs = initiated.start_child_workflow_execution_initiated_event_attributes
    try:
        current = await engine.current_execution(child.namespace_id, child.workflow_id)
    except errors.NotFound:
        current = None
    if current is not None and current.start_request_id == child.create_request_id:
        run_id = current.run_id  # started before a crash: just record it
    elif current is not None and (
        current.running
        or attrs.workflow_id_reuse_policy == Reuse.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
        or (
            attrs.workflow_id_reuse_policy
            == Reuse.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
            and current.status not in FAILED_STATUSES
        )
    ):
        await _finish(engine, task, lambda ms: _child_start_failed(ms, child.initiated_event_id))
        return
    else:
        s = parent.s
        opts = RunOptions(
            namespace_id=child.namespace_id,
            namespace=child.namespace,
            failover_version=s.failover_version,
            workflow_id=child.workflow_id,
            workflow_type=child.workflow_type,
            task_queue=attrs.task_queue.name,
            request_id=child.create_request_id,
            input=attrs.input if attrs.HasField("input") else None,
            header=attrs.header if attrs.HasField("header") else None,
            memo=attrs.memo if attrs.HasField("memo") else None,
            search_attributes=attrs.search_attributes
            if attrs.HasField("search_attributes")
            else None,
            priority=attrs.priority if attrs.HasField("priority") else None,
            execution_timeout_ns=ns_of(attrs.workflow_execution_timeout),
            run_timeout_ns=ns_of(attrs.workflow_run_timeout),
            task_timeout_ns=ns_of(attrs.workflow_task_timeout),
            retry_policy=attrs.retry_policy if attrs.HasField("retry_policy") else None,
            cron_schedule=attrs.cron_schedule,
            parent=ParentInfo(
                namespace=s.namespace,
                namespace_id=s.namespace_id,
                workflow_id=s.workflow_id,
                run_id=s.run_id,
                initiated_event_id=child.initiated_event_id,
            ),
            root_workflow_id=s.root_workflow_id,
            root_run_id=s.root_run_id,
        )
        if attrs.cron_schedule:
            opts.backoff_ns = cron.backoff_ns(attrs.cron_schedule, engine.clock())
        ms = build_run(engine.new_mutable_state, opts, engine.clock())
        try:
            await engine.create_execution(ms, current.run_id if current else None)
        except ConditionFailedError:
            raise errors.Unavailable("child start raced another start; retrying") from None
        run_id = ms.s.run_id
    header = attrs.header if attrs.HasField("header") else None
    await _finish(
        engine, task, lambda ms: _child_started(ms, child.initiated_event_id, run_id, header)
    )


def _child_started(ms: MutableState, initiated_id: int, run_id: str, header: object) -> None:
    child = ms.s.children.get(initiated_id)
    if ms.running and child is not None and not child.started_event_id:
        ms.child_started(child, run_id, header)  # type: ignore[arg-type]
        ensure_workflow_task(ms)


def _child_start_failed(ms: MutableState, initiated_id: int) -> None:
    child = ms.s.children.get(initiated_id)
    if ms.running and child is not None and not child.started_event_id:
        ms.child_start_failed(child, CHILD_EXISTS)
        ensure_workflow_task(ms)


async def notify_parent(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    child_ms = await engine.get_execution(_key(task))
    parent = child_ms.s.parent
    if parent is not None:
        close = (await engine.read_history(_key(task), child_ms.s.completion_event_id, 1))[0]

        def record(ms: MutableState) -> None:
            child: ChildInfo | None = ms.s.children.get(parent.initiated_event_id)
            if ms.running and child is not None and not child.started_event_id:
                # The child finished before its start was recorded on the parent.
                raise RetryLater("child start not recorded on the parent yet")
            if not ms.running or child is None:
                return
            if child.run_id != child_ms.s.run_id and child.workflow_id == child_ms.s.workflow_id:
                child.run_id = child_ms.s.run_id  # the chain continued: report its last run
            ms.child_closed(child, close)
            ensure_workflow_task(ms)

        with contextlib.suppress(errors.NotFound):
            await engine.update_execution(
                (parent.namespace_id, parent.workflow_id, parent.run_id), record
            )
    await engine.store.delete_timer_tasks(task.shard_id, [task.task_id])


async def signal_external(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    source = await engine.get_execution(_key(task))
    request = source.s.signal_requests.get(int(data["id"]))  # type: ignore[call-overload]
    if request is None or not source.running:
        await _finish(engine, task)
        return
    initiated = (await engine.read_history(_key(task), request.initiated_event_id, 1))[0]
    attrs = initiated.signal_external_workflow_execution_initiated_event_attributes
    delivered = await _deliver(
        engine,
        request,
        source,
        lambda ms: deliver_signal(
            ms,
            attrs.signal_name,
            attrs.input if attrs.HasField("input") else None,
            attrs.header if attrs.HasField("header") else None,
            f"workflow:{source.s.workflow_id}",
            request.request_id,
        ),
    )

    def record(ms: MutableState) -> None:
        pending = ms.s.signal_requests.get(request.initiated_event_id)
        if ms.running and pending is not None:
            if delivered:
                ms.external_signaled(pending, attrs.control)
            else:
                ms.signal_external_failed(pending, NOT_FOUND, attrs.control)
            ensure_workflow_task(ms)

    await _finish(engine, task, record)


async def cancel_external(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    source = await engine.get_execution(_key(task))
    request = source.s.cancel_requests.get(int(data["id"]))  # type: ignore[call-overload]
    if request is None or not source.running:
        await _finish(engine, task)
        return
    initiated = (await engine.read_history(_key(task), request.initiated_event_id, 1))[0]
    attrs = initiated.request_cancel_external_workflow_execution_initiated_event_attributes
    delivered = await _deliver(
        engine,
        request,
        source,
        lambda ms: deliver_cancel(ms, attrs.reason, f"workflow:{source.s.workflow_id}"),
    )

    def record(ms: MutableState) -> None:
        pending = ms.s.cancel_requests.get(request.initiated_event_id)
        if ms.running and pending is not None:
            if delivered:
                ms.external_cancel_requested(pending)
            else:
                ms.cancel_external_failed(pending, CANCEL_NOT_FOUND, attrs.control)
            ensure_workflow_task(ms)

    await _finish(engine, task, record)


async def _deliver(
    engine: HistoryEngine,
    request: ExternalRequest,
    source: MutableState,
    apply: object,
) -> bool:
    """Apply a signal or cancel to the target; False when it does not exist (or, for a signal,
    has closed: a cancel request to a closed workflow succeeds as a no-op, as in Temporal)."""
    try:
        key = await engine.resolve(request.namespace_id, request.workflow_id, request.run_id)
        target = await engine.get_execution(key)
        if request.child_workflow_only and (
            target.s.parent is None or target.s.parent.run_id != source.s.run_id
        ):
            return False
        await engine.update_execution(key, apply)  # type: ignore[arg-type]
    except errors.NotFound:
        return False
    return True


async def apply_parent_close_policy(
    engine: HistoryEngine, task: TimerTask, data: dict[str, object]
) -> None:
    parent = await engine.get_execution(_key(task))
    child = parent.s.children.get(int(data["id"]))  # type: ignore[call-overload]
    if child is not None and child.run_id:
        identity = f"parent-close-policy:{parent.s.workflow_id}"
        try:
            key = await engine.resolve(child.namespace_id, child.workflow_id, "")
            if child.parent_close_policy == workflow_pb2.PARENT_CLOSE_POLICY_TERMINATE:
                ns = engine.namespaces.by_id(child.namespace_id)
                await terminate_workflow(
                    engine,
                    ns,
                    rr.TerminateWorkflowExecutionRequest(
                        workflow_execution=common_pb.WorkflowExecution(
                            workflow_id=key[1], run_id=key[2]
                        ),
                        reason="by parent close policy",
                        identity=identity,
                    ),
                )
            else:
                await engine.update_execution(key, lambda ms: deliver_cancel(ms, "", identity))
        except errors.NotFound:
            pass
    await engine.store.delete_timer_tasks(task.shard_id, [task.task_id])


HANDLERS = {
    "start_child": start_child,
    "notify_parent": notify_parent,
    "signal_external": signal_external,
    "cancel_external": cancel_external,
    "apply_parent_close_policy": apply_parent_close_policy,
}
