"""StartWorkflowExecution: id reuse / conflict policies, request id idempotency, first task."""

from __future__ import annotations

from google.protobuf.message import Message
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.timeutil import ns_of
from aion.common.versions import versioning_override
from aion.history import cron, retry
from aion.history.api import links
from aion.history.api.signal_workflow import BLOB_SIZE_EXCEEDS_LIMIT, signal_workflow
from aion.history.api.terminate_workflow import terminate_workflow
from aion.history.api.workflow_tasks import workflow_task_response
from aion.history.engine import HistoryEngine
from aion.history.mutable_state import FAILED_STATUSES, MutableState
from aion.history.runs import RunOptions, build_run
from aion.namespaces import Namespace
from aion.persistence import ConditionFailedError, CurrentExecution

Status = workflow_pb2.WorkflowExecutionStatus
Reuse = workflow_pb2.WorkflowIdReusePolicy
Conflict = workflow_pb2.WorkflowIdConflictPolicy

SHARED_START_FIELDS = (
    "namespace",
    "workflow_id",
    "workflow_type",
    "task_queue",
    "input",
    "workflow_execution_timeout",
    "workflow_run_timeout",
    "workflow_task_timeout",
    "identity",
    "request_id",
    "workflow_id_reuse_policy",
    "workflow_id_conflict_policy",
    "retry_policy",
    "cron_schedule",
    "memo",
    "search_attributes",
    "header",
    "user_metadata",
    "priority",
    "workflow_start_delay",
)


def check_start_limits(engine: HistoryEngine, req: rr.StartWorkflowExecutionRequest) -> None:
    """The input and memo of a start within their size limits, else INVALID_ARGUMENT."""
    limits = engine.limits
    if limits.blob_too_large(req.input.ByteSize(), "workflow input"):
        raise errors.InvalidArgument(BLOB_SIZE_EXCEEDS_LIMIT)
    if limits.memo_too_large(req.memo.ByteSize(), "workflow memo"):
        raise errors.InvalidArgument("Memo size exceeds limit.")


async def start_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.StartWorkflowExecutionRequest
) -> rr.StartWorkflowExecutionResponse:
    check_start_limits(engine, req)
    try:
        current = await engine.current_execution(ns.id, req.workflow_id)
    except errors.NotFound:
        current = None
    if current is not None:
        existing = await existing_run_answer(engine, ns, req, current)
        if existing is not None:
            return existing
    ms = new_run(engine, ns, req)
    eager = ms.s.workflow_task if req.request_eager_execution else None
    if eager is not None:
        # Eager start: the first workflow task goes back to the starter, not to matching.
        ms.tasks.drop_queue_task("workflow", eager.scheduled_event_id)
        ms.workflow_task.start(req.request_id, req.identity)
    try:
        await engine.create_execution(ms, current.run_id if current else None)
    except ConditionFailedError:
        raise errors.Unavailable("concurrent start of the same workflow id; retry") from None
    key = (ms.s.namespace_id, ms.s.workflow_id, ms.s.run_id)
    response = rr.StartWorkflowExecutionResponse(
        run_id=ms.s.run_id,
        first_execution_run_id=ms.s.first_run_id,
        started=True,
        status=Status.WORKFLOW_EXECUTION_STATUS_RUNNING,
        link=links.to_event(ns.name, key, 1, links.STARTED),
    )
    if eager is not None:
        response.eager_workflow_task.CopyFrom(
            await workflow_task_response(engine, key, ms, eager, 0, sticky=False)
        )
    return response


async def existing_run_answer(
    engine: HistoryEngine,
    ns: Namespace,
    req: rr.StartWorkflowExecutionRequest,
    current: CurrentExecution,
) -> rr.StartWorkflowExecutionResponse | None:
    """What to answer when the workflow id already has a run; None means start a new run."""
    if current.start_request_id == req.request_id and req.request_id:
        return rr.StartWorkflowExecutionResponse(
            run_id=current.run_id,
            started=True,
            status=current.status,  # type: ignore[arg-type]
        )
    if current.running:
        policy = req.workflow_id_conflict_policy or Conflict.WORKFLOW_ID_CONFLICT_POLICY_FAIL
        if policy == Conflict.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING:
            return rr.StartWorkflowExecutionResponse(
                run_id=current.run_id,
                started=False,
                status=current.status,  # type: ignore[arg-type]
            )
        if policy == Conflict.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING:
            await terminate_workflow(
                engine,
                ns,
                rr.TerminateWorkflowExecutionRequest(
                    workflow_execution=common_pb.WorkflowExecution(
                        workflow_id=req.workflow_id, run_id=current.run_id
                    ),
                    reason="terminated by new start request (TerminateExisting)",
                    identity=req.identity,
                ),
            )
            return None
        raise errors.workflow_already_started(
            f"Workflow execution is already running. WorkflowId: {req.workflow_id}, "
            f"RunId: {current.run_id}.",
            current.start_request_id,
            current.run_id,
            await _first_run_id(engine, current),
        )
    reuse = req.workflow_id_reuse_policy or Reuse.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
    if reuse == Reuse.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE or (
        reuse == Reuse.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
        and current.status not in FAILED_STATUSES
    ):
        raise errors.workflow_already_started(
            f"Workflow execution already finished and its WorkflowIdReusePolicy does not allow "
            f"a new run. WorkflowId: {req.workflow_id}, RunId: {current.run_id}.",
            current.start_request_id,
            current.run_id,
            await _first_run_id(engine, current),
        )
    return None


