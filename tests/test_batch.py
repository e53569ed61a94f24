"""Batch operations (StartBatchOperation, StopBatchOperation, DescribeBatchOperation,
ListBatchOperations) with the official SDK's raw service client: by query and by a list of
executions, progress in describe, stop, Temporal's validation errors, and a batch terminate of
1,000 workflows that survives a SIGKILL of the server, terminating each exactly once. The CLI's
batch forms are in tests/test_cli_commands.py.

Workflows here have no worker: they stay running until the batch acts on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.batch.v1 import message_pb2 as batch_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import batch_operation_pb2, event_type_pb2, reset_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.helpers import Storage, unique

pytestmark = pytest.mark.timeout(300)

State = batch_operation_pb2.BatchOperationState
RUNNING = State.BATCH_OPERATION_STATE_RUNNING
COMPLETED = State.BATCH_OPERATION_STATE_COMPLETED
FAILED = State.BATCH_OPERATION_STATE_FAILED
ET = event_type_pb2.EventType
DEADLINE_S = 60.0


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, deadline: float = DEADLINE_S
) -> Any:
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def start_idle(
    client: Client, task_queue: str, count: int, prefix: str = "wf"
) -> list[WorkflowHandle[Any, Any]]:
    """`count` workflows nobody works on (they stay running)."""
    return [
        await client.start_workflow("Idle", id=f"{prefix}-{task_queue}-{i}", task_queue=task_queue)
        for i in range(count)
    ]


async def describe(
    client: Client, job_id: str, namespace: str = "default"
) -> rr.DescribeBatchOperationResponse:
    return await client.workflow_service.describe_batch_operation(
        rr.DescribeBatchOperationRequest(namespace=namespace, job_id=job_id)
    )


async def finished(
    client: Client, job_id: str, deadline: float = DEADLINE_S
) -> rr.DescribeBatchOperationResponse:
    async def done() -> rr.DescribeBatchOperationResponse | None:
        d = await describe(client, job_id)
        return d if d.state != RUNNING else None

    result: rr.DescribeBatchOperationResponse = await eventually(done, f"batch {job_id}", deadline)
    return result


async def start_batch(client: Client, **fields: Any) -> str:
    job_id = fields.pop("job_id", None) or unique("job")
    await client.workflow_service.start_batch_operation(
        rr.StartBatchOperationRequest(namespace="default", job_id=job_id, **fields)
    )
    return job_id


async def visible(client: Client, query: str, count: int) -> None:
    async def listed() -> bool:
        return (await client.count_workflows(query)).count == count

    await eventually(listed, f"{count} workflows matching {query}")


async def last_event(handle: WorkflowHandle[Any, Any]) -> Any:
    return (await handle.fetch_history()).events[-1]


# ---- the operations ---------------------------------------------------------------------------
async def test_terminate_by_query(client: Client) -> None:
    task_queue = unique("batch-terminate")
    handles = await start_idle(client, task_queue, 5)
    other = await client.start_workflow("Idle", id=unique("not-matched"), task_queue=unique("tq"))
    query = f"TaskQueue='{task_queue}'"
    await visible(client, query, 5)
    job_id = await start_batch(
        client,
        visibility_query=query,
        reason="cleanup",
        termination_operation=batch_pb.BatchOperationTermination(identity="batcher-test"),
    )
    d = await finished(client, job_id)
    assert (d.state, d.total_operation_count, d.complete_operation_count) == (COMPLETED, 5, 5)
    assert d.failure_operation_count == 0
    assert d.operation_type == batch_operation_pb2.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW
    assert (d.job_id, d.identity, d.reason, d.query) == (job_id, "batcher-test", "cleanup", query)
    assert d.HasField("start_time") and d.HasField("close_time")
    for handle in handles:
        assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
        event = await last_event(handle)
        assert event.workflow_execution_terminated_event_attributes.reason == "cleanup"
    assert (await other.describe()).status == WorkflowExecutionStatus.RUNNING
    await other.terminate()
    # The job id stays taken.
    with pytest.raises(RPCError) as taken:
        await start_batch(
            client,
            job_id=job_id,
            visibility_query=query,
            reason="again",
            termination_operation=batch_pb.BatchOperationTermination(),
        )
    assert taken.value.status == RPCStatusCode.ALREADY_EXISTS
    assert taken.value.message.startswith(
        f"Workflow execution already finished. WorkflowId: {job_id}"
    )
    listed = await client.workflow_service.list_batch_operations(
        rr.ListBatchOperationsRequest(namespace="default")
    )
    mine = [info for info in listed.operation_info if info.job_id == job_id]
    assert len(mine) == 1 and mine[0].state == COMPLETED
    assert mine[0].operation_type == batch_operation_pb2.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW


async def test_signal_cancel_delete_by_executions(client: Client) -> None:
    task_queue = unique("batch-list")
    handles = await start_idle(client, task_queue, 3)
    executions = [common_pb.WorkflowExecution(workflow_id=h.id) for h in handles]
    missing = common_pb.WorkflowExecution(workflow_id=unique("does-not-exist"))
    signal = await start_batch(
        client,
        executions=[*executions, missing],
        reason="poke",
        signal_operation=batch_pb.BatchOperationSignal(
            signal="poke",
            input=common_pb.Payloads(
                payloads=[common_pb.Payload(data=b'"hi"', metadata={"encoding": b"json/plain"})]
            ),
            identity="signaller",
        ),
    )
    d = await finished(client, signal)
    # A workflow that is not there counts as done, as in Temporal.
    assert (d.state, d.total_operation_count, d.complete_operation_count) == (COMPLETED, 4, 4)
    assert [e.business_id for e in d.executions] == [h.id for h in handles] + [missing.workflow_id]
    for handle in handles:
        events = (await handle.fetch_history()).events
        signals = [e for e in events if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
        assert len(signals) == 1
        attrs = signals[0].workflow_execution_signaled_event_attributes
        assert (attrs.signal_name, attrs.identity) == ("poke", "signaller")
        assert attrs.input.payloads[0].data == b'"hi"'
    cancel = await start_batch(
        client,
        executions=executions,
        reason="stop please",
        cancellation_operation=batch_pb.BatchOperationCancellation(identity="canceller"),
    )
    d = await finished(client, cancel)
    assert (d.state, d.complete_operation_count) == (COMPLETED, 3)
    for handle in handles:
        event = await last_event(handle)
        assert event.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    delete = await start_batch(
        client,
        executions=executions,
        reason="gone",
        deletion_operation=batch_pb.BatchOperationDeletion(identity="deleter"),
    )
    d = await finished(client, delete)
    assert (d.state, d.complete_operation_count) == (COMPLETED, 3)
    for handle in handles:

        async def deleted(handle: WorkflowHandle[Any, Any] = handle) -> bool:
            try:
                await handle.describe()
            except RPCError as e:
                return e.status == RPCStatusCode.NOT_FOUND
            return False

        await eventually(deleted, f"{handle.id} deleted")


@workflow.defn
class WaitsForever:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_reset_by_executions(client: Client) -> None:
    task_queue = unique("batch-reset")
    async with Worker(client, task_queue=task_queue, workflows=[WaitsForever]):
        handle = await client.start_workflow(
            WaitsForever.run, id=unique("reset"), task_queue=task_queue
        )

        async def task_completed() -> bool:
            events = (await handle.fetch_history()).events
            return any(e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events)

        await eventually(task_completed, "the first workflow task")
        first_run = handle.result_run_id
        job = await start_batch(
            client,
            executions=[common_pb.WorkflowExecution(workflow_id=handle.id)],
            reason="redo",
            reset_operation=batch_pb.BatchOperationReset(
                identity="resetter", reset_type=reset_pb2.RESET_TYPE_FIRST_WORKFLOW_TASK
            ),
        )
        d = await finished(client, job)
        assert (d.state, d.total_operation_count, d.complete_operation_count) == (COMPLETED, 1, 1)
        assert d.operation_type == batch_operation_pb2.BATCH_OPERATION_TYPE_RESET_WORKFLOW
        current = await client.get_workflow_handle(handle.id).describe()
        assert current.run_id != first_run
        old = await client.get_workflow_handle(handle.id, run_id=first_run).describe()
        assert old.status == WorkflowExecutionStatus.TERMINATED
        await client.get_workflow_handle(handle.id).terminate()


async def test_stop_and_concurrency_limit(client: Client) -> None:
    task_queue = unique("batch-stop")
    handles = await start_idle(client, task_queue, 30)
    query = f"TaskQueue='{task_queue}'"
    await visible(client, query, 30)
    job_id = await start_batch(
        client,
        visibility_query=query,
        reason="slowly",
        max_operations_per_second=5,
        termination_operation=batch_pb.BatchOperationTermination(),
    )

    async def progressed() -> bool:
        d = await describe(client, job_id)
        return (
            d.state == RUNNING and d.total_operation_count == 30 and d.complete_operation_count >= 2
        )

    await eventually(progressed, "some progress")
    # One batch operation at a time per namespace (Temporal's default).
    with pytest.raises(RPCError) as busy:
        await start_batch(
            client,
            visibility_query=query,
            reason="second",
            termination_operation=batch_pb.BatchOperationTermination(),
        )
    assert busy.value.status == RPCStatusCode.RESOURCE_EXHAUSTED
    assert busy.value.message == "Max concurrent batch operations is reached"
    await client.workflow_service.stop_batch_operation(
        rr.StopBatchOperationRequest(namespace="default", job_id=job_id, reason="enough")
    )
    d = await describe(client, job_id)
    assert d.state == FAILED and d.HasField("close_time")
    assert 2 <= d.complete_operation_count < 30
    with pytest.raises(RPCError) as stopped:
        await client.workflow_service.stop_batch_operation(
            rr.StopBatchOperationRequest(namespace="default", job_id=job_id, reason="again")
        )
    assert (stopped.value.status, stopped.value.message) == (
        RPCStatusCode.NOT_FOUND,
        "workflow execution already completed",
    )
    statuses = [(await h.describe()).status for h in handles]
    terminated = statuses.count(WorkflowExecutionStatus.TERMINATED)
    assert terminated == d.complete_operation_count or terminated == d.complete_operation_count + 1
    for handle, status in zip(handles, statuses, strict=True):
        if status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate()


TERMINATE = batch_pb.BatchOperationTermination()
REQUIRED = (
    "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR "
    "Executions OR TargetExecutions)"
)
BAD_STARTS: list[tuple[dict[str, Any], RPCStatusCode, str]] = [
    ({"job_id": "j", "reason": "r"}, RPCStatusCode.INVALID_ARGUMENT, REQUIRED),
    (
        {"job_id": "j", "visibility_query": "WorkflowId='a'", "termination_operation": TERMINATE},
        RPCStatusCode.INVALID_ARGUMENT,
        REQUIRED,
    ),
    (
        {"reason": "r", "visibility_query": "WorkflowId='a'", "termination_operation": TERMINATE},
        RPCStatusCode.INVALID_ARGUMENT,
        "JobId is not set on request.",
    ),
    (
        {
            "job_id": "j",
            "reason": "r",
            "visibility_query": "WorkflowId='a'",
            "executions": [common_pb.WorkflowExecution(workflow_id="a")],
            "termination_operation": TERMINATE,
        },
        RPCStatusCode.INVALID_ARGUMENT,
        "visibility query, executions, and target executions are mutually exclusive",
    ),
    (
        {
            "job_id": "j",
            "reason": "r",
            "visibility_query": "WorkflowId='a'",
            "signal_operation": batch_pb.BatchOperationSignal(),
        },
        RPCStatusCode.INVALID_ARGUMENT,
        "must provide signal name",
    ),
    (
        {
            "job_id": "j",
            "reason": "r",
            "visibility_query": "WorkflowId='a'",
            "reset_operation": batch_pb.BatchOperationReset(),
        },
        RPCStatusCode.INVALID_ARGUMENT,
        "unknown batch reset type Unspecified",
    ),
    (
        {
            "job_id": "j",
            "reason": "r",
            "visibility_query": "WorkflowId='a'",
            "update_workflow_options_operation": batch_pb.BatchOperationUpdateWorkflowExecutionOptions(),
        },
        RPCStatusCode.INVALID_ARGUMENT,
        "must provide UpdateOptions",
    ),
    (
        {
            "job_id": "j",
            "reason": "r",
            "visibility_query": "WorkflowId='a'",
            "unpause_activities_operation": batch_pb.BatchOperationUnpauseActivities(),
        },
        RPCStatusCode.INVALID_ARGUMENT,
        "activity filter must be set",
    ),
    (
        {
            "job_id": "j",
            "reason": "r",
            "visibility_query": "bad query ((",
            "termination_operation": TERMINATE,
        },
        RPCStatusCode.INVALID_ARGUMENT,
        "invalid visibility query: syntax error",
    ),
    (
        {
            "namespace": "no-such-namespace",
            "job_id": "j",
            "reason": "r",
            "visibility_query": "WorkflowId='a'",
            "termination_operation": TERMINATE,
        },
        RPCStatusCode.NOT_FOUND,
        "Namespace no-such-namespace is not found.",
    ),
]


async def test_validation_errors(client: Client) -> None:
    service = client.workflow_service
    for fields, code, message in BAD_STARTS:
        request = rr.StartBatchOperationRequest(**{"namespace": "default", **fields})
        with pytest.raises(RPCError) as failed:
            await service.start_batch_operation(request)
        assert failed.value.status == code, fields
        assert failed.value.message.startswith(message), (fields, failed.value.message)
    checks: list[tuple[Awaitable[Any], RPCStatusCode, str]] = [
        (
            service.describe_batch_operation(rr.DescribeBatchOperationRequest(namespace="default")),
            RPCStatusCode.INVALID_ARGUMENT,
            "JobId is not set on request.",
        ),
        (
            service.describe_batch_operation(
                rr.DescribeBatchOperationRequest(namespace="default", job_id="no-such-job")
            ),
            RPCStatusCode.NOT_FOUND,
            "workflow not found for ID: no-such-job",
        ),
        (
            service.stop_batch_operation(
                rr.StopBatchOperationRequest(namespace="default", job_id="no-such-job")
            ),
            RPCStatusCode.INVALID_ARGUMENT,
            "Reason is not set on request.",
        ),
        (
            service.stop_batch_operation(
                rr.StopBatchOperationRequest(namespace="default", job_id="no-such-job", reason="r")
            ),
            RPCStatusCode.NOT_FOUND,
            "workflow not found for ID: no-such-job",
        ),
        (
            service.list_batch_operations(
                rr.ListBatchOperationsRequest(namespace="no-such-namespace")
            ),
            RPCStatusCode.NOT_FOUND,
            "Namespace no-such-namespace is not found.",
        ),
    ]
    for call, code, message in checks:
        with pytest.raises(RPCError) as failed:
            await call
        assert (failed.value.status, failed.value.message) == (code, message)


# ---- acceptance: 1,000 workflows, SIGKILL mid-way -------------------------------------------------
WORKFLOWS = 1000


async def test_batch_terminate_survives_sigkill(storage: Storage) -> None:
    server = storage.server()
    server.start()
    try:
        client = await Client.connect(server.address)
        task_queue = unique("batch-kill")
        handles = await asyncio.gather(
            *(
                client.start_workflow("Idle", id=f"kill-{task_queue}-{i}", task_queue=task_queue)
                for i in range(WORKFLOWS)
            )
        )
        query = f"TaskQueue='{task_queue}'"
        await visible(client, query, WORKFLOWS)
        job_id = await start_batch(
            client,
            visibility_query=query,
            reason="mass terminate",
            max_operations_per_second=100,
            termination_operation=batch_pb.BatchOperationTermination(identity="acceptance"),
        )

        async def midway() -> bool:
            d = await describe(client, job_id)
            return 100 <= d.complete_operation_count < WORKFLOWS - 300

        await eventually(midway, "the batch part-way through")
        server.kill()
        server.start()
        client = await Client.connect(server.address)
        saved = await describe(client, job_id)
        assert saved.state == RUNNING and 0 < saved.complete_operation_count < WORKFLOWS
        d = await finished(client, job_id, deadline=120)
        assert (d.state, d.total_operation_count) == (COMPLETED, WORKFLOWS)
        assert (d.complete_operation_count, d.failure_operation_count) == (WORKFLOWS, 0)

        async def terminations(handle: WorkflowHandle[Any, Any]) -> int:
            events = (await client.get_workflow_handle(handle.id).fetch_history()).events
            return sum(e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED for e in events)

        counts = []
        for i in range(0, WORKFLOWS, 50):
            counts += await asyncio.gather(*(terminations(h) for h in handles[i : i + 50]))
        assert counts == [1] * WORKFLOWS
    finally:
        server.stop()
