"""Temporal's xdc failover scenarios (its tests/xdc/failover_test.go), ported to the Python SDK
against two Aion clusters (docs/global-namespaces.md): workflows started on A are failed over to
B mid-flight (some failed back to A, version 11), with workers polling both clusters, and each
ends with the outcome Temporal's test expects and the same histories on both clusters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity, workflow
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import (
    command_type_pb2,
    event_type_pb2,
    failed_cause_pb2,
    task_queue_pb2,
    workflow_pb2,
)
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests import test_history_replication
from tests.helpers import unique
from tests.test_global_namespaces import (
    Cluster,
    Clusters,
    _register_global,
    _replicated,
    eventually,
)
from tests.test_history_replication import REPLICATED_S, _histories_equal

T = TypeVar("T")
EventType = event_type_pb2.EventType
AnyHandle = WorkflowHandle[Any, Any]

clusters = test_history_replication.clusters  # the fixture: A and B, connected both ways


@activity.defn
async def echo(text: str) -> str:
    return text


@workflow.defn
class Signalled:
    """Runs an activity, waits for `proceed`, runs another: `"<first>, <second>"`."""

    def __init__(self) -> None:
        self.proceeding = False

    @workflow.signal
    def proceed(self) -> None:
        self.proceeding = True

    @workflow.query
    def waiting(self) -> bool:
        return not self.proceeding

    @workflow.run
    async def run(self, name: str) -> str:
        first = await workflow.execute_activity(
            echo, f"{name} left", start_to_close_timeout=timedelta(seconds=5)
        )
        await workflow.wait_condition(lambda: self.proceeding)
        second = await workflow.execute_activity(
            echo, f"{name} arrived", start_to_close_timeout=timedelta(seconds=5)
        )
        return f"{first}, {second}"


@workflow.defn
class Collector:
    """Returns the first `count` signals it is sent, in order."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.signal
    def add(self, item: str) -> None:
        self.received.append(item)

    @workflow.run
    async def run(self, count: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.received) >= count)
        return self.received[:count]


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(seconds)
        return "woke"


@workflow.defn
class Chain:
    """Each run waits for `proceed`, then continues as new until run `last`, which returns
    its number."""

    def __init__(self) -> None:
        self.proceeding = False

    @workflow.signal
    def proceed(self) -> None:
        self.proceeding = True

    @workflow.run
    async def run(self, hop: int, last: int) -> int:
        await workflow.wait_condition(lambda: self.proceeding)
        if hop < last:
            workflow.continue_as_new(args=[hop + 1, last])
        return hop


@workflow.defn
class RunId:
    @workflow.run
    async def run(self) -> str:
        return workflow.info().run_id


@workflow.defn
class FailsUntilThirdAttempt:
    @workflow.run
    async def run(self) -> int:
        attempt = workflow.info().attempt
        if attempt < 3:
            raise ApplicationError(f"attempt {attempt} fails")
        return attempt


@activity.defn
async def resumable() -> str:
    """With heartbeat details, returns them; otherwise heartbeats `100` until cancelled (as it
    is once its heartbeat is refused)."""
    details = activity.info().heartbeat_details
    if details:
        return f"resumed at {details[0]} on attempt {activity.info().attempt}"
    while True:
        activity.heartbeat(100)
        await asyncio.sleep(0.2)


@workflow.defn
class Heartbeating:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            resumable,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=4),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )


WORKFLOWS = [Signalled, Collector, Sleeper, Chain, RunId, FailsUntilThirdAttempt, Heartbeating]


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[echo, resumable],
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        workflow_runner=UnsandboxedWorkflowRunner(),
        graceful_shutdown_timeout=timedelta(seconds=0),
    )


async def _fail_over(active: Cluster, to: Cluster, namespace: str, version: int) -> None:
    """Make `to` the namespace's active cluster (the update sent to `active`) and wait until
    `to` has taken the change in."""
    await active.cli.ok(
        "operator", "namespace", "update", "-n", namespace, "--active-cluster", to.name
    )
    await _replicated(to, namespace, version)