async def _first_run_id(engine: HistoryEngine, current: CurrentExecution) -> str:
    """The first run of the current run's chain (for the already-started error)."""
    ms = await engine.get_execution((current.namespace_id, current.workflow_id, current.run_id))
    return ms.s.first_run_id


async def signal_with_start_workflow(
    engine: HistoryEngine, ns: Namespace, req: rr.SignalWithStartWorkflowExecutionRequest
) -> rr.SignalWithStartWorkflowExecutionResponse:
    """Signal the running workflow, or start a new run with the signal as its first event."""
    start = rr.StartWorkflowExecutionRequest()
    for name in SHARED_START_FIELDS:
        value = getattr(req, name)
        if isinstance(value, Message):
            if req.HasField(name):  # type: ignore[arg-type]  # dynamic field name
                getattr(start, name).CopyFrom(value)
        else:
            setattr(start, name, value)
    signal = rr.SignalWorkflowExecutionRequest(
        namespace=req.namespace,
        workflow_execution=common_pb.WorkflowExecution(workflow_id=req.workflow_id),
        signal_name=req.signal_name,
        identity=req.identity,
        request_id=req.request_id,
    )
    if req.HasField("signal_input"):
        signal.input.CopyFrom(req.signal_input)
    if req.HasField("header"):
        signal.header.CopyFrom(req.header)
    check_start_limits(engine, start)
    if engine.limits.blob_too_large(signal.input.ByteSize(), "signal input"):
        raise errors.InvalidArgument(BLOB_SIZE_EXCEEDS_LIMIT)
    try:
        current = await engine.current_execution(ns.id, req.workflow_id)
    except errors.NotFound:
        current = None
    if current is not None and current.running:
        policy = (
            req.workflow_id_conflict_policy or Conflict.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
        )
        if policy != Conflict.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING:
            if policy == Conflict.WORKFLOW_ID_CONFLICT_POLICY_FAIL:
                await existing_run_answer(engine, ns, start, current)
            await signal_workflow(engine, ns, signal)
            return rr.SignalWithStartWorkflowExecutionResponse(run_id=current.run_id, started=False)
    if current is not None:
        start.workflow_id_conflict_policy = Conflict.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
        start.request_id = ""  # a signal-with-start never answers as an idempotent retry
        await existing_run_answer(engine, ns, start, current)
    ms = new_run(engine, ns, start, signal)
    try:
        await engine.create_execution(ms, current.run_id if current else None)
    except ConditionFailedError:
        raise errors.Unavailable("concurrent start of the same workflow id; retry") from None
    return rr.SignalWithStartWorkflowExecutionResponse(run_id=ms.s.run_id, started=True)


def new_run(
    engine: HistoryEngine,
    ns: Namespace,
    req: rr.StartWorkflowExecutionRequest,
    signal: rr.SignalWorkflowExecutionRequest | None = None,
) -> MutableState:
    retry_policy = None
    if req.HasField("retry_policy"):
        retry_policy = common_pb.RetryPolicy()
        retry_policy.CopyFrom(req.retry_policy)
        try:
            retry.normalize_policy(retry_policy)
        except ValueError as e:
            raise errors.InvalidArgument(str(e)) from None
    backoff = ns_of(req.workflow_start_delay)
    if req.cron_schedule:
        try:
            backoff = cron.backoff_ns(req.cron_schedule, engine.clock())
        except cron.CronError as e:
            raise errors.InvalidArgument(f"Invalid CronSchedule: {e}") from None
    opts = RunOptions(
        namespace_id=ns.id,
        namespace=ns.name,
        failover_version=ns.failover_version,
        workflow_id=req.workflow_id,
        workflow_type=req.workflow_type.name,
        task_queue=req.task_queue.name,
        request_id=req.request_id,
        identity=req.identity,
        input=req.input if req.HasField("input") else None,
        header=req.header if req.HasField("header") else None,
        memo=req.memo if req.HasField("memo") else None,
        search_attributes=req.search_attributes if req.HasField("search_attributes") else None,
        user_metadata=req.user_metadata if req.HasField("user_metadata") else None,
        priority=req.priority if req.HasField("priority") else None,
        versioning_override=versioning_override(req.versioning_override)
        if req.HasField("versioning_override")
        else None,
        execution_timeout_ns=ns_of(req.workflow_execution_timeout),
        run_timeout_ns=ns_of(req.workflow_run_timeout),
        task_timeout_ns=ns_of(req.workflow_task_timeout),
        retry_policy=retry_policy,
        cron_schedule=req.cron_schedule,
        backoff_ns=backoff,
        continued_failure=req.continued_failure if req.HasField("continued_failure") else None,
        last_completion_result=req.last_completion_result
        if req.HasField("last_completion_result")
        else None,
    )
    before_first_task = None
    if signal is not None:

        def before_first_task(ms: MutableState) -> None:
            ms.signal(
                signal.signal_name,
                signal.input if signal.HasField("input") else None,
                signal.identity,
                signal.header if signal.HasField("header") else None,
            )

    return build_run(engine.new_mutable_state, opts, engine.clock(), before_first_task)
