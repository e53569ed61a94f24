"""Transfer tasks: after a commit, act on another execution (children, signals, cancels, parents).

Each handler is idempotent: a crash between acting on the target and recording the outcome on the
source replays the task, and the target recognises the repeated request by its request id.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import failed_cause_pb2, workflow_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.codec import pack, unpack
from aion.common.timeutil import ns_of
from aion.history import cron
from aion.history.api.activities import ensure_workflow_task
from aion.history.api.request_cancel_workflow import deliver_cancel
from aion.history.api.signal_workflow import deliver_signal
from aion.history.api.terminate_workflow import terminate_workflow
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.mutable_state import (
    FAILED_STATUSES,
    ChildInfo,
    ExternalRequest,
    MutableState,
    ParentInfo,
)
from aion.history.runs import RunOptions, build_run
from aion.history.tasks.timer_queue import RetryLater
from aion.persistence import ConditionFailedError, TimerTask

Reuse = workflow_pb2.WorkflowIdReusePolicy
NOT_FOUND = failed_cause_pb2.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
SIGNAL_LIMIT = (
    failed_cause_pb2.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_SIGNAL_COUNT_LIMIT_EXCEEDED
)
CANCEL_NOT_FOUND = failed_cause_pb2.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
CHILD_EXISTS = failed_cause_pb2.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS


def _key(task: TimerTask) -> ExecutionKey:
    return (task.namespace_id, task.workflow_id, task.run_id)


async def start_child(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    parent = await engine.get_execution(_key(task))
    child = parent.s.children.get(int(data["id"]))  # type: ignore[call-overload]
    if child is None or child.started_event_id or not parent.running:
        await engine.finish_timer_task(task)
        return
    initiated = (await engine.read_history(_key(task), child.initiated_event_id, 1))[0]
    s = parent.s
    result = await _on_owner(
        engine,
        child.namespace_id,
        child.workflow_id,
        "start_child_run",
        {
            "initiated": pack(initiated),
            "child": dataclasses.asdict(child),
            "parent": dataclasses.asdict(
                ParentInfo(s.namespace, s.namespace_id, s.workflow_id, s.run_id, 0)
            ),
            # A parent without a root of its own is its children's root.
            "root": [s.root_workflow_id or s.workflow_id, s.root_run_id or s.run_id],
            "failover_version": s.failover_version,
        },
    )
    run_id = result["run_id"]
    if run_id is None:
        await engine.finish_timer_task(
            task, lambda ms: _child_start_failed(ms, child.initiated_event_id)
        )
        return
    attrs = initiated.start_child_workflow_execution_initiated_event_attributes
    header = attrs.header if attrs.HasField("header") else None
    await engine.finish_timer_task(
        task, lambda ms: _child_started(ms, child.initiated_event_id, run_id, header)
    )


async def start_child_run(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    """On the child's shard: start the child's run, or find it started by an earlier attempt;
    `run_id` None when the workflow id is taken."""
    initiated = unpack(history_pb.HistoryEvent, args["initiated"])
    attrs = initiated.start_child_workflow_execution_initiated_event_attributes
    child = ChildInfo(**args["child"])
    parent = ParentInfo(**{**args["parent"], "initiated_event_id": child.initiated_event_id})
    try:
        current = await engine.current_execution(child.namespace_id, child.workflow_id)
    except errors.NotFound:
        current = None
    if current is not None and current.start_request_id == child.create_request_id:
        return {"run_id": current.run_id}  # started before a crash: just record it
    if current is not None and (
        current.running
        or attrs.workflow_id_reuse_policy == Reuse.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
        or (
            attrs.workflow_id_reuse_policy
            == Reuse.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
            and current.status not in FAILED_STATUSES
        )
    ):
        return {"run_id": None}
    opts = RunOptions(
        namespace_id=child.namespace_id,
        namespace=child.namespace,
        failover_version=args["failover_version"],
        workflow_id=child.workflow_id,
        workflow_type=child.workflow_type,
        task_queue=attrs.task_queue.name,
        request_id=child.create_request_id,
        input=attrs.input if attrs.HasField("input") else None,
        header=attrs.header if attrs.HasField("header") else None,
        memo=attrs.memo if attrs.HasField("memo") else None,
        search_attributes=attrs.search_attributes if attrs.HasField("search_attributes") else None,
        priority=attrs.priority if attrs.HasField("priority") else None,
        execution_timeout_ns=ns_of(attrs.workflow_execution_timeout),
        run_timeout_ns=ns_of(attrs.workflow_run_timeout),
        task_timeout_ns=ns_of(attrs.workflow_task_timeout),
        retry_policy=attrs.retry_policy if attrs.HasField("retry_policy") else None,
        cron_schedule=attrs.cron_schedule,
        parent=parent,
        root_workflow_id=args["root"][0],
        root_run_id=args["root"][1],
    )
    if attrs.cron_schedule:
        opts.backoff_ns = cron.backoff_ns(attrs.cron_schedule, engine.clock())
    ms = build_run(engine.new_mutable_state, opts, engine.clock())
    try:
        await engine.create_execution(ms, current.run_id if current else None)
    except ConditionFailedError:
        raise errors.Unavailable("child start raced another start; retrying") from None
    return {"run_id": ms.s.run_id}


def _child_started(ms: MutableState, initiated_id: int, run_id: str, header: object) -> None:
    child = ms.s.children.get(initiated_id)
    if ms.running and child is not None and not child.started_event_id:
        ms.children.started(child, run_id, header)  # type: ignore[arg-type]
        ensure_workflow_task(ms)


def _child_start_failed(ms: MutableState, initiated_id: int) -> None:
    child = ms.s.children.get(initiated_id)
    if ms.running and child is not None and not child.started_event_id:
        ms.children.start_failed(child, CHILD_EXISTS)
        ensure_workflow_task(ms)


async def notify_parent(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    child_ms = await engine.get_execution(_key(task))
    parent = child_ms.s.parent
    if parent is not None:
        close = (await engine.read_history(_key(task), child_ms.s.completion_event_id, 1))[0]
        await _on_owner(
            engine,
            parent.namespace_id,
            parent.workflow_id,
            "record_child_closed",
            {
                "parent": [parent.namespace_id, parent.workflow_id, parent.run_id],
                "initiated_event_id": parent.initiated_event_id,
                "child": [child_ms.s.workflow_id, child_ms.s.run_id],
                "close": pack(close),
            },
        )
    await engine.drop_task(task)


async def record_child_closed(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    """On the parent's shard: record that a child closed (with its closing event)."""
    close = unpack(history_pb.HistoryEvent, args["close"])
    child_workflow_id, child_run_id = args["child"]

    def record(ms: MutableState) -> None:
        child: ChildInfo | None = ms.s.children.get(args["initiated_event_id"])
        if ms.running and child is not None and not child.started_event_id:
            # The child finished before its start was recorded on the parent.
            raise errors.Unavailable("child start not recorded on the parent yet")
        if not ms.running or child is None:
            return
        if child.run_id != child_run_id and child.workflow_id == child_workflow_id:
            ms.children.follow_chain(child, child_run_id)  # report the chain's last run
        ms.children.closed(child, close)
        ensure_workflow_task(ms)

    with contextlib.suppress(errors.NotFound):
        await engine.update_execution(tuple(args["parent"]), record)  # type: ignore[arg-type]
    return {}


