"""Core workflow RPCs through the official SDK: start, result, signal, query, cancel, terminate,
describe, history, visibility, namespaces and cluster info."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    EventType,
    NamespaceState,
    PendingActivityState,
    PendingWorkflowTaskState,
    QueryRejectCondition,
    TaskQueueKind,
)
from temporalio.api.enums.v1 import WorkflowExecutionStatus as RawStatus
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.namespace.v1 import UpdateNamespaceInfo
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetClusterInfoRequest,
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryRequest,
    ListNamespacesRequest,
    QueryWorkflowRequest,
    RegisterNamespaceRequest,
    ResetStickyTaskQueueRequest,
    StartWorkflowExecutionRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    TerminatedError,
    TimeoutError,
    TimeoutType,
    WorkflowAlreadyStartedError,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique

pytestmark = pytest.mark.timeout(30)


# ---- workflows and activities -----------------------------------------------------------------


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"Hello, {name}!"


@workflow.defn
class WaitForeverWorkflow:
    """Waits until cancelled; remembers whether it saw the cancellation."""

    def __init__(self) -> None:
        self.saw_cancel = False

    @workflow.run
    async def run(self) -> None:
        try:
            await workflow.wait_condition(lambda: False)
        except asyncio.CancelledError:
            self.saw_cancel = True
            raise

    @workflow.query
    def saw_cancellation(self) -> bool:
        return self.saw_cancel


@workflow.defn
class FailingWorkflow:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("boom", {"why": "testing"}, type="BoomError")


@workflow.defn
class MailboxWorkflow:
    """Collects `add` signals until `close`; answers queries about what it got."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.closed = False

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.closed)
        return self.messages

    @workflow.signal
    def add(self, message: str) -> None:
        self.messages.append(message)

    @workflow.signal
    def close(self) -> None:
        self.closed = True

    @workflow.query
    def received(self) -> list[str]:
        return list(self.messages)


@workflow.defn
class ListedWorkflow:
    """Only used by the visibility test, so its type name counts only that test's runs."""

    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self, wait: bool) -> str:
        if wait:
            await workflow.wait_condition(lambda: self.released)
        return "listed"

    @workflow.signal
    def release(self) -> None:
        self.released = True


@workflow.defn
class ActivityRunningWorkflow:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            "gated", start_to_close_timeout=timedelta(seconds=20)
        )


