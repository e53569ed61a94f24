"""Creating a run: a fresh start, a child, or the next run of a chain (continue-as-new, retry, cron)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import task_queue_pb2, workflow_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.sdk.v1 import user_metadata_pb2 as sdk_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from aion.common.timeutil import SECOND, dur
from aion.history.mutable_state import (
    ExecutionState,
    MutableState,
    ParentInfo,
)
from aion.ids import uuid7

Initiator = workflow_pb2.ContinueAsNewInitiator

DEFAULT_TASK_TIMEOUT_NS = 10 * SECOND
MAX_TASK_TIMEOUT_NS = 120 * SECOND


@dataclass
class RunOptions:
    """Everything that shapes a new run's WorkflowExecutionStarted event and state."""

    namespace_id: str
    namespace: str
    failover_version: int
    workflow_id: str
    workflow_type: str
    task_queue: str
    request_id: str
    identity: str = ""
    input: common_pb.Payloads | None = None
    header: common_pb.Header | None = None
    memo: common_pb.Memo | None = None
    search_attributes: common_pb.SearchAttributes | None = None
    user_metadata: sdk_pb.UserMetadata | None = None
    priority: common_pb.Priority | None = None
    versioning_override: workflow_pb.VersioningOverride | None = None
    use_ramping_version: bool = False  # continue-as-new onto the ramping version
    execution_timeout_ns: int = 0
    run_timeout_ns: int = 0
    task_timeout_ns: int = 0
    retry_policy: common_pb.RetryPolicy | None = None
    cron_schedule: str = ""
    attempt: int = 1
    backoff_ns: int = 0
    expiration_time_ns: int = 0
    initiator: int = Initiator.CONTINUE_AS_NEW_INITIATOR_UNSPECIFIED
    continued_run_id: str = ""
    first_run_id: str = ""
    continued_failure: failure_pb.Failure | None = None
    last_completion_result: common_pb.Payloads | None = None
    parent: ParentInfo | None = None
    root_workflow_id: str = ""
    root_run_id: str = ""
    prev_reset_points: list[workflow_pb.ResetPointInfo] = field(default_factory=list)
    run_id: str = field(default_factory=uuid7)


def build_run(
    factory: Callable[[ExecutionState], MutableState],
    opts: RunOptions,
    now: int,
    before_first_task: Callable[[MutableState], None] | None = None,
) -> MutableState:
    """A new run with its started event, and its first workflow task (or the backoff before it)."""
    execution_timeout = opts.execution_timeout_ns
    run_timeout = opts.run_timeout_ns or execution_timeout
    if execution_timeout:
        run_timeout = min(run_timeout, execution_timeout)
    task_timeout = min(opts.task_timeout_ns or DEFAULT_TASK_TIMEOUT_NS, MAX_TASK_TIMEOUT_NS)
    if run_timeout:
        task_timeout = min(task_timeout, run_timeout)
    expiration = opts.expiration_time_ns
    if not expiration and execution_timeout:
        expiration = now + execution_timeout
    state = ExecutionState(
        namespace_id=opts.namespace_id,
        namespace=opts.namespace,
        workflow_id=opts.workflow_id,
        run_id=opts.run_id,
        workflow_type=opts.workflow_type,
        task_queue=opts.task_queue,
        start_time_ns=now,
        execution_time_ns=now + opts.backoff_ns,
        run_timeout_ns=run_timeout,
        execution_timeout_ns=execution_timeout,
        task_timeout_ns=task_timeout,
        start_request_id=opts.request_id,
        first_run_id=opts.first_run_id or opts.run_id,
        failover_version=opts.failover_version,
        memo=opts.memo,
        search_attributes=opts.search_attributes,
        attempt=opts.attempt,
        retry_policy=opts.retry_policy,
        cron_schedule=opts.cron_schedule,
        expiration_time_ns=expiration,
        parent=opts.parent,
        root_workflow_id=opts.root_workflow_id or opts.workflow_id,
        root_run_id=opts.root_run_id or opts.run_id,
        last_completion_result=opts.last_completion_result,
        input=opts.input,
        header=opts.header,
        versioning_override=opts.versioning_override,
        use_ramping_version=opts.use_ramping_version,
    )
    ms = factory(state)
    if ms.versioning.behavior != workflow_pb2.VersioningBehavior.VERSIONING_BEHAVIOR_UNSPECIFIED:
        ms.versioning.record_build_ids(None)  # started under an override: `pinned:<version>`
    attrs = history_pb.WorkflowExecutionStartedEventAttributes(
        workflow_type=common_pb.WorkflowType(name=opts.workflow_type),
        task_queue=taskqueue_pb.TaskQueue(
            name=opts.task_queue, kind=task_queue_pb2.TASK_QUEUE_KIND_NORMAL
        ),
        workflow_task_timeout=dur(task_timeout),
        continued_execution_run_id=opts.continued_run_id,
        initiator=opts.initiator,  # type: ignore[arg-type]
        original_execution_run_id=opts.run_id,
        identity=opts.identity,
        first_execution_run_id=state.first_run_id,
        attempt=opts.attempt,
        cron_schedule=opts.cron_schedule,
        workflow_id=opts.workflow_id,
    )
    if execution_timeout:  # unset (not zero) means no timeout, as Temporal writes it
        attrs.workflow_execution_timeout.CopyFrom(dur(execution_timeout))
    if run_timeout:
        attrs.workflow_run_timeout.CopyFrom(dur(run_timeout))
    if expiration:
        attrs.workflow_execution_expiration_time.FromNanoseconds(expiration)
    if opts.backoff_ns:
        attrs.first_workflow_task_backoff.CopyFrom(dur(opts.backoff_ns))
    for name in ("input", "header", "memo", "search_attributes", "priority", "versioning_override"):
        value = getattr(opts, name)
        if value is not None:
            getattr(attrs, name).CopyFrom(value)
    if opts.retry_policy is not None:
        attrs.retry_policy.CopyFrom(opts.retry_policy)
    if opts.continued_failure is not None:
        attrs.continued_failure.CopyFrom(opts.continued_failure)
    if opts.last_completion_result is not None:
        attrs.last_completion_result.CopyFrom(opts.last_completion_result)
    if opts.parent is not None:
        p = opts.parent
        attrs.parent_workflow_namespace = p.namespace
        attrs.parent_workflow_namespace_id = p.namespace_id
        attrs.parent_workflow_execution.workflow_id = p.workflow_id
        attrs.parent_workflow_execution.run_id = p.run_id
        attrs.parent_initiated_event_id = p.initiated_event_id
        attrs.parent_initiated_event_version = opts.failover_version
    if opts.prev_reset_points:
        attrs.prev_auto_reset_points.points.extend(opts.prev_reset_points)
    if opts.parent is not None:
        attrs.root_workflow_execution.workflow_id = state.root_workflow_id
        attrs.root_workflow_execution.run_id = state.root_run_id
    ms.start(attrs, opts.user_metadata)
    if before_first_task is not None:
        before_first_task(ms)
    if opts.backoff_ns:
        ms.delay_first_workflow_task(now + opts.backoff_ns)
    else:
        ms.workflow_task.schedule()
    return ms
