"""Workflow task commands and workflow task lifecycle through the official SDK: timers, memo
upserts, markers, workflow task failures, sticky execution across worker restarts, concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import (
    EventType,
    PendingWorkflowTaskState,
    TaskQueueKind,
    TaskQueueType,
    WorkflowTaskFailedCause,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError, TerminatedError
from temporalio.exceptions import TimeoutError as WorkflowTimeoutError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique

pytestmark = pytest.mark.timeout(30)

# How many times each workflow id has started running its workflow code in this process (the
# workers are unsandboxed, so module state is shared with the test).
RUNS: dict[str, int] = {}


def count_run() -> int:
    """Count one more execution of the calling workflow's code; returns the new count."""
    workflow_id = workflow.info().workflow_id
    RUNS[workflow_id] = RUNS.get(workflow_id, 0) + 1
    return RUNS[workflow_id]


# Holds requested by tests, by workflow id: (entered, release). A hold is used once.
HOLDS: dict[str, tuple[threading.Event, threading.Event]] = {}


def hold_if_requested() -> None:
    """Keep the current workflow task in flight (started, not completed) until the test releases
    it. Workflow code runs in a worker thread, so this blocks only this workflow's task."""
    hold = HOLDS.pop(workflow.info().workflow_id, None)
    if hold is not None:
        entered, release = hold
        entered.set()
        release.wait(5)


def request_hold(workflow_id: str) -> tuple[threading.Event, threading.Event]:
    HOLDS[workflow_id] = hold = (threading.Event(), threading.Event())
    return hold


async def wait_set(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10)


# ---- workflows --------------------------------------------------------------------------------


@workflow.defn
class SleepingWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> float:
        start = workflow.now()
        await workflow.sleep(seconds)
        await workflow.sleep(seconds)
        return (workflow.now() - start).total_seconds()


