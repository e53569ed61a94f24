"""Temporal's per-execution limits (docs/reliability.md, "Limits"), set small through dynamic
config, driven through the official SDK.

Each test runs on Aion (SQLite and PostgreSQL) and on the reference `temporal server start-dev`
started with the same `--dynamic-config-value` flags: the events, causes, reasons and errors
asserted are what the reference gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import activity, workflow
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
)
from temporalio.api.common.v1 import ActivityType, Payload, Payloads
from temporalio.api.enums.v1 import (
    CommandType,
    EventType,
    SignalExternalWorkflowExecutionFailedCause,
    SuggestContinueAsNewReason,
    WorkflowTaskFailedCause,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateStage,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.conformance.reference import running_reference
from tests.helpers import fresh_storage, unique

pytestmark = pytest.mark.timeout(90)

BLOB_ERROR = 10_000
MEMO_ERROR = 3_000
HISTORY_COUNT_ERROR = 100
HISTORY_SIZE_ERROR = 60_000
SIGNALS = 5
SA_VALUE_SIZE = 100
LIMITS = {
    "limit.blobSize.warn": 5_000,
    "limit.blobSize.error": BLOB_ERROR,
    "limit.memoSize.warn": 1_000,
    "limit.memoSize.error": MEMO_ERROR,
    "limit.historyCount.error": HISTORY_COUNT_ERROR,
    "limit.historyCount.warn": 50,
    "limit.historySize.error": HISTORY_SIZE_ERROR,
    "limit.historySize.warn": 30_000,
    "limit.numPendingActivities.error": 2,
    "limit.numPendingChildExecutions.error": 2,
    "limit.numPendingSignals.error": 2,
    "limit.numPendingCancelRequests.error": 2,
    "history.maximumSignalsPerExecution": SIGNALS,
    "frontend.searchAttributesSizeOfValueLimit": SA_VALUE_SIZE,
    "history.maxInFlightUpdates": 2,
    "history.maxInFlightUpdatePayloads": 8_000,
    "history.maxTotalUpdates": 4,
    "history.maxTotalUpdates.suggestContinueAsNewThreshold": 0.5,
}
FLAGS = [
    arg for key, value in LIMITS.items() for arg in ("--dynamic-config-value", f"{key}={value}")
] + ["--search-attribute", "LimitText=Text"]
TEXT = SearchAttributeKey.for_text("LimitText")
NOBODY = "nobody-polls-this-queue"
ET = EventType
Cause = WorkflowTaskFailedCause


@pytest.fixture(scope="module", params=["aion", "reference"])
async def limited(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[Client]:
    """A client of a server with the small limits above: Aion on `backend`, or the reference
    (once: on the SQLite pass)."""
    if request.param == "reference":
        if backend != "sqlite":
            pytest.skip("the reference runs once, on the SQLite pass")
        async with running_reference(extra_args=FLAGS) as reference:
            yield await Client.connect(reference.address)
        return
    async with fresh_storage(backend) as storage:
        server = storage.server(extra_args=FLAGS)
        await asyncio.to_thread(server.start)
        try:
            yield await Client.connect(server.address)
        finally:
            await asyncio.to_thread(server.stop)


def blob(size: int) -> str:
    return "x" * size


@activity.defn
async def echo(text: str) -> str:
    return text


@workflow.defn
class Waiter:
    """Waits until told to finish; records the signals it gets."""

    def __init__(self) -> None:
        self.done = False
        self.release = False
        self.suggested: list[bool] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.signal
    def note(self, text: str) -> None:
        pass

    @workflow.update
    async def hold(self) -> bool:
        await workflow.wait_condition(lambda: self.release)
        return workflow.info().is_continue_as_new_suggested()

    @workflow.update
    async def carry(self, text: str) -> None:
        await workflow.wait_condition(lambda: self.release)

    @workflow.update
    def quick(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

    @workflow.signal
    def release_all(self) -> None:
        self.release = True


@workflow.defn
class Commands:
    """Issues the commands a test names, all in its first workflow task."""

    @workflow.run
    async def run(self, what: str) -> str:
        if what == "big activity input":
            await workflow.execute_activity(
                echo, blob(BLOB_ERROR), start_to_close_timeout=timedelta(seconds=10)
            )
        elif what.startswith("activity on "):
            await workflow.execute_activity(
                echo,
                "hello",
                task_queue=what.removeprefix("activity on "),
                start_to_close_timeout=timedelta(seconds=30),
            )
        elif what.startswith("signal "):
            target = workflow.get_external_workflow_handle(what.removeprefix("signal "))
            await target.signal("note", "hello")
        elif what == "three activities":
            for n in range(3):
                workflow.start_activity(
                    echo, str(n), task_queue=NOBODY, start_to_close_timeout=timedelta(hours=1)
                )
        elif what == "three children":
            info = workflow.info()
            await asyncio.gather(
                *(
                    workflow.start_child_workflow(
                        Waiter.run, id=f"{info.workflow_id}-child-{n}", task_queue=NOBODY
                    )
                    for n in range(3)
                )
            )
        elif what == "three signals":
            await asyncio.gather(
                *(
                    workflow.get_external_workflow_handle(unique("absent")).signal("go")
                    for _ in range(3)
                )
            )
        elif what == "three cancels":
            await asyncio.gather(
                *(
                    workflow.get_external_workflow_handle(unique("absent")).cancel()
                    for _ in range(3)
                )
            )
        elif what == "big memo":
            workflow.upsert_memo({"big": blob(MEMO_ERROR)})
        elif what == "big search attribute":
            workflow.upsert_search_attributes([TEXT.value_set(blob(SA_VALUE_SIZE + 1))])
        await workflow.wait_condition(lambda: False)
        return ""


@workflow.defn
class Grower:
    """Grows its history until something stops it: timers, or activities with large results."""

    @workflow.run
    async def run(self, result_size: int) -> None:
        while True:
            if result_size:
                await workflow.execute_activity(
                    echo, blob(result_size), start_to_close_timeout=timedelta(seconds=10)
                )
            else:
                await workflow.sleep(timedelta(milliseconds=1))


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[Waiter, Commands, Grower],
        activities=[echo],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def first_event(handle: WorkflowHandle, event_type: int) -> HistoryEvent:
    """The first event of `event_type` in the workflow's history, waiting for it."""
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == event_type:
            return event
    raise AssertionError(f"the workflow closed without a {ET.Name(event_type)} event")


