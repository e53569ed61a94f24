"""Conformance scenarios: workflows, activities and one driver per scenario.

A driver starts its scenario's workflow and returns the handle; the harness then waits for
the workflow to close and compares its history. Wherever the order of history events would
otherwise depend on timing (a signal racing a workflow task, activity completions racing
each other), the driver first waits for a history event (long poll) or an in-process gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy, SearchAttributeKey, VersioningBehavior
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ActivityCancellationType

Driver = Callable[[Client, str, str], Awaitable[WorkflowHandle[Any, Any]]]

ACTIVITY_TIMEOUT = timedelta(seconds=30)
FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0)
BATCHER_USER = SearchAttributeKey.for_keyword("BatcherUser")


@dataclass(frozen=True)
class Scenario:
    """A named workflow run: the worker's registrations and the driver that steers it."""

    name: str
    drive: Driver
    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]] = ()
    skip: str | None = None
    # Run on a versioned worker (a new worker deployment whose only version is made current)
    # whose workflows default to this behaviour.
    versioning: VersioningBehavior | None = None


SCENARIOS: list[Scenario] = []


def scenario(
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]] = (),
    skip: str | None = None,
    versioning: VersioningBehavior | None = None,
) -> Callable[[Driver], Driver]:
    """Register the decorated driver as a scenario named after it."""

    def register(drive: Driver) -> Driver:
        SCENARIOS.append(
            Scenario(drive.__name__, drive, tuple(workflows), tuple(activities), skip, versioning)
        )
        return drive

    return register


# In-process gates between drivers and activities (both run on the test's event loop).
_gates: dict[str, asyncio.Event] = {}


def gate(key: str) -> asyncio.Event:
    """The event named `key`, created on first use."""
    return _gates.setdefault(key, asyncio.Event())


async def wait_for_event(
    handle: WorkflowHandle[Any, Any], event_type: EventType.ValueType, count: int = 1
) -> None:
    """Return once the history holds `count` events of `event_type` (history long poll)."""
    seen = 0
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == event_type:
            seen += 1
            if seen == count:
                return
    raise AssertionError(f"workflow closed before {count} x {EventType.Name(event_type)}")


async def first_task_completed(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the workflow's first workflow task has completed (it is now blocked)."""
    await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)


# Activities


@activity.defn
async def echo(value: str) -> str:
    return f"echo:{value}"


@activity.defn
async def gated(index: int) -> int:
    """Open gate `<workflow id>/<index>/started`, return once the driver opens `.../<index>`."""
    key = f"{activity.info().workflow_id}/{index}"
    gate(f"{key}/started").set()
    await gate(key).wait()
    return index


@activity.defn
async def flaky(succeed_on: int) -> str:
    attempt = activity.info().attempt
    if attempt < succeed_on:
        raise ApplicationError(f"attempt {attempt} failed", {"attempt": attempt}, type="Flaky")
    return f"succeeded on attempt {attempt}"


@activity.defn
async def refuse() -> None:
    raise ApplicationError("refused for good", type="Refused", non_retryable=True)


@activity.defn
async def stall() -> None:
    """Never finish (the worker cancels it at shutdown)."""
    await asyncio.Event().wait()


@activity.defn
async def heartbeat_then_stall() -> None:
    activity.heartbeat("progress-1")
    await asyncio.Event().wait()


@activity.defn
async def heartbeat_until_cancelled() -> str:
    """Open gate `<workflow id>/started`, then heartbeat until cancellation is reported."""
    gate(f"{activity.info().workflow_id}/started").set()
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.05)  # heartbeat cadence; cancellation arrives as CancelledError


# Workflows


@workflow.defn
class ReturnValue:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello, {name}"


@workflow.defn
class FailWithApplicationError:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("failed on purpose", {"reason": "test"}, type="PurposefulFailure")