async def _once_active(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, retried while the cluster it goes to still answers NamespaceNotActive (a
    freshly active cluster may, briefly)."""

    async def answered() -> tuple[T] | None:
        try:
            return (await call(),)  # boxed: a call may answer None
        except RPCError as e:
            if e.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            return None

    return (await eventually(answered, REPLICATED_S))[0]


async def _events(handle: AnyHandle) -> list[history_pb.HistoryEvent]:
    return [e async for e in handle.fetch_history_events()]


async def _until_event(handle: AnyHandle, event_type: EventType.ValueType) -> None:
    """Wait until the run's history (on the handle's cluster, which may not have the run yet)
    has an event of `event_type`."""

    async def seen() -> bool | None:
        try:
            events = await _events(handle)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            return None
        return True if any(e.event_type == event_type for e in events) else None

    await eventually(seen, REPLICATED_S)


def _of_type(events: list[history_pb.HistoryEvent], event_type: EventType.ValueType) -> list[int]:
    """The versions of the events of `event_type`."""
    return [e.version for e in events if e.event_type == event_type]


def _clients(clusters: Clusters, namespace: str) -> tuple[Client, Client]:
    return (
        Client(clusters.a.client.service_client, namespace=namespace),
        Client(clusters.b.client.service_client, namespace=namespace),
    )


async def test_simple_workflow_completes_on_b(clusters: Clusters) -> None:
    """Started and half done on A; both clusters answer queries before and after the failover;
    B takes the signal and runs the rest: one completion, at version 2."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("simple"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        on_a = await a.start_workflow(Signalled.run, "parcel", id=workflow_id, task_queue=queue)
        await _until_event(on_a, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        on_b = b.get_workflow_handle(workflow_id)
        await _until_event(on_b, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        for handle in (on_a, on_b):  # each cluster answers, the standby too
            assert await handle.query(Signalled.waiting) is True
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        assert await _once_active(lambda: on_b.query(Signalled.waiting)) is True
        assert await on_a.query(Signalled.waiting) is True
        await _once_active(lambda: on_b.signal(Signalled.proceed))
        assert await on_b.result() == "parcel left, parcel arrived"
    await _histories_equal(clusters, namespace)
    events = await _events(on_b)
    assert _of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == [2]
    assert {e.version for e in events} == {1, 2}


async def test_sticky_workflow_task_across_failover_and_failback(clusters: Clusters) -> None:
    """Workflow tasks go to A's worker's sticky queue, then, after the failover, are completed
    by B's worker, and after the failback (version 11) by A's again."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("sticky"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        on_a = await a.start_workflow(Collector.run, 3, id=workflow_id, task_queue=queue)
        await on_a.signal(Collector.add, "on A")
        await _until_event(on_a, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        on_b = b.get_workflow_handle(workflow_id)
        await _once_active(lambda: on_b.signal(Collector.add, "on B"))

        async def completed_on_b() -> bool | None:
            events = await _events(on_b)
            return True if 2 in _of_type(events, _TASK_COMPLETED) else None

        await eventually(completed_on_b, REPLICATED_S)
        await _fail_over(clusters.b, clusters.a, namespace, 11)
        await _once_active(lambda: on_a.signal(Collector.add, "on A again"))
        assert await on_a.result() == ["on A", "on B", "on A again"]
    await _histories_equal(clusters, namespace)
    events = await _events(on_a)
    assert set(_of_type(events, _TASK_COMPLETED)) == {1, 2, 11}
    sticky = task_queue_pb2.TASK_QUEUE_KIND_STICKY
    assert any(
        e.workflow_task_scheduled_event_attributes.task_queue.kind == sticky and e.version == 1
        for e in events
    )
    assert _of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == [11]


_TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


async def _poll_task(
    cluster: Cluster, namespace: str, queue: str
) -> rr.PollWorkflowTaskQueueResponse:
    """The next workflow task `cluster` hands out on `queue`."""

    async def polled() -> rr.PollWorkflowTaskQueueResponse | None:
        task = await cluster.client.workflow_service.poll_workflow_task_queue(
            rr.PollWorkflowTaskQueueRequest(
                namespace=namespace,
                task_queue=taskqueue_pb.TaskQueue(name=queue),
                identity=cluster.name,
            ),
            timeout=timedelta(seconds=5),
        )
        return task if task.task_token else None

    return await eventually(polled, REPLICATED_S)


async def _fail_task(
    cluster: Cluster, namespace: str, task: rr.PollWorkflowTaskQueueResponse
) -> None:
    await cluster.client.workflow_service.respond_workflow_task_failed(
        rr.RespondWorkflowTaskFailedRequest(
            namespace=namespace,
            task_token=task.task_token,
            cause=failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
            failure=failure_pb.Failure(message="the workflow task fails"),
            identity=cluster.name,
        )
    )


async def _complete_task(
    cluster: Cluster, namespace: str, task: rr.PollWorkflowTaskQueueResponse
) -> None:
    """Complete the workflow with the task."""
    complete = command_type_pb2.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION
    await cluster.client.workflow_service.respond_workflow_task_completed(
        rr.RespondWorkflowTaskCompletedRequest(
            namespace=namespace,
            task_token=task.task_token,
            commands=[
                command_pb.Command(
                    command_type=complete,
                    complete_workflow_execution_command_attributes={},  # type: ignore[arg-type]
                )
            ],
            identity=cluster.name,
        )
    )


async def test_transient_workflow_task_across_failover(clusters: Clusters) -> None:
    """A workflow task that failed twice on A (its attempt 3 pending) is handed out by B after
    the failover as attempt 1, as Temporal does, and completes the workflow there."""
    namespace = await _register_global(clusters)
    queue, workflow_id = unique("transient"), unique("wf")
    a, _ = _clients(clusters, namespace)
    handle = await a.start_workflow(
        "Transient", id=workflow_id, task_queue=queue, task_timeout=timedelta(seconds=10)
    )
    for attempt in (1, 2):
        task = await _poll_task(clusters.a, namespace, queue)
        assert task.attempt == attempt
        await _fail_task(clusters.a, namespace, task)
    await _fail_over(clusters.a, clusters.b, namespace, 2)
    task = await _poll_task(clusters.b, namespace, queue)
    assert task.attempt == 1
    await _complete_task(clusters.b, namespace, task)
    await _histories_equal(clusters, namespace)
    events = await _events(handle)
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    assert events[-1].version == 2
    assert _of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) == [1]
    scheduled = [
        (e.version, e.workflow_task_scheduled_event_attributes.attempt)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    ]
    assert scheduled == [(1, 1), (2, 1)]


async def test_a_workflow_task_started_on_a_is_failed_on_b(clusters: Clusters) -> None:
    """A workflow task A's worker started and never answered: B's first transition after the
    failover (a signal) fails it with FAILOVER_CLOSE_COMMAND and schedules attempt 1, as
    Temporal does; the worker's late completion to A is refused."""
    namespace = await _register_global(clusters)
    queue, workflow_id = unique("dropped"), unique("wf")
    a, b = _clients(clusters, namespace)
    handle = await a.start_workflow(
        "Dropped", id=workflow_id, task_queue=queue, task_timeout=timedelta(seconds=30)
    )
    dropped = await _poll_task(clusters.a, namespace, queue)
    await _fail_over(clusters.a, clusters.b, namespace, 2)
    await _once_active(lambda: b.get_workflow_handle(workflow_id).signal("wake"))
    with pytest.raises(RPCError) as late:
        await _complete_task(clusters.a, namespace, dropped)
    assert late.value.status == RPCStatusCode.FAILED_PRECONDITION
    task = await _poll_task(clusters.b, namespace, queue)
    assert task.attempt == 1
    await _complete_task(clusters.b, namespace, task)
    await _histories_equal(clusters, namespace)
    events = await _events(handle)
    assert [(EventType.Name(e.event_type), e.version) for e in events[3:7]] == [
        ("EVENT_TYPE_WORKFLOW_TASK_FAILED", 2),
        ("EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", 2),
        ("EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED", 2),
        ("EVENT_TYPE_WORKFLOW_TASK_STARTED", 2),
    ]
    assert events[3].workflow_task_failed_event_attributes.cause == (
        failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND
    )
    assert events[4].workflow_task_scheduled_event_attributes.attempt == 1
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


async def test_a_timer_started_on_a_fires_on_b(clusters: Clusters) -> None:
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("timer"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        on_a = await a.start_workflow(Sleeper.run, 4.0, id=workflow_id, task_queue=queue)
        await _until_event(on_a, EventType.EVENT_TYPE_TIMER_STARTED)
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        on_b = b.get_workflow_handle(workflow_id)
        assert await on_b.result() == "woke"
    await _histories_equal(clusters, namespace)
    events = await _events(on_b)
    assert _of_type(events, EventType.EVENT_TYPE_TIMER_STARTED) == [1]
    assert _of_type(events, EventType.EVENT_TYPE_TIMER_FIRED) == [2]


async def test_signals_before_and_after_failover_and_failback(clusters: Clusters) -> None:
    """Two signals on A, two on B after the failover, two on A after the failback: each is
    delivered once, in order."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("signal"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        on_a = await a.start_workflow(Collector.run, 6, id=workflow_id, task_queue=queue)
        on_b = b.get_workflow_handle(workflow_id)
        await on_a.signal(Collector.add, "a1")
        await on_a.signal(Collector.add, "a2")
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        await _once_active(lambda: on_b.signal(Collector.add, "b1"))
        await on_b.signal(Collector.add, "b2")
        await _fail_over(clusters.b, clusters.a, namespace, 11)
        await _once_active(lambda: on_a.signal(Collector.add, "a3"))
        await on_a.signal(Collector.add, "a4")
        assert await on_a.result() == ["a1", "a2", "b1", "b2", "a3", "a4"]
    await _histories_equal(clusters, namespace)
    signalled = _of_type(await _events(on_b), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert signalled == [1, 1, 2, 2, 11, 11]


async def test_terminate_on_b_after_failover(clusters: Clusters) -> None:
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("terminate"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        on_a = await a.start_workflow(Signalled.run, "x", id=workflow_id, task_queue=queue)
        await _until_event(on_a, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        on_b = b.get_workflow_handle(workflow_id)
        await _once_active(lambda: on_b.terminate(reason="terminate reason"))
    await _histories_equal(clusters, namespace)
    for handle in (on_a, on_b):
        last = (await _events(handle))[-1]
        assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        assert last.version == 2
        assert last.workflow_execution_terminated_event_attributes.reason == "terminate reason"


async def test_reset_on_b_after_failover(clusters: Clusters) -> None:
    """A run whose first workflow task completed on A is reset on B to that task; the new run
    completes on B, the old one is terminated there."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("reset"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        on_a = await a.start_workflow(Collector.run, 1, id=workflow_id, task_queue=queue)
        await _until_event(on_a, _TASK_COMPLETED)
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        first_task = next(e for e in await _events(on_a) if e.event_type == _TASK_COMPLETED)
        reset = await _once_active(
            lambda: b.workflow_service.reset_workflow_execution(
                rr.ResetWorkflowExecutionRequest(
                    namespace=namespace,
                    workflow_execution=common_pb.WorkflowExecution(
                        workflow_id=workflow_id, run_id=on_a.result_run_id or ""
                    ),
                    reason="reset on B",
                    workflow_task_finish_event_id=first_task.event_id,
                    request_id=unique("reset"),
                )
            )
        )
        new_run = b.get_workflow_handle(workflow_id, run_id=reset.run_id)
        await new_run.signal(Collector.add, "after the reset")
        assert await new_run.result() == ["after the reset"]
    await _histories_equal(clusters, namespace)
    old = (await _events(b.get_workflow_handle(workflow_id, run_id=on_a.result_run_id)))[-1]
    assert old.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    assert old.version == 2
    assert {e.version for e in await _events(new_run)} >= {2}


async def test_continue_as_new_chain_continues_on_b_and_back_on_a(clusters: Clusters) -> None:
    """Run 0 continues as new on A, run 1 on B after the failover, run 2 returns on A after
    the failback."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("chain"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        on_a = await a.start_workflow(Chain.run, args=[0, 2], id=workflow_id, task_queue=queue)
        await on_a.signal(Chain.proceed)
        second = await _next_run(a, workflow_id, on_a.result_run_id)
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        await _once_active(lambda: b.get_workflow_handle(workflow_id).signal(Chain.proceed))
        third = await _next_run(b, workflow_id, second)
        await _fail_over(clusters.b, clusters.a, namespace, 11)
        last = a.get_workflow_handle(workflow_id, run_id=third)
        await _once_active(lambda: last.signal(Chain.proceed))
        assert await last.result() == 2
    runs = await _histories_equal(clusters, namespace)
    assert len(runs) == 3
    continued = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert _of_type(
        await _events(a.get_workflow_handle(workflow_id, run_id=second)), continued
    ) == [2]
    assert _of_type(await _events(last), EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == [11]


async def _next_run(client: Client, workflow_id: str, run_id: str | None) -> str:
    """The run that follows `run_id` (its workflow's current run once that differs)."""

    async def moved_on() -> str | None:
        current = (await client.get_workflow_handle(workflow_id).describe()).run_id
        return current if current != run_id else None

    return await eventually(moved_on, REPLICATED_S)


async def test_cron_runs_on_b(clusters: Clusters) -> None:
    """One cron workflow's first run completes on A and, with A's worker gone and the namespace
    failed over, its next run completes on B; another's first run, still waiting for its time
    (no worker on A) at the failover, runs on B."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, waiting_queue = unique("cron"), unique("cron")
    ran_id, waiting_id = unique("wf"), unique("wf")
    every = "@every 2s"
    async with _worker(a, queue):
        ran = await a.start_workflow(RunId.run, id=ran_id, task_queue=queue, cron_schedule=every)
        waiting = await a.start_workflow(
            RunId.run, id=waiting_id, task_queue=waiting_queue, cron_schedule=every
        )
        second = await _next_run(a, ran_id, ran.first_execution_run_id)
    await _fail_over(clusters.a, clusters.b, namespace, 2)
    async with _worker(b, queue), _worker(b, waiting_queue):
        await _next_run(b, ran_id, second)
        await _next_run(b, waiting_id, waiting.first_execution_run_id)
    for workflow_id in (ran_id, waiting_id):
        await _once_active(
            lambda w=workflow_id: b.get_workflow_handle(w).terminate(reason="enough")  # type: ignore[misc]
        )
    await _histories_equal(clusters, namespace)

    async def completed(workflow_id: str, run_id: str | None) -> list[int]:
        events = await _events(b.get_workflow_handle(workflow_id, run_id=run_id))
        return _of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)

    assert await completed(ran_id, ran.first_execution_run_id) == [1]
    assert await completed(ran_id, second) == [2]
    assert await completed(waiting_id, waiting.first_execution_run_id) == [2]


async def test_workflow_retries_on_b(clusters: Clusters) -> None:
    """A workflow failing its first two attempts: one whose attempt 1 failed on A runs attempts
    2 and 3 on B, A's worker gone and the namespace failed over; another, started on A with no
    worker there, runs all three on B (its second run started at version 2)."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, waiting_queue = unique("retry"), unique("retry")
    retry = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
    async with _worker(a, queue):
        failed_on_a = await a.start_workflow(
            FailsUntilThirdAttempt.run, id=unique("wf"), task_queue=queue, retry_policy=retry
        )
        waiting = await a.start_workflow(
            FailsUntilThirdAttempt.run,
            id=unique("wf"),
            task_queue=waiting_queue,
            retry_policy=retry,
        )
        second = await _next_run(a, failed_on_a.id, failed_on_a.first_execution_run_id)
    await _fail_over(clusters.a, clusters.b, namespace, 2)
    async with _worker(b, queue), _worker(b, waiting_queue):
        for handle in (failed_on_a, waiting):
            assert await b.get_workflow_handle(handle.id).result() == 3
    await _histories_equal(clusters, namespace)

    async def run(workflow_id: str, run_id: str | None) -> list[history_pb.HistoryEvent]:
        return await _events(b.get_workflow_handle(workflow_id, run_id=run_id))

    failed = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    assert _of_type(await run(failed_on_a.id, failed_on_a.first_execution_run_id), failed) == [1]
    assert _of_type(await run(failed_on_a.id, second), failed) == [2]
    assert _of_type(await run(waiting.id, waiting.first_execution_run_id), failed) == [2]
    first_failure = (await run(waiting.id, waiting.first_execution_run_id))[-1]
    next_run_id = first_failure.workflow_execution_failed_event_attributes.new_execution_run_id
    started = (await run(waiting.id, next_run_id))[0]
    assert started.version == 2
    assert started.workflow_execution_started_event_attributes.attempt == 2


async def test_heartbeat_details_survive_failover_and_time_out_on_b(clusters: Clusters) -> None:
    """An attempt heartbeating `100` on A is refused its heartbeats after the failover; B times
    it out on its heartbeat (the details kept), and B's worker runs attempt 2 with them."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, workflow_id = unique("heartbeat"), unique("wf")
    async with _worker(a, queue):
        handle = await a.start_workflow(Heartbeating.run, id=workflow_id, task_queue=queue)

        async def heartbeat_recorded() -> bool | None:
            pending = (await handle.describe()).raw_description.pending_activities
            return True if pending and pending[0].HasField("heartbeat_details") else None

        await eventually(heartbeat_recorded, REPLICATED_S)
        await _fail_over(clusters.a, clusters.b, namespace, 2)
        on_b = b.get_workflow_handle(workflow_id)

        async def timed_out_on_b() -> bool | None:
            pending = (await on_b.describe()).raw_description.pending_activities
            if not pending or pending[0].attempt < 2:
                return None
            return True

        await eventually(timed_out_on_b, REPLICATED_S)
    pending = (await on_b.describe()).raw_description.pending_activities[0]
    heartbeat = workflow_pb2.TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    assert pending.last_failure.timeout_failure_info.timeout_type == heartbeat
    assert (await b.data_converter.decode(pending.heartbeat_details.payloads)) == [100]
    async with _worker(b, queue):
        assert await on_b.result() == "resumed at 100 on attempt 2"
    await _histories_equal(clusters, namespace)


async def test_id_reuse_and_conflict_policies_on_b(clusters: Clusters) -> None:
    """After the failover, B applies the id reuse policies to a run that completed on A and the
    conflict policies to one still running from A."""
    namespace = await _register_global(clusters)
    a, b = _clients(clusters, namespace)
    queue, completed_id, running_id = unique("policies"), unique("wf"), unique("wf")
    async with _worker(a, queue), _worker(b, queue):
        done = await a.start_workflow(RunId.run, id=completed_id, task_queue=queue)
        await done.result()
        running = await a.start_workflow(Collector.run, 1, id=running_id, task_queue=queue)
        await _until_event(running, _TASK_COMPLETED)
        await _fail_over(clusters.a, clusters.b, namespace, 2)

        def reuse(policy: WorkflowIDReusePolicy) -> Awaitable[WorkflowHandle[RunId, str]]:
            return b.start_workflow(
                RunId.run, id=completed_id, task_queue=queue, id_reuse_policy=policy
            )

        def conflict(
            policy: WorkflowIDConflictPolicy,
        ) -> Awaitable[WorkflowHandle[Collector, list[str]]]:
            return b.start_workflow(
                Collector.run, 1, id=running_id, task_queue=queue, id_conflict_policy=policy
            )

        for refusing in (
            WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            WorkflowIDReusePolicy.REJECT_DUPLICATE,
        ):
            with pytest.raises(WorkflowAlreadyStartedError):
                await _once_active(lambda p=refusing: reuse(p))  # type: ignore[misc]
        again = await reuse(WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        assert await again.result() == again.result_run_id

        existing = await conflict(WorkflowIDConflictPolicy.USE_EXISTING)
        assert existing.result_run_id == running.result_run_id
        replacing = await conflict(WorkflowIDConflictPolicy.TERMINATE_EXISTING)
        assert replacing.result_run_id != running.result_run_id
        await replacing.signal(Collector.add, "on B")
        assert await replacing.result() == ["on B"]
    await _histories_equal(clusters, namespace)
    replaced = a.get_workflow_handle(running_id, run_id=running.result_run_id)
    terminated = (await _events(replaced))[-1]
    assert terminated.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    assert terminated.version == 2
    described = await replaced.describe()
    assert described.raw_description.workflow_execution_info.status == (
        workflow_pb2.WORKFLOW_EXECUTION_STATUS_TERMINATED
    )