async def history(handle: WorkflowHandle) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


async def run_commands(client: Client, what: str) -> tuple[WorkflowHandle, list[HistoryEvent]]:
    """Run `Commands` with `what` until its first workflow task failed; terminate it then
    (unless the server did), and return its history."""
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await client.start_workflow(
            Commands.run, what, id=unique("wf"), task_queue=task_queue
        )
        await first_event(handle, ET.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="test over")
        return handle, await history(handle)


def failed_task(events: Sequence[HistoryEvent]) -> tuple[int, str]:
    """The cause and failure message of the history's first failed workflow task."""
    for event in events:
        if event.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = event.workflow_task_failed_event_attributes
            return attrs.cause, attrs.failure.message
    raise AssertionError("no workflow task failed")


def terminated(events: Sequence[HistoryEvent]) -> tuple[str, str]:
    """The reason and identity of the history's termination."""
    last = events[-1]
    assert last.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, ET.Name(last.event_type)
    attrs = last.workflow_execution_terminated_event_attributes
    return attrs.reason, attrs.identity


async def test_blob_size_of_a_start_input(limited: Client) -> None:
    """limit.blobSize.error: a start whose input is larger fails with INVALID_ARGUMENT
    "Blob data size exceeds limit." (the reference answers the same)."""
    with pytest.raises(RPCError) as caught:
        await limited.start_workflow(
            Commands.run, blob(BLOB_ERROR), id=unique("wf"), task_queue=unique("tq")
        )
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert caught.value.message == "Blob data size exceeds limit."


async def test_blob_size_of_a_signal(limited: Client) -> None:
    """limit.blobSize.error: a signal whose input is larger fails with INVALID_ARGUMENT
    "Blob data size exceeds limit." and is not recorded."""
    handle = await limited.start_workflow(Waiter.run, id=unique("wf"), task_queue=unique("tq"))
    with pytest.raises(RPCError) as caught:
        await handle.signal(Waiter.note, blob(BLOB_ERROR))
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert caught.value.message == "Blob data size exceeds limit."
    await handle.terminate(reason="test over")
    types = [e.event_type for e in await history(handle)]
    assert ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in types


async def test_the_namespace_tells_the_sdk_its_size_limits(limited: Client) -> None:
    """DescribeNamespace carries limit.blobSize.error and limit.memoSize.error: the SDK checks
    what a workflow task sends against them."""
    described = await limited.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    limits = described.namespace_info.limits
    assert (limits.blob_size_limit_error, limits.memo_size_limit_error) == (BLOB_ERROR, MEMO_ERROR)