@workflow.defn
class SequentialActivities:
    @workflow.run
    async def run(self, count: int) -> list[str]:
        return [
            await workflow.execute_activity(
                echo, f"step-{i}", start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            for i in range(count)
        ]


@workflow.defn
class ParallelActivities:
    @workflow.run
    async def run(self, count: int) -> list[int]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(gated, i, start_to_close_timeout=ACTIVITY_TIMEOUT)
                    for i in range(count)
                )
            )
        )


@workflow.defn
class RetryThenSucceed:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            flaky,
            3,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=1.0,
                maximum_attempts=5,
            ),
        )


@workflow.defn
class NonRetryableActivity:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            refuse, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=FAST_RETRY
        )


@workflow.defn
class StartToCloseTimeout:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                stall,
                start_to_close_timeout=timedelta(seconds=1),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=100), maximum_attempts=2
                ),
            )
        except ActivityError as err:
            assert isinstance(err.cause, TemporalTimeoutError)
            return f"{err.retry_state.name if err.retry_state else None}/{err.cause.type}"
        return "not timed out"


@workflow.defn
class HeartbeatTimeout:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            heartbeat_then_stall,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@workflow.defn
class Timer:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(milliseconds=500))
        return "fired"


@workflow.defn
class AwaitSignal:
    """Wait for the `finish` signal and return its value; `status` reports progress."""

    def __init__(self) -> None:
        self.value: str | None = None

    @workflow.signal
    def finish(self, value: str) -> None:
        self.value = value

    @workflow.query
    def status(self) -> str:
        return "waiting" if self.value is None else f"finishing with {self.value}"

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.value is not None)
        assert self.value is not None
        return self.value


@workflow.defn
class AwaitSignalWithTimeout(AwaitSignal):
    """Like AwaitSignal, but the wait has a timeout, so the signal cancels a timer."""

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.value is not None, timeout=timedelta(hours=1))
        assert self.value is not None
        return self.value


@workflow.defn
class AwaitSignalAfterLocalActivity(AwaitSignal):
    """Like AwaitSignal, but first runs a gated local activity inside the first workflow task."""

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_local_activity(gated, 0, start_to_close_timeout=ACTIVITY_TIMEOUT)
        await workflow.wait_condition(lambda: self.value is not None)
        assert self.value is not None
        return self.value


@workflow.defn
class CompleteAfterLocalActivity(AwaitSignal):
    """Run a gated local activity, then complete without waiting for any signal."""

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_local_activity(gated, 0, start_to_close_timeout=ACTIVITY_TIMEOUT)
        return f"value at completion: {self.value}"


@workflow.defn
class CleanUpOnCancel:
    @workflow.run
    async def run(self) -> None:
        try:
            await workflow.wait_condition(lambda: False)
        except asyncio.CancelledError:
            await workflow.execute_activity(
                echo, "cleanup", start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            raise


@dataclass(frozen=True)
class CancelActivityInput:
    wait_for_cancellation: bool
    before_start: bool = False


@workflow.defn
class CancelActivity:
    """Start an activity, cancel it on the `cancel_activity` signal, report the outcome.

    The activity heartbeats until cancelled, or (`before_start`) sits on a task queue that no
    worker polls, so it is still only scheduled when the cancellation is requested.
    """

    def __init__(self) -> None:
        self.cancel = False

    @workflow.signal
    def cancel_activity(self) -> None:
        self.cancel = True

    @workflow.run
    async def run(self, params: CancelActivityInput) -> str:
        cancellation_type = (
            ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if params.wait_for_cancellation
            else ActivityCancellationType.TRY_CANCEL
        )
        if params.before_start:
            handle = workflow.start_activity(
                echo,
                "never runs",
                task_queue=f"{workflow.info().task_queue}-unpolled",
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                cancellation_type=cancellation_type,
            )
        else:
            handle = workflow.start_activity(
                heartbeat_until_cancelled,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=10),
                cancellation_type=cancellation_type,
            )
        await workflow.wait_condition(lambda: self.cancel)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            return f"activity error: {type(err.cause).__name__}"
        return "activity was not cancelled"


