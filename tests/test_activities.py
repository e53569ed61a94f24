"""Activities through the official SDK: retries, timeouts, heartbeats, cancellation, async
completion (by task token and by id) and local activities."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.enums.v1 import TimeoutType as RawTimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    AsyncActivityCancelledError,
    AsyncActivityHandle,
    Client,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
    TimeoutType,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique

pytestmark = pytest.mark.timeout(30)

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0)


# ---- activities -------------------------------------------------------------------------------


@activity.defn
async def say_hello(name: str) -> str:
    return f"Hello, {name}!"


class Activities:
    """Activities whose behaviour the test controls; they record every attempt they see."""

    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.task_tokens: asyncio.Queue[bytes] = asyncio.Queue()

    @activity.defn(name="flaky")
    async def flaky(self, failures: int) -> str:
        attempt = activity.info().attempt
        self.attempts.append(attempt)
        if attempt <= failures:
            raise ApplicationError(f"failure on attempt {attempt}", type="Flaky")
        return f"succeeded on attempt {attempt}"

    @activity.defn(name="bad_input")
    async def bad_input(self) -> None:
        self.attempts.append(activity.info().attempt)
        raise ApplicationError("the input is wrong", type="BadInput")

    @activity.defn(name="hang_first_attempt")
    async def hang_first_attempt(self) -> str:
        attempt = activity.info().attempt
        self.attempts.append(attempt)
        if attempt == 1:
            await asyncio.Event().wait()  # never finishes on its own
        return f"done on attempt {attempt}"

    @activity.defn(name="hang")
    async def hang(self) -> None:
        self.attempts.append(activity.info().attempt)
        await asyncio.Event().wait()

    @activity.defn(name="heartbeat_then_stall")
    async def heartbeat_then_stall(self) -> list[str]:
        info = activity.info()
        self.attempts.append(info.attempt)
        if info.attempt == 1:
            activity.heartbeat("progress-1")
            await asyncio.Event().wait()  # stops heartbeating
        return list(info.heartbeat_details)

    @activity.defn(name="heartbeat_until_cancelled")
    async def heartbeat_until_cancelled(self) -> str:
        self.started.set()
        try:
            while True:
                activity.heartbeat("alive")
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    @activity.defn(name="complete_later")
    async def complete_later(self) -> str:
        self.task_tokens.put_nowait(activity.info().task_token)
        activity.raise_complete_async()

    @activity.defn(name="notify")
    async def notify(self) -> None:
        self.started.set()


# ---- workflows --------------------------------------------------------------------------------


@workflow.defn
class HelloActivityWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            say_hello, name, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn
class RunActivityWorkflow:
    """Runs one activity by name with the options the test passes."""

    @workflow.run
    async def run(self, name: str, args: list[Any], options: dict[str, Any]) -> Any:
        retry = options.get("retry")
        return await workflow.execute_activity(
            name,
            args=args,
            activity_id=options.get("activity_id"),
            start_to_close_timeout=_seconds(options.get("start_to_close")),
            schedule_to_close_timeout=_seconds(options.get("schedule_to_close")),
            heartbeat_timeout=_seconds(options.get("heartbeat")),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=1.0,
                maximum_attempts=retry.get("maximum_attempts", 0),
                non_retryable_error_types=retry.get("non_retryable", None),
            )
            if retry is not None
            else None,
        )


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


@workflow.defn
class CancelActivityWorkflow:
    """Starts an activity, cancels it when signalled, and reports how it ended."""

    def __init__(self) -> None:
        self.cancel_now = False

    @workflow.run
    async def run(self, name: str, activity_id: str) -> str:
        handle = workflow.start_activity(
            name,
            activity_id=activity_id,
            start_to_close_timeout=timedelta(seconds=20),
            heartbeat_timeout=timedelta(seconds=2),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: self.cancel_now)
        handle.cancel()
        # Scheduled in the same workflow task as the cancel request: once it runs, the request is
        # recorded.
        notified = workflow.start_activity("notify", start_to_close_timeout=timedelta(seconds=10))
        try:
            await handle
        except ActivityError as err:
            await notified
            assert isinstance(err.cause, CancelledError)
            return "activity cancelled"
        return "activity finished"

    @workflow.signal
    def cancel_activity(self) -> None:
        self.cancel_now = True


@workflow.defn
class LocalActivityWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_local_activity(
            say_hello, name, start_to_close_timeout=timedelta(seconds=10)
        )


# ---- helpers ----------------------------------------------------------------------------------


def new_worker(
    client: Client, task_queue: str, workflows: Sequence[type], activities: Sequence[Any]
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=list(activities),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


def of_type(events: list[HistoryEvent], event_type: int) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == event_type]


async def run_activity(
    client: Client, name: str, *args: Any, task_queue: str, **options: Any
) -> WorkflowHandle[Any, Any]:
    """Start RunActivityWorkflow for activity `name` (a worker must be running on the queue)."""
    return await client.start_workflow(
        RunActivityWorkflow.run,
        args=[name, list(args), options],
        id=unique(name),
        task_queue=task_queue,
    )


# ---- tests ------------------------------------------------------------------------------------


async def test_one_activity(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [HelloActivityWorkflow], [say_hello]):
        handle = await client.start_workflow(
            HelloActivityWorkflow.run, "activity", id=unique("hello"), task_queue=tq
        )
        assert await handle.result() == "Hello, activity!"

    events = await history(handle)
    (scheduled,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    (started,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    (completed,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    attrs = scheduled.activity_task_scheduled_event_attributes
    assert attrs.activity_type.name == "say_hello"
    assert attrs.task_queue.name == tq
    assert attrs.start_to_close_timeout.seconds == 10
    assert started.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id
    assert started.activity_task_started_event_attributes.attempt == 1
    done = completed.activity_task_completed_event_attributes
    assert (done.scheduled_event_id, done.started_event_id) == (
        scheduled.event_id,
        started.event_id,
    )
    assert done.result.payloads[0].data == b'"Hello, activity!"'
    assert scheduled.event_id < started.event_id < completed.event_id


async def test_retries_until_success(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.flaky]):
        handle = await run_activity(client, "flaky", 2, task_queue=tq, start_to_close=5, retry={})
        assert await handle.result() == "succeeded on attempt 3"
    assert acts.attempts == [1, 2, 3]

    events = await history(handle)
    # Retried attempts leave no events: one started event, for the last attempt.
    (started,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    attrs = started.activity_task_started_event_attributes
    assert attrs.attempt == 3
    assert attrs.last_failure.message == "failure on attempt 2"
    assert attrs.last_failure.application_failure_info.type == "Flaky"
    assert len(of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)) == 1
    assert not of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)


async def test_non_retryable_error_type(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.bad_input]):
        handle = await run_activity(
            client,
            "bad_input",
            task_queue=tq,
            start_to_close=5,
            retry={"non_retryable": ["BadInput"]},
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert acts.attempts == [1]
    activity_error = err.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    assert isinstance(activity_error.cause, ApplicationError)
    assert activity_error.cause.type == "BadInput"
    assert activity_error.cause.message == "the input is wrong"

    (failed,) = of_type(await history(handle), EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    attrs = failed.activity_task_failed_event_attributes
    assert attrs.failure.application_failure_info.type == "BadInput"


async def test_maximum_attempts_exhausted(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.flaky]):
        handle = await run_activity(
            client, "flaky", 100, task_queue=tq, start_to_close=5, retry={"maximum_attempts": 3}
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert acts.attempts == [1, 2, 3]
    activity_error = err.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    assert isinstance(activity_error.cause, ApplicationError)
    assert activity_error.cause.message == "failure on attempt 3"

    events = await history(handle)
    (started,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert started.activity_task_started_event_attributes.attempt == 3
    (failed,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    assert failed.activity_task_failed_event_attributes.started_event_id == started.event_id


async def test_start_to_close_timeout_is_retried(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.hang_first_attempt]):
        handle = await run_activity(
            client, "hang_first_attempt", task_queue=tq, start_to_close=1, retry={}
        )
        assert await handle.result() == "done on attempt 2"
    assert acts.attempts == [1, 2]

    events = await history(handle)
    (started,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    attrs = started.activity_task_started_event_attributes
    assert attrs.attempt == 2
    assert (
        attrs.last_failure.timeout_failure_info.timeout_type
        == RawTimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    )
    assert not of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)


async def test_schedule_to_close_timeout(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.hang]):
        handle = await run_activity(
            client, "hang", task_queue=tq, start_to_close=10, schedule_to_close=1.5, retry={}
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    activity_error = err.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.TIMEOUT
    assert isinstance(activity_error.cause, TimeoutError)
    assert activity_error.cause.type == TimeoutType.SCHEDULE_TO_CLOSE
    assert acts.attempts == [1]

    events = await history(handle)
    (timed_out,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)
    attrs = timed_out.activity_task_timed_out_event_attributes
    assert (
        attrs.failure.timeout_failure_info.timeout_type
        == RawTimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE
    )
    (scheduled,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    elapsed = timed_out.event_time.ToDatetime() - scheduled.event_time.ToDatetime()
    assert timedelta(seconds=1.5) <= elapsed < timedelta(seconds=4)


async def test_heartbeat_timeout_passes_details_to_next_attempt(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.heartbeat_then_stall]):
        handle = await run_activity(
            client, "heartbeat_then_stall", task_queue=tq, start_to_close=10, heartbeat=1, retry={}
        )
        assert await handle.result() == ["progress-1"]
    assert acts.attempts == [1, 2]

    (started,) = of_type(await history(handle), EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    attrs = started.activity_task_started_event_attributes
    assert attrs.attempt == 2
    timeout_info = attrs.last_failure.timeout_failure_info
    assert timeout_info.timeout_type == RawTimeoutType.TIMEOUT_TYPE_HEARTBEAT
    assert timeout_info.last_heartbeat_details.payloads[0].data == b'"progress-1"'


async def test_activity_cancellation_from_workflow(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    notifier = Activities()
    async with new_worker(
        client, tq, [CancelActivityWorkflow], [acts.heartbeat_until_cancelled, notifier.notify]
    ):
        handle = await client.start_workflow(
            CancelActivityWorkflow.run,
            args=["heartbeat_until_cancelled", "to-cancel"],
            id=unique("cancel-activity"),
            task_queue=tq,
        )
        await asyncio.wait_for(acts.started.wait(), 10)
        await handle.signal(CancelActivityWorkflow.cancel_activity)
        assert await handle.result() == "activity cancelled"
        assert acts.cancelled.is_set()

    events = await history(handle)
    (scheduled,) = [
        e
        for e in of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        if e.activity_task_scheduled_event_attributes.activity_id == "to-cancel"
    ]
    (requested,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED)
    assert (
        requested.activity_task_cancel_requested_event_attributes.scheduled_event_id
        == scheduled.event_id
    )
    (canceled,) = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED)
    attrs = canceled.activity_task_canceled_event_attributes
    assert attrs.scheduled_event_id == scheduled.event_id
    assert attrs.latest_cancel_requested_event_id == requested.event_id
    assert requested.event_id < canceled.event_id


async def _start_async_activity(
    client: Client, acts: Activities, tq: str, activity_id: str = "async-1"
) -> tuple[WorkflowHandle[Any, Any], bytes]:
    handle = await run_activity(
        client,
        "complete_later",
        task_queue=tq,
        activity_id=activity_id,
        start_to_close=20,
        retry={"maximum_attempts": 1},
    )
    token = await asyncio.wait_for(acts.task_tokens.get(), 10)
    return handle, token


async def test_async_completion_by_task_token(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.complete_later]):
        handle, token = await _start_async_activity(client, acts, tq)
        async_handle = client.get_async_activity_handle(task_token=token)
        await async_handle.heartbeat("halfway")
        (pending,) = (await handle.describe()).raw_description.pending_activities
        assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        assert pending.heartbeat_details.payloads[0].data == b'"halfway"'

        await async_handle.complete("finished elsewhere")
        assert await handle.result() == "finished elsewhere"
        # The task is gone once completed.
        with pytest.raises(RPCError) as err:
            await async_handle.complete("twice")
        assert err.value.status == RPCStatusCode.NOT_FOUND

    (completed,) = of_type(await history(handle), EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert (
        completed.activity_task_completed_event_attributes.result.payloads[0].data
        == b'"finished elsewhere"'
    )


@pytest.mark.parametrize("address_by", ["task_token", "id"])
async def test_async_failure(client: Client, address_by: str) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.complete_later]):
        handle, token = await _start_async_activity(client, acts, tq, activity_id="to-fail")
        remote = (
            client.get_async_activity_handle(task_token=token)
            if address_by == "task_token"
            else client.get_async_activity_handle(
                workflow_id=handle.id, run_id=handle.result_run_id, activity_id="to-fail"
            )
        )
        await remote.fail(ApplicationError("could not do it", type="Remote"))
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    activity_error = err.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    assert isinstance(activity_error.cause, ApplicationError)
    assert (activity_error.cause.message, activity_error.cause.type) == (
        "could not do it",
        "Remote",
    )
    (failed,) = of_type(await history(handle), EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    assert failed.activity_task_failed_event_attributes.failure.message == "could not do it"


async def test_async_completion_by_id(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.complete_later]):
        handle, _ = await _start_async_activity(client, acts, tq, activity_id="by-id")
        by_id = client.get_async_activity_handle(
            workflow_id=handle.id, run_id=handle.result_run_id, activity_id="by-id"
        )
        await by_id.heartbeat("beat by id")
        (pending,) = (await handle.describe()).raw_description.pending_activities
        assert pending.activity_id == "by-id"
        assert pending.heartbeat_details.payloads[0].data == b'"beat by id"'

        unknown = client.get_async_activity_handle(
            workflow_id=handle.id, run_id=handle.result_run_id, activity_id="no-such-activity"
        )
        with pytest.raises(RPCError) as err:
            await unknown.complete("nope")
        assert err.value.status == RPCStatusCode.NOT_FOUND

        await by_id.complete("completed by id")
        assert await handle.result() == "completed by id"


@pytest.mark.parametrize("address_by", ["task_token", "id"])
async def test_async_activity_reports_cancellation(client: Client, address_by: str) -> None:
    tq = unique("tq")
    acts = Activities()
    notifier = Activities()
    async with new_worker(
        client, tq, [CancelActivityWorkflow], [acts.complete_later, notifier.notify]
    ):
        handle = await client.start_workflow(
            CancelActivityWorkflow.run,
            args=["complete_later", "async-cancel"],
            id=unique("async-cancel"),
            task_queue=tq,
        )
        token = await asyncio.wait_for(acts.task_tokens.get(), 10)
        async_handle: AsyncActivityHandle = (
            client.get_async_activity_handle(task_token=token)
            if address_by == "task_token"
            else client.get_async_activity_handle(
                workflow_id=handle.id, run_id=handle.result_run_id, activity_id="async-cancel"
            )
        )
        await async_handle.heartbeat()  # not cancelled yet

        await handle.signal(CancelActivityWorkflow.cancel_activity)
        await asyncio.wait_for(notifier.started.wait(), 10)  # the cancel request is recorded
        (pending,) = [
            p
            for p in (await handle.describe()).raw_description.pending_activities
            if p.activity_id == "async-cancel"
        ]
        assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
        with pytest.raises(AsyncActivityCancelledError):
            await async_handle.heartbeat()
        await async_handle.report_cancellation("cleaned up")
        assert await handle.result() == "activity cancelled"

    (canceled,) = of_type(await history(handle), EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED)
    assert (
        canceled.activity_task_canceled_event_attributes.details.payloads[0].data == b'"cleaned up"'
    )


async def test_cancellation_report_without_request_is_rejected(client: Client) -> None:
    tq = unique("tq")
    acts = Activities()
    async with new_worker(client, tq, [RunActivityWorkflow], [acts.complete_later]):
        handle, token = await _start_async_activity(client, acts, tq)
        async_handle = client.get_async_activity_handle(task_token=token)
        with pytest.raises(RPCError) as err:
            await async_handle.report_cancellation()
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        await async_handle.complete("still fine")
        assert await handle.result() == "still fine"


async def test_local_activity(client: Client) -> None:
    tq = unique("tq")
    async with new_worker(client, tq, [LocalActivityWorkflow], [say_hello]):
        handle = await client.start_workflow(
            LocalActivityWorkflow.run, "local", id=unique("local"), task_queue=tq
        )
        assert await handle.result() == "Hello, local!"

    events = await history(handle)
    (marker,) = of_type(events, EventType.EVENT_TYPE_MARKER_RECORDED)
    attrs = marker.marker_recorded_event_attributes
    assert attrs.marker_name == "core_local_activity"
    assert attrs.details["result"].payloads[0].data == b'"Hello, local!"'
    assert not of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    completed_by = attrs.workflow_task_completed_event_id
    assert events[completed_by - 1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