async def test_blob_size_in_a_command_the_sdk_catches(limited: Client) -> None:
    """The official SDK fails a workflow task whose command carries a payload past
    limit.blobSize.error itself (cause PAYLOADS_TOO_LARGE); the workflow goes on."""
    _, events = await run_commands(limited, "big activity input")
    assert failed_task(events) == (
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PAYLOADS_TOO_LARGE,
        "[TMPRL1103] Attempted to upload payloads with size that exceeded the error limit.",
    )
    assert terminated(events)[0] == "test over"


async def complete_first_task(client: Client, command: Command) -> tuple[WorkflowHandle, RPCError]:
    """Start a workflow and complete its first workflow task with `command` through the raw API
    (no SDK checks on the way); the error the server answers with."""
    task_queue = unique("tq")
    handle = await client.start_workflow("Raw", id=unique("wf"), task_queue=task_queue)
    service = client.workflow_service
    task = await service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=task_queue), identity="raw"
        )
    )
    with pytest.raises(RPCError) as caught:
        await service.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                namespace="default", task_token=task.task_token, commands=[command], identity="raw"
            )
        )
    return handle, caught.value


def big_payloads() -> Payloads:
    return Payloads(
        payloads=[Payload(metadata={"encoding": b"binary/plain"}, data=b"x" * BLOB_ERROR)]
    )


@pytest.mark.parametrize(
    ("command", "cause", "message"),
    [
        (
            Command(
                command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
                schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
                    activity_id="1",
                    activity_type=ActivityType(name="echo"),
                    task_queue=TaskQueue(name=NOBODY),
                    start_to_close_timeout=Duration(seconds=10),
                    input=big_payloads(),
                ),
            ),
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
            "BadScheduleActivityAttributes: ScheduleActivityTaskCommandAttributes.Input exceeds "
            "size limit.",
        ),
        (
            Command(
                command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
                complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(
                    result=big_payloads()
                ),
            ),
            # sic: the reference names this cause for a result past the limit
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
            "BadScheduleActivityAttributes: CompleteWorkflowExecutionCommandAttributes.Result "
            "exceeds size limit.",
        ),
    ],
    ids=["activity input", "workflow result"],
)
async def test_blob_size_in_a_command_terminates_the_workflow(
    limited: Client, command: Command, cause: int, message: str
) -> None:
    """limit.blobSize.error in a workflow task's command, past the SDK: the completion fails with
    INVALID_ARGUMENT, the task fails with the command's BAD_*_ATTRIBUTES cause and the workflow
    is terminated by "history-service" with that message as its reason."""
    handle, error = await complete_first_task(limited, command)
    assert error.status == RPCStatusCode.INVALID_ARGUMENT
    assert error.message == message
    events = await history(handle)
    assert failed_task(events) == (cause, message)
    assert terminated(events) == (message, "history-service")