@workflow.defn
class LocalActivity:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_local_activity(
            echo, "local", start_to_close_timeout=ACTIVITY_TIMEOUT
        )


@workflow.defn
class UpsertMemo:
    """Upsert the memo (one key changed, one removed), then run an activity after it."""

    @workflow.run
    async def run(self) -> str:
        workflow.upsert_memo({"stage": "two", "removed": None})
        await workflow.execute_activity(
            echo, "after-upsert", start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        return "upserted"


@workflow.defn
class UpsertSearchAttributes:
    """Upsert BatcherUser, then run an activity after it.

    A fresh dev server has no Custom* attributes; BatcherUser is a predefined Keyword that
    workflows may set without registering anything.
    """

    @workflow.run
    async def run(self) -> str:
        workflow.upsert_search_attributes([BATCHER_USER.value_set("conformance")])
        await workflow.execute_activity(
            echo, "after-upsert", start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        return "upserted"


@workflow.defn
class Patched:
    """`workflow.patched` records a `core_patch` marker and upserts TemporalChangeVersion."""

    @workflow.run
    async def run(self) -> str:
        return "patched" if workflow.patched("conformance-patch") else "unpatched"


@workflow.defn
class ContinueOnce:
    @workflow.run
    async def run(self, iteration: int) -> int:
        if iteration == 0:
            # The reference delays the first task of a run continued from one younger than a
            # second by the remainder (first_workflow_task_backoff); outlive that second.
            await workflow.sleep(timedelta(seconds=1))
            workflow.continue_as_new(1)
        return iteration


@workflow.defn
class ChildOf:
    """Run a child (an AwaitSignal) to its end and return what it returned."""

    @workflow.run
    async def run(self, child_id: str) -> str:
        return await workflow.execute_child_workflow(AwaitSignal.run, id=child_id)


@workflow.defn
class FailingChild:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("child gave up", type="ChildError", non_retryable=True)


@workflow.defn
class ChildFailureOf:
    @workflow.run
    async def run(self, child_id: str) -> str:
        try:
            await workflow.execute_child_workflow(FailingChild.run, id=child_id)
        except ChildWorkflowError as e:
            return f"child failed: {e.cause}"
        return "unexpected"


@workflow.defn
class CancelChildOf:
    """Start a child, cancel it once it runs, and report how it ended."""

    @workflow.run
    async def run(self, child_id: str) -> str:
        child = await workflow.start_child_workflow(
            AwaitSignal.run,
            id=child_id,
            cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        child.cancel()
        try:
            await child
        except ChildWorkflowError as e:
            return f"child ended: {type(e.cause).__name__}"
        return "unexpected"


@workflow.defn
class DuplicateChildOf:
    """Start a child whose id is already running: the start fails."""

    @workflow.run
    async def run(self, child_id: str) -> str:
        try:
            await workflow.start_child_workflow(AwaitSignal.run, id=child_id)
        except WorkflowAlreadyStartedError:
            return "already started"
        return "unexpected"


@workflow.defn
class SignalOther:
    @workflow.run
    async def run(self, target_id: str) -> str:
        await workflow.get_external_workflow_handle(target_id).signal(AwaitSignal.finish, "hi")
        try:
            await workflow.get_external_workflow_handle(target_id + "-missing").signal(
                AwaitSignal.finish, "nobody"
            )
        except ApplicationError as e:
            return f"signalled; missing target: {e.type}"
        return "unexpected"


@workflow.defn
class CancelOther:
    @workflow.run
    async def run(self, target_id: str) -> str:
        await workflow.get_external_workflow_handle(target_id).cancel()
        return "cancel requested"


@workflow.defn
class ActivityThenSignal:
    """Run one activity, then wait for `finish`."""

    def __init__(self) -> None:
        self.value: str | None = None

    @workflow.signal
    def finish(self, value: str) -> None:
        self.value = value

    @workflow.run
    async def run(self) -> str:
        echoed = await workflow.execute_activity(
            echo, "before", start_to_close_timeout=timedelta(seconds=10)
        )
        await workflow.wait_condition(lambda: self.value is not None)
        return f"{echoed} then {self.value}"


@workflow.defn
class RetryOnce:
    """Fail the first attempt; the retry policy starts a second run that succeeds."""

    @workflow.run
    async def run(self) -> int:
        if workflow.info().attempt == 1:
            raise ApplicationError("first attempt fails")
        return workflow.info().attempt


# Scenarios


@scenario([ReturnValue])
async def return_value(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        ReturnValue.run, "world", id=workflow_id, task_queue=task_queue
    )


@scenario([FailWithApplicationError])
async def workflow_failure(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        FailWithApplicationError.run, id=workflow_id, task_queue=task_queue
    )


@scenario([SequentialActivities], [echo])
async def one_activity(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        SequentialActivities.run, 1, id=workflow_id, task_queue=task_queue
    )


@scenario([SequentialActivities], [echo])
async def ten_sequential_activities(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await client.start_workflow(
        SequentialActivities.run, 10, id=workflow_id, task_queue=task_queue
    )


@scenario([ParallelActivities], [gated])
async def parallel_activities(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    """Three activities scheduled together, completed one at a time in the order 2, 0, 1.

    Each completion is released only after the workflow task triggered by the previous one
    has completed, so no completion lands while a workflow task is in flight.
    """
    handle = await client.start_workflow(
        ParallelActivities.run, 3, id=workflow_id, task_queue=task_queue
    )
    for completed_tasks, index in enumerate((2, 0, 1), start=1):
        await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, completed_tasks)
        gate(f"{workflow_id}/{index}").set()
    return handle


@scenario([RetryThenSucceed], [flaky])
async def activity_retry(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(RetryThenSucceed.run, id=workflow_id, task_queue=task_queue)


@scenario([NonRetryableActivity], [refuse])
async def activity_non_retryable(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await client.start_workflow(
        NonRetryableActivity.run, id=workflow_id, task_queue=task_queue
    )


@scenario([StartToCloseTimeout], [stall])
async def activity_start_to_close_timeout(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await client.start_workflow(
        StartToCloseTimeout.run, id=workflow_id, task_queue=task_queue
    )


@scenario([HeartbeatTimeout], [heartbeat_then_stall])
async def activity_heartbeat_timeout(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await client.start_workflow(HeartbeatTimeout.run, id=workflow_id, task_queue=task_queue)


@scenario([Timer])
async def timer(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(Timer.run, id=workflow_id, task_queue=task_queue)


@scenario([AwaitSignalWithTimeout])
async def timer_cancelled(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    handle = await client.start_workflow(
        AwaitSignalWithTimeout.run, id=workflow_id, task_queue=task_queue
    )
    await first_task_completed(handle)
    await handle.signal(AwaitSignalWithTimeout.finish, "before the timer")
    return handle


@scenario([AwaitSignal])
async def signal(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    handle = await client.start_workflow(AwaitSignal.run, id=workflow_id, task_queue=task_queue)
    await first_task_completed(handle)
    await handle.signal(AwaitSignal.finish, "signalled")
    return handle


@scenario([AwaitSignalAfterLocalActivity], [gated])
async def signal_during_workflow_task(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    """Signal while the first workflow task is running (blocked in a local activity).

    The reference buffers the signal and writes it after that task's completion events.
    """
    handle = await client.start_workflow(
        AwaitSignalAfterLocalActivity.run, id=workflow_id, task_queue=task_queue
    )
    await gate(f"{workflow_id}/0/started").wait()
    await handle.signal(AwaitSignalAfterLocalActivity.finish, "signalled mid-task")
    gate(f"{workflow_id}/0").set()
    return handle


@scenario([CompleteAfterLocalActivity], [gated])
async def signal_during_completing_task(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    """Signal while the workflow task that completes the workflow is running.

    The reference rejects that completion (WorkflowTaskFailed, UNHANDLED_COMMAND), writes the
    signal, and the next workflow task completes the workflow having seen it.
    """
    handle = await client.start_workflow(
        CompleteAfterLocalActivity.run, id=workflow_id, task_queue=task_queue
    )
    await gate(f"{workflow_id}/0/started").wait()
    await handle.signal(CompleteAfterLocalActivity.finish, "signalled mid-task")
    gate(f"{workflow_id}/0").set()
    return handle


@scenario([AwaitSignal])
async def signal_with_start(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        AwaitSignal.run,
        id=workflow_id,
        task_queue=task_queue,
        start_signal="finish",
        start_signal_args=["signalled at start"],
    )


@scenario([AwaitSignal])
async def query(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    """Query a blocked workflow: the answer is right and the history does not grow."""
    handle = await client.start_workflow(AwaitSignal.run, id=workflow_id, task_queue=task_queue)
    await first_task_completed(handle)
    before = await handle.fetch_history()
    assert await handle.query(AwaitSignal.status) == "waiting"
    assert (await handle.fetch_history()).events == before.events
    await handle.signal(AwaitSignal.finish, "queried")
    return handle


@scenario([CleanUpOnCancel], [echo])
async def workflow_cancellation(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    handle = await client.start_workflow(CleanUpOnCancel.run, id=workflow_id, task_queue=task_queue)
    await first_task_completed(handle)
    await handle.cancel()
    return handle


@scenario([AwaitSignal])
async def termination(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    handle = await client.start_workflow(AwaitSignal.run, id=workflow_id, task_queue=task_queue)
    await first_task_completed(handle)
    await handle.terminate("terminated-detail", reason="conformance termination")
    return handle


async def _cancel_activity(
    client: Client, task_queue: str, workflow_id: str, params: CancelActivityInput
) -> WorkflowHandle:
    handle = await client.start_workflow(
        CancelActivity.run, params, id=workflow_id, task_queue=task_queue
    )
    if params.before_start:
        await first_task_completed(handle)
    else:
        await gate(f"{workflow_id}/started").wait()
    await handle.signal(CancelActivity.cancel_activity)
    return handle


@scenario([CancelActivity], [heartbeat_until_cancelled])
async def activity_cancel_try_cancel(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    """TRY_CANCEL a running activity: the workflow moves on without waiting for it."""
    params = CancelActivityInput(wait_for_cancellation=False)
    return await _cancel_activity(client, task_queue, workflow_id, params)


@scenario([CancelActivity], [heartbeat_until_cancelled])
async def activity_cancel_wait_completed(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    """WAIT_CANCELLATION_COMPLETED: the activity learns of it by heartbeat and acknowledges."""
    params = CancelActivityInput(wait_for_cancellation=True)
    return await _cancel_activity(client, task_queue, workflow_id, params)


@scenario([CancelActivity])
async def activity_cancel_before_start_try_cancel(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    params = CancelActivityInput(wait_for_cancellation=False, before_start=True)
    return await _cancel_activity(client, task_queue, workflow_id, params)


@scenario([CancelActivity])
async def activity_cancel_before_start_wait_completed(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    """The server cancels a never-started activity itself, in the same batch as the request."""
    params = CancelActivityInput(wait_for_cancellation=True, before_start=True)
    return await _cancel_activity(client, task_queue, workflow_id, params)


@scenario([LocalActivity], [echo])
async def local_activity(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(LocalActivity.run, id=workflow_id, task_queue=task_queue)


@scenario([UpsertMemo], [echo])
async def upsert_memo(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        UpsertMemo.run,
        id=workflow_id,
        task_queue=task_queue,
        memo={"stage": "one", "removed": "soon"},
    )


@scenario([UpsertSearchAttributes], [echo])
async def upsert_search_attributes(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await client.start_workflow(
        UpsertSearchAttributes.run, id=workflow_id, task_queue=task_queue
    )


@scenario([Patched])
async def patch_marker(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(Patched.run, id=workflow_id, task_queue=task_queue)


@scenario([ContinueOnce])
async def continue_as_new(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(ContinueOnce.run, 0, id=workflow_id, task_queue=task_queue)


@scenario([ChildOf, AwaitSignal])
async def child_workflow(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    handle = await client.start_workflow(
        ChildOf.run, f"{workflow_id}-child", id=workflow_id, task_queue=task_queue
    )
    await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2)
    await client.get_workflow_handle(f"{workflow_id}-child").signal(AwaitSignal.finish, "done")
    return handle


@scenario([ChildFailureOf, FailingChild])
async def child_workflow_failure(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await client.start_workflow(
        ChildFailureOf.run, f"{workflow_id}-child", id=workflow_id, task_queue=task_queue
    )


@scenario([CancelChildOf, AwaitSignal])
async def child_workflow_cancel(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await client.start_workflow(
        CancelChildOf.run, f"{workflow_id}-child", id=workflow_id, task_queue=task_queue
    )


@scenario([DuplicateChildOf, AwaitSignal])
async def child_workflow_already_running(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    other = await client.start_workflow(
        AwaitSignal.run, id=f"{workflow_id}-child", task_queue=task_queue
    )
    handle = await client.start_workflow(
        DuplicateChildOf.run, f"{workflow_id}-child", id=workflow_id, task_queue=task_queue
    )
    await handle.result()
    await other.terminate()
    return handle


@scenario([SignalOther, AwaitSignal])
async def signal_external(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    target = await client.start_workflow(
        AwaitSignal.run, id=f"{workflow_id}-target", task_queue=task_queue
    )
    await first_task_completed(target)
    handle = await client.start_workflow(
        SignalOther.run, f"{workflow_id}-target", id=workflow_id, task_queue=task_queue
    )
    await target.result()
    return handle


@scenario([CancelOther, AwaitSignal])
async def cancel_external(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    target = await client.start_workflow(
        AwaitSignal.run, id=f"{workflow_id}-target", task_queue=task_queue
    )
    await first_task_completed(target)
    handle = await client.start_workflow(
        CancelOther.run, f"{workflow_id}-target", id=workflow_id, task_queue=task_queue
    )
    await handle.result()
    return handle


@scenario([RetryOnce])
async def workflow_retry(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        RetryOnce.run,
        id=workflow_id,
        task_queue=task_queue,
        retry_policy=RetryPolicy(maximum_attempts=2),
    )


@scenario([ActivityThenSignal], [echo])
async def reset_to_first_task(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    """Reset a completed run to its first workflow task; the later signal is reapplied."""
    handle = await client.start_workflow(
        ActivityThenSignal.run, id=workflow_id, task_queue=task_queue
    )
    await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2)
    await handle.signal(ActivityThenSignal.finish, "signalled")
    await handle.result()
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(
                workflow_id=workflow_id, run_id=handle.result_run_id
            ),
            reason="conformance reset",
            workflow_task_finish_event_id=4,
            request_id=f"{workflow_id}-reset",
        )
    )
    return client.get_workflow_handle(
        workflow_id, run_id=response.run_id, first_execution_run_id=response.run_id
    )


# ---- Worker Versioning -------------------------------------------------------------------------


@scenario([SequentialActivities], [echo], versioning=VersioningBehavior.PINNED)
async def versioned_pinned(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        SequentialActivities.run, 2, id=workflow_id, task_queue=task_queue
    )


@scenario([AwaitSignal], versioning=VersioningBehavior.AUTO_UPGRADE)
async def versioned_auto_upgrade(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    return await signal(client, task_queue, workflow_id)