class Gate:
    """An activity that reports it started and then waits until the test releases it."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    @activity.defn(name="gated")
    async def gated(self) -> str:
        self.started.set()
        await self.release.wait()
        return "released"


# ---- helpers ----------------------------------------------------------------------------------


def new_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type] = (),
    activities: Sequence[Any] = (),
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def event_types(handle: WorkflowHandle[Any, Any]) -> list[int]:
    return [e.event_type for e in (await handle.fetch_history()).events]


async def events_of(handle: WorkflowHandle[Any, Any], event_type: int) -> list[HistoryEvent]:
    return [e for e in (await handle.fetch_history()).events if e.event_type == event_type]


# ---- start and result -------------------------------------------------------------------------


async def test_start_with_memo_and_get_result(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [GreetingWorkflow]):
        handle = await client.start_workflow(
            GreetingWorkflow.run,
            "Aion",
            id=unique("greet"),
            task_queue=tq,
            memo={"owner": "tests", "n": 7},
        )
        assert handle.result_run_id
        assert await handle.result() == "Hello, Aion!"

    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    assert desc.workflow_type == "GreetingWorkflow"
    assert desc.task_queue == tq
    assert desc.run_id == handle.result_run_id
    assert desc.close_time is not None and desc.close_time >= desc.start_time
    assert await desc.memo() == {"owner": "tests", "n": 7}

    history = (await handle.fetch_history()).events
    assert [e.event_type for e in history] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    ]
    assert [e.event_id for e in history] == [1, 2, 3, 4, 5]
    started = history[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "GreetingWorkflow"
    assert started.task_queue.name == tq
    assert started.memo.fields["owner"].data == b'"tests"'
    completed = history[3].workflow_task_completed_event_attributes
    assert (completed.scheduled_event_id, completed.started_event_id) == (2, 3)
    assert (
        history[4].workflow_execution_completed_event_attributes.workflow_task_completed_event_id
        == 4
    )


async def test_start_request_id_is_idempotent(client: Client) -> None:
    workflow_id = unique("idempotent")
    request = StartWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="GreetingWorkflow"),
        task_queue=TaskQueue(name=unique("tq")),
        identity="test",
        request_id=str(uuid.uuid4()),
    )
    first = await client.workflow_service.start_workflow_execution(request)
    again = await client.workflow_service.start_workflow_execution(request)
    assert first.run_id and again.run_id == first.run_id
    assert first.started

    request.request_id = str(uuid.uuid4())
    with pytest.raises(RPCError) as err:
        await client.workflow_service.start_workflow_execution(request)
    assert err.value.status == RPCStatusCode.ALREADY_EXISTS

    handle = client.get_workflow_handle(workflow_id)
    assert (await event_types(handle)).count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    await handle.terminate(reason="cleanup")


async def test_already_started_and_id_reuse(client: Client) -> None:
    workflow_id = unique("dup")
    tq = unique("tq")
    handle = await client.start_workflow(WaitForeverWorkflow.run, id=workflow_id, task_queue=tq)
    with pytest.raises(WorkflowAlreadyStartedError) as err:
        await client.start_workflow(WaitForeverWorkflow.run, id=workflow_id, task_queue=tq)
    assert err.value.workflow_id == workflow_id
    existing = await client.start_workflow(
        WaitForeverWorkflow.run,
        id=workflow_id,
        task_queue=tq,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    assert existing.result_run_id == handle.result_run_id

    await handle.terminate(reason="done with it")
    with pytest.raises(WorkflowAlreadyStartedError):
        await client.start_workflow(
            WaitForeverWorkflow.run,
            id=workflow_id,
            task_queue=tq,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    second = await client.start_workflow(WaitForeverWorkflow.run, id=workflow_id, task_queue=tq)
    assert second.result_run_id != handle.result_run_id
    assert (await client.get_workflow_handle(workflow_id).describe()).run_id == second.result_run_id
    await second.terminate(reason="cleanup")


async def test_run_and_execution_timeouts(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [WaitForeverWorkflow]):
        by_run = await client.start_workflow(
            WaitForeverWorkflow.run,
            id=unique("run-timeout"),
            task_queue=tq,
            run_timeout=timedelta(seconds=2),
        )
        by_execution = await client.start_workflow(
            WaitForeverWorkflow.run,
            id=unique("execution-timeout"),
            task_queue=tq,
            execution_timeout=timedelta(seconds=2),
        )
        for handle in (by_run, by_execution):
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            assert isinstance(err.value.cause, TimeoutError)
            assert err.value.cause.type == TimeoutType.START_TO_CLOSE

            desc = await handle.describe()
            assert desc.status == WorkflowExecutionStatus.TIMED_OUT
            types = await event_types(handle)
            assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT
            assert EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in types
            elapsed = desc.close_time - desc.start_time  # type: ignore[operator]
            assert timedelta(seconds=2) <= elapsed < timedelta(seconds=5)


async def test_workflow_failure(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [FailingWorkflow]):
        handle = await client.start_workflow(FailingWorkflow.run, id=unique("fail"), task_queue=tq)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "boom"
    assert cause.type == "BoomError"
    assert cause.details == ({"why": "testing"},)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    (failed,) = await events_of(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)
    attrs = failed.workflow_execution_failed_event_attributes
    assert attrs.failure.message == "boom"
    assert attrs.failure.application_failure_info.type == "BoomError"


async def test_cancellation(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [WaitForeverWorkflow]):
        handle = await client.start_workflow(
            WaitForeverWorkflow.run, id=unique("cancel"), task_queue=tq
        )
        assert await handle.query(WaitForeverWorkflow.saw_cancellation) is False
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        assert isinstance(err.value.cause, CancelledError)
        # The workflow code itself observed the cancellation (answered from the closed run).
        assert await handle.query(WaitForeverWorkflow.saw_cancellation) is True

    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    types = await event_types(handle)
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in types
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    # A cancel request for a closed workflow succeeds and changes nothing (as the reference does).
    await handle.cancel()
    assert (await event_types(handle)) == types


async def test_terminate(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [WaitForeverWorkflow]):
        handle = await client.start_workflow(
            WaitForeverWorkflow.run, id=unique("terminate"), task_queue=tq
        )
        await handle.query(WaitForeverWorkflow.saw_cancellation)  # first workflow task done
        await handle.terminate("some detail", reason="enough")
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert isinstance(err.value.cause, TerminatedError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    (terminated,) = await events_of(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
    attrs = terminated.workflow_execution_terminated_event_attributes
    assert attrs.reason == "enough"
    assert attrs.details.payloads[0].data == b'"some detail"'
    with pytest.raises(RPCError) as rpc_err:
        await handle.terminate(reason="again")
    assert rpc_err.value.status == RPCStatusCode.NOT_FOUND


# ---- signals and queries ----------------------------------------------------------------------


async def test_signal_and_query(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [MailboxWorkflow]):
        handle = await client.start_workflow(
            MailboxWorkflow.run, id=unique("mailbox"), task_queue=tq
        )
        await handle.signal(MailboxWorkflow.add, "first")
        await handle.signal(MailboxWorkflow.add, "second")
        # A query after a signal was accepted sees that signal.
        assert await handle.query(MailboxWorkflow.received) == ["first", "second"]
        await handle.signal(MailboxWorkflow.close)
        assert await handle.result() == ["first", "second"]
        # A closed workflow still answers queries (from its history).
        assert await handle.query(MailboxWorkflow.received) == ["first", "second"]

    signaled = await events_of(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert [e.workflow_execution_signaled_event_attributes.signal_name for e in signaled] == [
        "add",
        "add",
        "close",
    ]
    assert (
        signaled[0].workflow_execution_signaled_event_attributes.input.payloads[0].data
        == b'"first"'
    )
    with pytest.raises(RPCError) as err:
        await handle.signal(MailboxWorkflow.add, "too late")
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_query_reject_condition(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [GreetingWorkflow]):
        handle = await client.start_workflow(
            GreetingWorkflow.run, "q", id=unique("reject"), task_queue=tq
        )
        await handle.result()
        response = await client.workflow_service.query_workflow(
            QueryWorkflowRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=handle.id),
                query=WorkflowQuery(query_type="__stack_trace"),
                query_reject_condition=QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_OPEN,
            )
        )
    assert response.HasField("query_rejected")
    assert response.query_rejected.status == RawStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
    assert not response.HasField("query_result")


# ---- describe, history, visibility ------------------------------------------------------------


async def test_describe_pending_workflow_task_and_activity(client: Client) -> None:
    tq = unique("tq")
    gate = Gate()
    # No worker yet: the first workflow task waits, scheduled.
    handle = await client.start_workflow(
        ActivityRunningWorkflow.run, id=unique("describe"), task_queue=tq
    )
    raw = (await handle.describe()).raw_description
    assert (
        raw.pending_workflow_task.state
        == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
    )
    assert raw.pending_workflow_task.attempt == 1
    assert len(raw.pending_activities) == 0
    assert raw.execution_config.task_queue.name == tq
    assert raw.workflow_execution_info.status == RawStatus.WORKFLOW_EXECUTION_STATUS_RUNNING

    async with new_worker(client, tq, [ActivityRunningWorkflow], [gate.gated]):
        await asyncio.wait_for(gate.started.wait(), 10)
        raw = (await handle.describe()).raw_description
        assert not raw.HasField("pending_workflow_task")
        (pending,) = raw.pending_activities
        assert pending.activity_type.name == "gated"
        assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        assert pending.attempt == 1
        assert pending.last_worker_identity
        assert pending.HasField("last_started_time")
        gate.release.set()
        assert await handle.result() == "released"

    raw = (await handle.describe()).raw_description
    assert len(raw.pending_activities) == 0
    assert raw.workflow_execution_info.history_length == len((await handle.fetch_history()).events)


async def test_history_paging(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [MailboxWorkflow]):
        handle = await client.start_workflow(
            MailboxWorkflow.run, id=unique("paging"), task_queue=tq
        )
        await handle.signal(MailboxWorkflow.add, "x")
        await handle.signal(MailboxWorkflow.close)
        await handle.result()

    full = (await handle.fetch_history()).events
    assert len(full) >= 7
    pages: list[list[HistoryEvent]] = []
    token = b""
    while True:
        response = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(
                    workflow_id=handle.id, run_id=handle.result_run_id or ""
                ),
                maximum_page_size=2,
                next_page_token=token,
            )
        )
        pages.append(list(response.history.events))
        token = response.next_page_token
        if not token:
            break
        assert len(pages) < 100
    assert all(len(page) == 2 for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= 2
    paged = [e for page in pages for e in page]
    assert [e.event_id for e in paged] == list(range(1, len(full) + 1))
    assert paged == full


async def test_history_long_poll_delivers_new_events(client: Client) -> None:
    # No worker: the workflow stays at its first workflow task until the signal arrives.
    handle = await client.start_workflow(
        MailboxWorkflow.run, id=unique("long-poll"), task_queue=unique("tq")
    )

    async def first_signal() -> HistoryEvent:
        async for event in handle.fetch_history_events(wait_new_event=True):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                return event
        raise AssertionError("history ended without the signal")

    waiter = asyncio.create_task(first_signal())
    await handle.signal(MailboxWorkflow.add, "wake up")
    event = await asyncio.wait_for(waiter, 10)
    assert event.workflow_execution_signaled_event_attributes.input.payloads[0].data == b'"wake up"'
    await handle.terminate(reason="cleanup")


async def test_list_and_count(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [ListedWorkflow]):
        done = []
        for _ in range(2):
            h = await client.start_workflow(
                ListedWorkflow.run, False, id=unique("listed"), task_queue=tq
            )
            await h.result()
            done.append(h)
        running = await client.start_workflow(
            ListedWorkflow.run, True, id=unique("listed"), task_queue=tq
        )

        listed = [w async for w in client.list_workflows("WorkflowType = 'ListedWorkflow'")]
        assert sorted(w.id for w in listed) == sorted([h.id for h in done] + [running.id])
        assert all(w.workflow_type == "ListedWorkflow" and w.task_queue == tq for w in listed)

        completed = [
            w
            async for w in client.list_workflows(
                "WorkflowType = 'ListedWorkflow' AND ExecutionStatus = 'Completed'"
            )
        ]
        assert sorted(w.id for w in completed) == sorted(h.id for h in done)
        assert all(
            w.status == WorkflowExecutionStatus.COMPLETED and w.close_time for w in completed
        )

        (one,) = [w async for w in client.list_workflows(f"WorkflowId = '{running.id}'")]
        assert one.run_id == running.result_run_id
        assert one.status == WorkflowExecutionStatus.RUNNING

        paged = [
            w async for w in client.list_workflows("WorkflowType = 'ListedWorkflow'", page_size=1)
        ]
        assert sorted(w.id for w in paged) == sorted(w.id for w in listed)

        assert (await client.count_workflows("WorkflowType = 'ListedWorkflow'")).count == 3
        grouped = await client.count_workflows(
            "WorkflowType = 'ListedWorkflow' GROUP BY ExecutionStatus"
        )
        assert grouped.count == 3
        assert sorted((list(g.group_values), g.count) for g in grouped.groups) == [
            (["Completed"], 2),
            (["Running"], 1),
        ]
        assert (
            await client.count_workflows(
                "WorkflowType = 'ListedWorkflow' AND ExecutionStatus = 'Completed'"
            )
        ).count == 2
        assert (
            await client.count_workflows(
                "WorkflowType = 'ListedWorkflow' AND ExecutionStatus = 'Running'"
            )
        ).count == 1

        await running.signal(ListedWorkflow.release)
        await running.result()
        assert (
            await client.count_workflows(
                "WorkflowType = 'ListedWorkflow' AND ExecutionStatus = 'Completed'"
            )
        ).count == 3

    with pytest.raises(RPCError) as err:
        await client.count_workflows("WorkflowType = ")
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT


async def test_reset_sticky_task_queue(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [MailboxWorkflow]):
        handle = await client.start_workflow(
            MailboxWorkflow.run, id=unique("sticky"), task_queue=tq
        )
        assert await handle.query(MailboxWorkflow.received) == []  # first task completed
        await handle.signal(MailboxWorkflow.add, "before")
        assert await handle.query(MailboxWorkflow.received) == ["before"]
        scheduled = await events_of(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
        # The worker asked for sticky execution: the signal's task went to its sticky queue.
        assert scheduled[-1].workflow_task_scheduled_event_attributes.task_queue.kind == (
            TaskQueueKind.TASK_QUEUE_KIND_STICKY
        )

        await client.workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(
                    workflow_id=handle.id, run_id=handle.result_run_id or ""
                ),
            )
        )
        await handle.signal(MailboxWorkflow.add, "after")
        await handle.signal(MailboxWorkflow.close)
        assert await handle.result() == ["before", "after"]

    history = (await handle.fetch_history()).events
    after_signal = next(
        i
        for i, e in enumerate(history)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.input.payloads[0].data == b'"after"'
    )
    next_task = next(
        e
        for e in history[after_signal:]
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    )
    task_queue = next_task.workflow_task_scheduled_event_attributes.task_queue
    assert (task_queue.name, task_queue.kind) == (tq, TaskQueueKind.TASK_QUEUE_KIND_NORMAL)


# ---- namespaces and cluster -------------------------------------------------------------------


async def test_namespaces(client: Client, aion_server: Any) -> None:
    name = unique("ns")
    service = client.workflow_service
    await service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name,
            description="made by a test",
            owner_email="tests@example.com",
            workflow_execution_retention_period=Duration(seconds=3 * 86400),
        )
    )
    with pytest.raises(RPCError) as err:
        await service.register_namespace(RegisterNamespaceRequest(namespace=name))
    assert err.value.status == RPCStatusCode.ALREADY_EXISTS

    described = await service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    info = described.namespace_info
    assert (info.name, info.description, info.owner_email) == (
        name,
        "made by a test",
        "tests@example.com",
    )
    assert info.state == NamespaceState.NAMESPACE_STATE_REGISTERED
    assert info.id
    assert described.config.workflow_execution_retention_ttl.seconds == 3 * 86400
    by_id = await service.describe_namespace(DescribeNamespaceRequest(id=info.id))
    assert by_id.namespace_info.name == name

    listed = await service.list_namespaces(ListNamespacesRequest())
    names = {ns.namespace_info.name for ns in listed.namespaces}
    assert {name, "default", "other"} <= names

    updated = await service.update_namespace(
        UpdateNamespaceRequest(
            namespace=name, update_info=UpdateNamespaceInfo(description="changed")
        )
    )
    assert updated.namespace_info.description == "changed"
    again = await service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    assert again.namespace_info.description == "changed"
    assert again.namespace_info.owner_email == "tests@example.com"
    assert again.namespace_info.id == info.id

    # The new namespace runs workflows, and they are not visible from another namespace.
    ns_client = await Client.connect(aion_server.address, namespace=name)
    tq = unique("tq")
    workflow_id = unique("in-ns")
    async with new_worker(ns_client, tq, [GreetingWorkflow]):
        assert (
            await ns_client.execute_workflow(
                GreetingWorkflow.run, "ns", id=workflow_id, task_queue=tq
            )
            == "Hello, ns!"
        )
    with pytest.raises(RPCError) as err:
        await client.get_workflow_handle(workflow_id).describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_unknown_namespace_is_not_found(client: Client, aion_server: Any) -> None:
    with pytest.raises(RPCError) as err:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="no-such-namespace")
        )
    assert err.value.status == RPCStatusCode.NOT_FOUND

    stranger = await Client.connect(aion_server.address, namespace="no-such-namespace")
    with pytest.raises(RPCError) as err:
        await stranger.start_workflow(
            GreetingWorkflow.run, "x", id=unique("nowhere"), task_queue="tq"
        )
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_system_and_cluster_info(client: Client) -> None:
    system = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert system.server_version
    assert system.capabilities.signal_and_query_header
    assert system.capabilities.internal_error_differentiation
    assert system.capabilities.supports_schedules
    assert system.capabilities.build_id_based_versioning

    cluster = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    assert cluster.cluster_id
    assert cluster.cluster_name
    assert cluster.server_version == system.server_version
    assert cluster.history_shard_count > 0
    assert "temporal-go" in cluster.supported_clients