@workflow.defn
class CancelTimerWorkflow:
    """Waits for a signal with a long timeout; the signal wins, so the timer is cancelled."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        try:
            await asyncio.wait_for(workflow.wait_condition(lambda: self.go), timeout=60)
        except TimeoutError:
            return "timed out"
        return "signalled"

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.query
    def waiting(self) -> bool:
        return not self.go


@workflow.defn
class MemoWorkflow:
    @workflow.run
    async def run(self) -> str:
        workflow.upsert_memo({"stage": "working", "extra": {"n": 1}, "initial": None})
        return await workflow.execute_activity(
            "gated", start_to_close_timeout=timedelta(seconds=20)
        )


@workflow.defn
class PatchedWorkflow:
    @workflow.run
    async def run(self) -> str:
        if workflow.patched("new-behaviour"):
            return "patched"
        return "original"


@workflow.defn
class FailFirstTaskWorkflow:
    """Its first workflow task raises a non-Temporal error (a bug); the retried task succeeds."""

    @workflow.run
    async def run(self) -> str:
        if count_run() == 1:
            raise RuntimeError("bug in workflow code")
        return "recovered"


@workflow.defn
class DuplicateActivityIdWorkflow:
    """First run schedules two activities with the same id (rejected by the server); the retried
    workflow task schedules them with distinct ids."""

    @workflow.run
    async def run(self) -> list[str]:
        first_run = count_run() == 1
        ids = ["same", "same"] if first_run else ["one", "two"]
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(
                        echo, i, activity_id=i, start_to_close_timeout=timedelta(seconds=10)
                    )
                    for i in ids
                )
            )
        )


@workflow.defn
class SignalWaitWorkflow:
    def __init__(self) -> None:
        self.value: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.value is not None)
        return f"got {self.value}"

    @workflow.signal
    def deliver(self, value: str) -> None:
        self.value = value

    @workflow.query
    def waiting(self) -> bool:
        return self.value is None


@workflow.defn
class HeldMailboxWorkflow:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.closed = False

    @workflow.run
    async def run(self, wait_for_close: bool) -> list[str]:
        hold_if_requested()
        if wait_for_close:
            await workflow.wait_condition(lambda: self.closed)
        return list(self.messages)

    @workflow.signal
    def add(self, message: str) -> None:
        self.messages.append(message)
        if message == "hold":
            hold_if_requested()

    @workflow.signal
    def close(self) -> None:
        self.closed = True

    @workflow.query
    def received(self) -> list[str]:
        return list(self.messages)


@workflow.defn
class EchoWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        doubled = await workflow.execute_activity(
            double, n, start_to_close_timeout=timedelta(seconds=20)
        )
        await workflow.sleep(0.05)
        return doubled


# ---- activities -------------------------------------------------------------------------------


@activity.defn
async def echo(value: str) -> str:
    return value


@activity.defn
async def double(n: int) -> int:
    return 2 * n


class Gate:
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
    workflows: Sequence[type],
    activities: Sequence[Any] = (),
    **kwargs: Any,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        workflow_runner=UnsandboxedWorkflowRunner(),
        **kwargs,
    )


async def history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


def of_type(events: list[HistoryEvent], event_type: int) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == event_type]


# ---- tests ------------------------------------------------------------------------------------


async def test_timers(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [SleepingWorkflow]):
        handle = await client.start_workflow(
            SleepingWorkflow.run, 0.5, id=unique("sleep"), task_queue=tq
        )
        elapsed = await handle.result()
    assert elapsed >= 1.0

    events = await history(handle)
    started = of_type(events, EventType.EVENT_TYPE_TIMER_STARTED)
    fired = of_type(events, EventType.EVENT_TYPE_TIMER_FIRED)
    assert len(started) == len(fired) == 2
    for start, fire in zip(started, fired, strict=True):
        attrs = start.timer_started_event_attributes
        assert attrs.start_to_fire_timeout.ToMilliseconds() == 500
        assert fire.timer_fired_event_attributes.timer_id == attrs.timer_id
        assert fire.timer_fired_event_attributes.started_event_id == start.event_id
        waited = fire.event_time.ToDatetime() - start.event_time.ToDatetime()
        assert timedelta(milliseconds=500) <= waited < timedelta(seconds=3)
    assert (
        started[0].timer_started_event_attributes.timer_id
        != started[1].timer_started_event_attributes.timer_id
    )
    # Each firing wakes the workflow with a new workflow task.
    assert len(of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)) == 3


async def test_timer_cancel(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [CancelTimerWorkflow]):
        handle = await client.start_workflow(
            CancelTimerWorkflow.run, id=unique("cancel-timer"), task_queue=tq
        )
        assert await handle.query(CancelTimerWorkflow.waiting) is True  # the timer is running
        await handle.signal(CancelTimerWorkflow.proceed)
        assert await handle.result() == "signalled"

    events = await history(handle)
    (started,) = of_type(events, EventType.EVENT_TYPE_TIMER_STARTED)
    (canceled,) = of_type(events, EventType.EVENT_TYPE_TIMER_CANCELED)
    assert not of_type(events, EventType.EVENT_TYPE_TIMER_FIRED)
    attrs = canceled.timer_canceled_event_attributes
    assert attrs.timer_id == started.timer_started_event_attributes.timer_id
    assert attrs.started_event_id == started.event_id
    assert started.timer_started_event_attributes.start_to_fire_timeout.seconds == 60


async def test_upsert_memo_visible_in_describe(client: Client) -> None:
    tq = unique("tq")
    gate = Gate()
    async with new_worker(client, tq, [MemoWorkflow], [gate.gated]):
        handle = await client.start_workflow(
            MemoWorkflow.run,
            id=unique("memo"),
            task_queue=tq,
            memo={"initial": "value", "kept": True},
        )
        # The activity is scheduled by the same workflow task that upserted the memo.
        await asyncio.wait_for(gate.started.wait(), 10)
        memo = await (await handle.describe()).memo()
        assert memo == {"kept": True, "stage": "working", "extra": {"n": 1}}
        gate.release.set()
        assert await handle.result() == "released"

    (modified,) = of_type(await history(handle), EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED)
    upserted = modified.workflow_properties_modified_event_attributes.upserted_memo.fields
    assert set(upserted) == {"stage", "extra", "initial"}
    assert upserted["stage"].data == b'"working"'
    # Visibility carries the merged memo too.
    (listed,) = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert await listed.memo() == {"kept": True, "stage": "working", "extra": {"n": 1}}


async def test_patched_records_marker(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [PatchedWorkflow]):
        handle = await client.start_workflow(
            PatchedWorkflow.run, id=unique("patched"), task_queue=tq
        )
        assert await handle.result() == "patched"

    events = await history(handle)
    (marker,) = of_type(events, EventType.EVENT_TYPE_MARKER_RECORDED)
    attrs = marker.marker_recorded_event_attributes
    assert attrs.marker_name == "core_patch"
    assert b"new-behaviour" in attrs.details["patch-data"].payloads[0].data
    assert events[attrs.workflow_task_completed_event_id - 1].event_type == (
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    # The completed run replays with the marker (a query is answered by replaying history).
    async with new_worker(client, tq, [PatchedWorkflow]):
        assert await handle.query("__stack_trace") is not None


async def test_workflow_task_failure_then_recovery(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [FailFirstTaskWorkflow]):
        handle = await client.start_workflow(
            FailFirstTaskWorkflow.run, id=unique("wft-fail"), task_queue=tq
        )
        assert await handle.result() == "recovered"
    assert RUNS[handle.id] == 2

    events = await history(handle)
    types = [e.event_type for e in events]
    (failed,) = of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    attrs = failed.workflow_task_failed_event_attributes
    assert (
        attrs.cause
        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE
    )
    assert "bug in workflow code" in attrs.failure.message
    assert types[: types.index(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) + 1] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    ]
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    # The retry is a second attempt of the workflow task.
    retried = of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)[1]
    assert retried.workflow_task_scheduled_event_attributes.attempt == 2


async def test_invalid_command_fails_workflow_task(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [DuplicateActivityIdWorkflow], [echo]):
        handle = await client.start_workflow(
            DuplicateActivityIdWorkflow.run, id=unique("dup-activity"), task_queue=tq
        )
        assert await handle.result() == ["one", "two"]

    events = await history(handle)
    (failed,) = of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    attrs = failed.workflow_task_failed_event_attributes
    assert (
        attrs.cause
        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    )
    assert "same" in attrs.failure.message
    # None of the rejected task's commands took effect.
    scheduled = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    assert [e.activity_task_scheduled_event_attributes.activity_id for e in scheduled] == [
        "one",
        "two",
    ]
    assert all(e.event_id > failed.event_id for e in scheduled)


async def test_signal_during_workflow_task_is_buffered(client: Client) -> None:
    """A signal arriving while a workflow task runs is written after that task; the task's
    attempt to complete the workflow is rejected (UnhandledCommand) so the workflow sees it."""
    tq = unique("tq")
    workflow_id = unique("buffered")
    entered, release = request_hold(workflow_id)  # holds the first workflow task
    async with new_worker(client, tq, [HeldMailboxWorkflow]):
        handle = await client.start_workflow(
            HeldMailboxWorkflow.run, False, id=workflow_id, task_queue=tq
        )
        await wait_set(entered)
        pending = (await handle.describe()).raw_description.pending_workflow_task
        assert pending.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
        await handle.signal(HeldMailboxWorkflow.add, "late")
        release.set()
        assert await handle.result() == ["late"]

    events = await history(handle)
    types = [e.event_type for e in events]
    (failed,) = of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    assert failed.workflow_task_failed_event_attributes.cause == (
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
    )
    (signaled,) = of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert types[:5] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    ]
    assert signaled.event_id == failed.event_id + 1
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == 1


async def test_query_sees_signal_accepted_during_workflow_task(client: Client) -> None:
    """Queries are consistent: a signal accepted before the query is reflected in its answer,
    even when it arrived while a workflow task was in flight."""
    tq = unique("tq")
    async with new_worker(client, tq, [HeldMailboxWorkflow]):
        handle = await client.start_workflow(
            HeldMailboxWorkflow.run, True, id=unique("consistent"), task_queue=tq
        )
        assert await handle.query(HeldMailboxWorkflow.received) == []
        entered, release = request_hold(handle.id)
        await handle.signal(HeldMailboxWorkflow.add, "hold")  # its workflow task is held
        await wait_set(entered)
        await handle.signal(HeldMailboxWorkflow.add, "during task")
        # Whether the query reaches the server before or after the held task completes, the
        # answer must include both signals.
        query = asyncio.create_task(handle.query(HeldMailboxWorkflow.received))
        await asyncio.to_thread(release.set)
        assert await asyncio.wait_for(query, 10) == ["hold", "during task"]
        await handle.signal(HeldMailboxWorkflow.close)
        assert await handle.result() == ["hold", "during task"]


async def test_cancel_request_during_workflow_task(client: Client) -> None:
    tq = unique("tq")
    workflow_id = unique("cancel-in-flight")
    entered, release = request_hold(workflow_id)
    async with new_worker(client, tq, [HeldMailboxWorkflow]):
        handle = await client.start_workflow(
            HeldMailboxWorkflow.run, True, id=workflow_id, task_queue=tq
        )
        await wait_set(entered)
        await handle.cancel()
        release.set()
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert isinstance(err.value.cause, CancelledError)
    types = [e.event_type for e in await history(handle)]
    # The request waited for the running task and was delivered in the next one.
    assert types == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    ]


@pytest.mark.parametrize("close_by", ["terminate", "run_timeout"])
async def test_close_with_workflow_task_in_flight(client: Client, close_by: str) -> None:
    """Closing a run while a worker holds its workflow task fails that task (ForceCloseCommand)
    before the close event, and the worker's late completion is refused."""
    tq = unique("tq")
    workflow_id = unique(close_by)
    entered, release = request_hold(workflow_id)
    # The task is held ~1s, below the SDK's 2s deadlock detection.
    async with new_worker(client, tq, [HeldMailboxWorkflow]):
        handle = await client.start_workflow(
            HeldMailboxWorkflow.run,
            False,
            id=workflow_id,
            task_queue=tq,
            run_timeout=timedelta(seconds=1) if close_by == "run_timeout" else None,
        )
        await wait_set(entered)
        if close_by == "terminate":
            await handle.terminate(reason="while busy")
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        release.set()
    assert isinstance(
        err.value.cause, TerminatedError if close_by == "terminate" else WorkflowTimeoutError
    )
    expected_status = (
        WorkflowExecutionStatus.TERMINATED
        if close_by == "terminate"
        else WorkflowExecutionStatus.TIMED_OUT
    )
    assert (await handle.describe()).status == expected_status

    events = await history(handle)
    assert [e.event_type for e in events] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        if close_by == "terminate"
        else EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    ]
    assert events[3].workflow_task_failed_event_attributes.cause == (
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
    )