async def signal_external(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    source = await engine.get_execution(_key(task))
    request = source.s.signal_requests.get(int(data["id"]))  # type: ignore[call-overload]
    if request is None or not source.running:
        await engine.finish_timer_task(task)
        return
    initiated = (await engine.read_history(_key(task), request.initiated_event_id, 1))[0]
    attrs = initiated.signal_external_workflow_execution_initiated_event_attributes
    result = await _deliver(
        engine,
        request,
        source,
        {
            "signal_name": attrs.signal_name,
            "input": pack(attrs.input) if attrs.HasField("input") else None,
            "header": pack(attrs.header) if attrs.HasField("header") else None,
            "request_id": request.request_id,
        },
    )

    def record(ms: MutableState) -> None:
        pending = ms.s.signal_requests.get(request.initiated_event_id)
        if ms.running and pending is not None:
            if result["delivered"]:
                ms.external.signaled(pending, attrs.control)
            else:
                cause = SIGNAL_LIMIT if result.get("limit") else NOT_FOUND
                ms.external.signal_failed(pending, cause, attrs.control)
            ensure_workflow_task(ms)

    await engine.finish_timer_task(task, record)


async def cancel_external(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    source = await engine.get_execution(_key(task))
    request = source.s.cancel_requests.get(int(data["id"]))  # type: ignore[call-overload]
    if request is None or not source.running:
        await engine.finish_timer_task(task)
        return
    initiated = (await engine.read_history(_key(task), request.initiated_event_id, 1))[0]
    attrs = initiated.request_cancel_external_workflow_execution_initiated_event_attributes
    delivered = (await _deliver(engine, request, source, {"reason": attrs.reason}))["delivered"]

    def record(ms: MutableState) -> None:
        pending = ms.s.cancel_requests.get(request.initiated_event_id)
        if ms.running and pending is not None:
            if delivered:
                ms.external.cancel_requested(pending)
            else:
                ms.external.cancel_failed(pending, CANCEL_NOT_FOUND, attrs.control)
            ensure_workflow_task(ms)

    await engine.finish_timer_task(task, record)


async def _deliver(
    engine: HistoryEngine, request: ExternalRequest, source: MutableState, what: dict[str, Any]
) -> dict[str, Any]:
    """Signal or cancel the target on its shard: `delivered` is False when it does not exist
    (or, for a signal, has closed: a cancel request to a closed workflow succeeds as a no-op, as
    in Temporal) or, with `limit`, when the target refused the signal (its limits)."""
    return await _on_owner(
        engine,
        request.namespace_id,
        request.workflow_id,
        "deliver_external",
        {
            "target": [request.namespace_id, request.workflow_id, request.run_id],
            "child_workflow_only": request.child_workflow_only,
            "source_run_id": source.s.run_id,
            "identity": f"workflow:{source.s.workflow_id}",
            **what,
        },
    )


async def deliver_external(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    """On the target's shard: apply a signal (`signal_name` set) or a cancel request."""

    def apply(ms: MutableState) -> None:
        if "signal_name" not in args:
            deliver_cancel(ms, args["reason"], args["identity"])
            return
        payloads = unpack(common_pb.Payloads, args["input"]) if args["input"] else None
        header = unpack(common_pb.Header, args["header"]) if args["header"] else None
        deliver_signal(
            ms, args["signal_name"], payloads, header, args["identity"], args["request_id"]
        )

    try:
        key = await engine.resolve(*args["target"])
        target = await engine.get_execution(key)
        if args["child_workflow_only"] and (
            target.s.parent is None or target.s.parent.run_id != args["source_run_id"]
        ):
            return {"delivered": False}
        await engine.update_execution(key, apply)
    except errors.NotFound:
        return {"delivered": False}
    except errors.InvalidArgument:  # the target's signal limit (or a payload past its limit)
        return {"delivered": False, "limit": True}
    return {"delivered": True}


async def apply_parent_close_policy(
    engine: HistoryEngine, task: TimerTask, data: dict[str, object]
) -> None:
    parent = await engine.get_execution(_key(task))
    child = parent.s.children.get(int(data["id"]))  # type: ignore[call-overload]
    if child is not None and child.run_id:
        await _on_owner(
            engine,
            child.namespace_id,
            child.workflow_id,
            "close_child",
            {
                "child": [child.namespace_id, child.workflow_id],
                "terminate": child.parent_close_policy
                == workflow_pb2.PARENT_CLOSE_POLICY_TERMINATE,
                "identity": f"parent-close-policy:{parent.s.workflow_id}",
            },
        )
    await engine.drop_task(task)


async def close_child(engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
    """On the child's shard: terminate or cancel it as its parent's close policy says."""
    namespace_id, workflow_id = args["child"]
    identity = args["identity"]
    try:
        key = await engine.resolve(namespace_id, workflow_id, "")
        if args["terminate"]:
            await terminate_workflow(
                engine,
                engine.namespaces.by_id(namespace_id),
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
    return {}


async def notify_schedule(engine: HistoryEngine, task: TimerTask, data: dict[str, object]) -> None:
    """A run a schedule started has closed: the schedule looks at its running workflows now."""
    schedule_id = str(data["schedule_id"])
    await _on_owner(
        engine,
        task.namespace_id,
        schedule_id,
        "schedule_workflow_closed",
        {"schedule": [task.namespace_id, schedule_id]},
    )
    await engine.drop_task(task)


async def _on_owner(
    engine: HistoryEngine, namespace_id: str, workflow_id: str, op: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Run `op` on the target execution's shard, here or on its owner; a target that cannot be
    reached now (moving shard, child start not recorded yet) retries the task shortly."""
    try:
        return await engine.call(engine.shard_id_of(namespace_id, workflow_id), op, args)
    except errors.Unavailable as e:
        raise RetryLater(e.message) from None


# Operations run on the target's shard, maybe for another process (see `engine.call`); the
# schedules runtime serves "schedule_workflow_closed" (`aion.schedules.runtime`).
OPS = {
    "start_child_run": start_child_run,
    "record_child_closed": record_child_closed,
    "deliver_external": deliver_external,
    "close_child": close_child,
}

HANDLERS = {
    "start_child": start_child,
    "notify_parent": notify_parent,
    "signal_external": signal_external,
    "cancel_external": cancel_external,
    "apply_parent_close_policy": apply_parent_close_policy,
    "notify_schedule": notify_schedule,
}