async def test_blob_size_of_an_activity_result(limited: Client) -> None:
    """limit.blobSize.error on an activity's result, past the SDK: the server fails the activity
    for good instead, with its own failure "Complete result exceeds size limit."."""
    activities, task_queue = unique("activities"), unique("tq")
    service = limited.workflow_service
    async with worker(limited, task_queue):
        handle = await limited.start_workflow(
            Commands.run, f"activity on {activities}", id=unique("wf"), task_queue=task_queue
        )
        task = await service.poll_activity_task_queue(
            PollActivityTaskQueueRequest(
                namespace="default", task_queue=TaskQueue(name=activities), identity="raw"
            )
        )
        await service.respond_activity_task_completed(
            RespondActivityTaskCompletedRequest(
                namespace="default", task_token=task.task_token, result=big_payloads()
            )
        )
        event = await first_event(handle, ET.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    failure = event.activity_task_failed_event_attributes.failure
    assert failure.message == "Complete result exceeds size limit."
    assert failure.server_failure_info.non_retryable
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate(reason="test over")


async def test_memo_size_at_start(limited: Client) -> None:
    """limit.memoSize.error: a start whose memo is larger fails with INVALID_ARGUMENT
    "Memo size exceeds limit."."""
    with pytest.raises(RPCError) as caught:
        await limited.start_workflow(
            Waiter.run,
            id=unique("wf"),
            task_queue=unique("tq"),
            memo={"big": blob(MEMO_ERROR)},
        )
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert caught.value.message == "Memo size exceeds limit."


async def test_memo_size_of_a_command_terminates_the_workflow(limited: Client) -> None:
    """limit.memoSize.error on the memo a ModifyWorkflowProperties command leaves: the task fails
    with BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES and the workflow is terminated."""
    _, events = await run_commands(limited, "big memo")
    message = "BadModifyWorkflowPropertiesAttributes: ModifyWorkflowPropertiesCommandAttributes. Memo exceeds size limit."
    assert failed_task(events) == (
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES,
        message,
    )
    assert terminated(events) == (message, "history-service")


async def test_search_attribute_value_size(limited: Client) -> None:
    """frontend.searchAttributesSizeOfValueLimit: a start fails with INVALID_ARGUMENT; an
    upsert command fails the task with BAD_SEARCH_ATTRIBUTES and terminates the workflow."""
    value = blob(SA_VALUE_SIZE + 1)
    with pytest.raises(RPCError) as caught:
        await limited.start_workflow(
            Waiter.run,
            id=unique("wf"),
            task_queue=unique("tq"),
            search_attributes=TypedSearchAttributes([SearchAttributePair(TEXT, value)]),
        )
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "search attribute LimitText value size" in caught.value.message
    assert f"exceeds size limit {SA_VALUE_SIZE}" in caught.value.message
    _, events = await run_commands(limited, "big search attribute")
    cause, message = failed_task(events)
    assert cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
    assert message.startswith("BadSearchAttributes: search attribute LimitText value size")
    assert terminated(events) == (message, "history-service")


@pytest.mark.parametrize(
    ("what", "cause", "message"),
    [
        (
            "three activities",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED,
            "PendingActivitiesLimitExceeded: the number of pending activities, 2, has reached "
            "the per-workflow limit of 2",
        ),
        (
            "three children",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED,
            "PendingChildWorkflowsLimitExceeded: the number of pending child workflow "
            "executions, 2, has reached the per-workflow limit of 2",
        ),
        (
            "three signals",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_SIGNALS_LIMIT_EXCEEDED,
            "PendingSignalsLimitExceeded: the number of pending signals to external workflows, "
            "2, has reached the per-workflow limit of 2",
        ),
        (
            "three cancels",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_REQUEST_CANCEL_LIMIT_EXCEEDED,
            "PendingRequestCancelLimitExceeded: the number of pending requests to cancel "
            "external workflows, 2, has reached the per-workflow limit of 2",
        ),
    ],
)
async def test_pending_limits(limited: Client, what: str, cause: int, message: str) -> None:
    """limit.numPending{Activities,ChildExecutions,Signals,CancelRequests}.error: the command
    that would make one more pending fails the workflow task with the PENDING_*_LIMIT_EXCEEDED
    cause; nothing of the task is recorded, and the workflow goes on (the reference retries the
    task)."""
    _, events = await run_commands(limited, what)
    assert failed_task(events) == (cause, message)
    types = [e.event_type for e in events]
    assert types[:4] == [
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        ET.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        ET.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    ]
    assert terminated(events)[0] == "test over"


async def test_signals_per_execution(limited: Client) -> None:
    """history.maximumSignalsPerExecution: the signal past it fails with INVALID_ARGUMENT
    "exceeded workflow execution limit for signal events"."""
    handle = await limited.start_workflow(Waiter.run, id=unique("wf"), task_queue=unique("tq"))
    for _ in range(SIGNALS):
        await handle.signal(Waiter.note, "hello")
    with pytest.raises(RPCError) as caught:
        await handle.signal(Waiter.note, "one too many")
    assert caught.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert caught.value.message == "exceeded workflow execution limit for signal events"
    await handle.terminate(reason="test over")


async def test_signals_per_execution_from_another_workflow(limited: Client) -> None:
    """history.maximumSignalsPerExecution reached: a signal from another workflow fails there,
    SignalExternalWorkflowExecutionFailed with cause SIGNAL_COUNT_LIMIT_EXCEEDED."""
    target = await limited.start_workflow(Waiter.run, id=unique("wf"), task_queue=unique("tq"))
    for _ in range(SIGNALS):
        await target.signal(Waiter.note, "hello")
    task_queue = unique("tq")
    async with worker(limited, task_queue):
        handle = await limited.start_workflow(
            Commands.run, f"signal {target.id}", id=unique("wf"), task_queue=task_queue
        )
        event = await first_event(handle, ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED)
    attrs = event.signal_external_workflow_execution_failed_event_attributes
    assert (
        attrs.cause
        == SignalExternalWorkflowExecutionFailedCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_SIGNAL_COUNT_LIMIT_EXCEEDED
    )
    await target.terminate(reason="test over")
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate(reason="test over")


async def test_history_count_terminates_the_workflow(limited: Client) -> None:
    """limit.historyCount.error: the transition that would take the history past it is dropped
    and the workflow is terminated by "history-service", reason "Workflow history count exceeds
    limit."."""
    task_queue = unique("tq")
    async with worker(limited, task_queue):
        handle = await limited.start_workflow(Grower.run, 0, id=unique("wf"), task_queue=task_queue)
        await first_event(handle, ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
    events = await history(handle)
    assert terminated(events) == ("Workflow history count exceeds limit.", "history-service")
    assert len(events) <= HISTORY_COUNT_ERROR + 2


async def test_history_size_terminates_the_workflow(limited: Client) -> None:
    """limit.historySize.error: once the history is past it, the next transition is dropped and
    the workflow is terminated, reason "Workflow history size exceeds limit."."""
    task_queue = unique("tq")
    async with worker(limited, task_queue):
        handle = await limited.start_workflow(
            Grower.run, BLOB_ERROR // 2, id=unique("wf"), task_queue=task_queue
        )
        await first_event(handle, ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
    events = await history(handle)
    assert terminated(events) == ("Workflow history size exceeds limit.", "history-service")
    assert len(events) < HISTORY_COUNT_ERROR
    started = [
        e.workflow_task_started_event_attributes
        for e in events
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]
    sizes = [attrs.history_size_bytes for attrs in started]
    assert sizes == sorted(sizes) and sizes[-1] > HISTORY_SIZE_ERROR // 2


async def test_in_flight_update_payloads(limited: Client) -> None:
    """history.maxInFlightUpdatePayloads: an update whose request would take the requests of the
    updates admitted and not yet accepted to it is RESOURCE_EXHAUSTED."""
    task_queue = unique("tq")
    handle = await limited.start_workflow(Waiter.run, id=unique("wf"), task_queue=task_queue)
    service = limited.workflow_service
    poll = PollWorkflowTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=task_queue), identity="raw"
    )
    task = await service.poll_workflow_task_queue(poll)
    await service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace="default", task_token=task.task_token)
    )
    first = asyncio.create_task(handle.execute_update(Waiter.carry, blob(5_000)))
    task = await service.poll_workflow_task_queue(poll)  # the task the update brought
    assert len(task.messages) == 1  # the first update, admitted; not accepted
    with pytest.raises(RPCError) as caught:
        await handle.execute_update(Waiter.carry, blob(5_000))
    assert caught.value.status == RPCStatusCode.RESOURCE_EXHAUSTED
    assert caught.value.message == (
        "limit on total payload size of in-flight updates has been reached (8000 bytes)"
    )
    await handle.terminate(reason="test over")
    with pytest.raises(Exception):  # noqa: B017 (aborted by the termination)
        await first