async def test_sticky_execution_survives_worker_restart(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [SignalWaitWorkflow], identity="first-worker"):
        handle = await client.start_workflow(
            SignalWaitWorkflow.run, id=unique("restart"), task_queue=tq
        )
        assert await handle.query(SignalWaitWorkflow.waiting) is True
    # The first worker shut down; its sticky queue has no poller any more.
    async with new_worker(client, tq, [SignalWaitWorkflow], identity="second-worker"):
        await handle.signal(SignalWaitWorkflow.deliver, "it")
        assert await handle.result() == "got it"

    events = await history(handle)
    assert not of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
    completed = of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    identities = [e.workflow_task_completed_event_attributes.identity for e in completed]
    assert identities == ["first-worker", "second-worker"]
    scheduled = of_type(events, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
    # The task after the restart went to the normal queue, not the departed worker's sticky one.
    task_queue = scheduled[-1].workflow_task_scheduled_event_attributes.task_queue
    assert (task_queue.name, task_queue.kind) == (tq, TaskQueueKind.TASK_QUEUE_KIND_NORMAL)


async def test_many_concurrent_workflows(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [EchoWorkflow], [double]):
        handles = await asyncio.gather(
            *(
                client.start_workflow(EchoWorkflow.run, n, id=unique(f"many-{n}"), task_queue=tq)
                for n in range(50)
            )
        )
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == [2 * n for n in range(50)]
    assert len({h.result_run_id for h in handles}) == 50
    count = await client.count_workflows(f"TaskQueue = '{tq}' AND ExecutionStatus = 'Completed'")
    assert count.count == 50


async def test_describe_task_queue_lists_pollers(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [SleepingWorkflow]):
        # Running a workflow through the worker proves it has polled the queue.
        handle = await client.start_workflow(
            SleepingWorkflow.run, 0.01, id=unique("wf"), task_queue=tq
        )
        await handle.result()
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=tq),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                report_stats=True,
            )
        )
    assert [p.identity for p in response.pollers] == [client.identity]
    assert response.stats.approximate_backlog_count == 0