async def test_updates_in_flight_and_total(limited: Client) -> None:
    """history.maxInFlightUpdates: one more update is RESOURCE_EXHAUSTED; history.maxTotalUpdates:
    one more distinct update is FAILED_PRECONDITION; and from the share
    history.maxTotalUpdates.suggestContinueAsNewThreshold of it on, workflow tasks suggest
    continue-as-new for TOO_MANY_UPDATES."""
    task_queue = unique("tq")
    async with worker(limited, task_queue):
        handle = await limited.start_workflow(Waiter.run, id=unique("wf"), task_queue=task_queue)
        held = [
            await handle.start_update(Waiter.hold, wait_for_stage=WorkflowUpdateStage.ACCEPTED)
            for _ in range(2)
        ]
        with pytest.raises(RPCError) as caught:
            await handle.execute_update(Waiter.quick)
        assert caught.value.status == RPCStatusCode.RESOURCE_EXHAUSTED
        assert caught.value.message == (
            "limit on number of concurrent in-flight updates has been reached (2)"
        )
        await handle.signal(Waiter.release_all)
        assert [await u.result() for u in held] == [True, True]
        assert await handle.execute_update(Waiter.quick) is True
        assert await handle.execute_update(Waiter.quick) is True
        with pytest.raises(RPCError) as caught:
            await handle.execute_update(Waiter.quick)
        assert caught.value.status == RPCStatusCode.FAILED_PRECONDITION
        assert caught.value.message.startswith(
            "The limit on the total number of distinct updates in this workflow has been "
            "reached (4)."
        )
        await handle.signal(Waiter.finish)
        await handle.result()
    reasons = [
        list(e.workflow_task_started_event_attributes.suggest_continue_as_new_reasons)
        for e in await history(handle)
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]
    assert reasons[0] == []  # no update yet
    assert [SuggestContinueAsNewReason.SUGGEST_CONTINUE_AS_NEW_REASON_TOO_MANY_UPDATES] in reasons
