"""Regressions found by running the official SDK's test suite against Aion (docs/compatibility.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.command.v1 import Command, ScheduleActivityTaskCommandAttributes
from temporalio.api.common.v1 import ActivityType, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, PendingActivityState
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import fresh_storage
from tests.servers import AionProcess


@workflow.defn
class InfoWorkflow:
    """Reports what the SDK tells the workflow about itself."""

    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, timers: int) -> dict[str, Any]:
        for _ in range(timers):
            await workflow.sleep(timedelta(milliseconds=1))
        await workflow.wait_condition(lambda: self.go)
        info = workflow.info()
        return {
            "execution_timeout": str(info.execution_timeout),
            "run_timeout": str(info.run_timeout),
            "history_length": info.get_current_history_length(),
            "history_size": info.get_current_history_size(),
            "suggested": info.is_continue_as_new_suggested(),
        }


@pytest.fixture(scope="module")
async def small_history_server(backend: str) -> AsyncIterator[AionProcess]:
    async with fresh_storage(backend) as storage:
        server = storage.server(
            extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=10"]
        )
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[InfoWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def test_unset_timeouts_stay_unset_and_history_size_grows(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            InfoWorkflow.run, 0, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.signal(InfoWorkflow.proceed)
        info = await handle.result()
    assert handle.result_run_id and uuid.UUID(handle.result_run_id).version == 7
    assert info["execution_timeout"] == "None"
    assert info["run_timeout"] == "None"
    assert isinstance(info["history_size"], int) and info["history_size"] > 100
    assert info["suggested"] is False


async def test_continue_as_new_is_suggested_past_the_configured_history_count(
    small_history_server: AionProcess,
) -> None:
    client = await Client.connect(small_history_server.address)
    task_queue = f"tq-{uuid.uuid4()}"
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            InfoWorkflow.run, 5, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.signal(InfoWorkflow.proceed)
        info = await handle.result()
    assert isinstance(info["history_length"], int) and info["history_length"] > 10
    assert info["suggested"] is True


async def test_signal_with_start_honours_start_delay(client: Client) -> None:
    delay = timedelta(hours=1, minutes=20, seconds=30)
    handle = await client.start_workflow(
        InfoWorkflow.run,
        0,
        id=f"wf-{uuid.uuid4()}",
        task_queue=f"tq-{uuid.uuid4()}",
        start_delay=delay,
        start_signal="proceed",
    )
    first = [e async for e in handle.fetch_history_events()][0]
    started = first.workflow_execution_started_event_attributes
    assert started.first_workflow_task_backoff.ToTimedelta() == delay
    await handle.terminate()


async def test_activity_requested_eagerly_is_handed_back_with_the_task_completion(
    client: Client,
) -> None:
    service = client.workflow_service
    task_queue = TaskQueue(name=f"tq-{uuid.uuid4()}")
    workflow_id = f"wf-{uuid.uuid4()}"
    await service.start_workflow_execution(
        StartWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Raw"),
            task_queue=task_queue,
            request_id=str(uuid.uuid4()),
        )
    )
    task = await service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace=client.namespace, task_queue=task_queue)
    )
    schedule = Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id="eager-1",
            activity_type=ActivityType(name="act"),
            task_queue=task_queue,
            start_to_close_timeout=Duration(seconds=10),
            request_eager_execution=True,
        ),
    )
    response = await service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace=client.namespace, task_token=task.task_token, commands=[schedule]
        )
    )
    (eager,) = response.activity_tasks
    assert eager.activity_id == "eager-1" and eager.attempt == 1
    described = await client.get_workflow_handle(workflow_id).describe()
    (pending,) = described.raw_description.pending_activities
    assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED


@workflow.defn
class HelloWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"Hello, {name}!"


async def test_eager_workflow_start_hands_the_first_task_to_the_starter(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[HelloWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            HelloWorkflow.run,
            "Aion",
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
            request_eager_start=True,
            task_timeout=timedelta(hours=1),  # a lost eager task would hang, not retry
        )
        assert handle.__temporal_eagerly_started  # type: ignore[attr-defined]
        assert await handle.result() == "Hello, Aion!"


async def test_cancelling_a_closed_workflow_succeeds(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    async with _worker(client, task_queue):
        handle = await client.start_workflow(
            InfoWorkflow.run, 0, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.signal(InfoWorkflow.proceed)
        await handle.result()
    await handle.cancel()  # a no-op, not an error
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


@workflow.defn
class SummarizedTimerWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(milliseconds=1), summary="short nap")


async def test_user_metadata_reaches_the_started_and_command_events(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[SummarizedTimerWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            SummarizedTimerWorkflow.run,
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
            static_summary="a summary",
        )
        await handle.result()
    events = [e async for e in handle.fetch_history_events()]
    assert events[0].user_metadata.summary.data == b'"a summary"'
    timer = next(e for e in events if e.HasField("timer_started_event_attributes"))
    assert timer.user_metadata.summary.data == b'"short nap"'


@workflow.defn
class FlakyChild:
    @workflow.run
    async def run(self) -> int:
        if workflow.info().attempt < 2:
            raise ApplicationError("first attempt fails")
        return workflow.info().attempt


@workflow.defn
class RetryingParent:
    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_child_workflow(
            FlakyChild.run,
            id=f"{workflow.info().workflow_id}-child",
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
        )


async def test_parent_hears_from_the_child_chain_after_its_retries(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RetryingParent, FlakyChild],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            RetryingParent.run, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        assert await handle.result() == 2


@workflow.defn
class SignalsItsChild:
    """The parent signals its child right after starting it; the last signal ends the child."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, top: bool) -> str:
        if not top:
            await workflow.wait_condition(lambda: self.done)
            return "child"
        child = await workflow.start_child_workflow(
            SignalsItsChild.run, False, id=f"{workflow.info().workflow_id}-child"
        )
        await child.signal(SignalsItsChild.poke)
        await child.signal(SignalsItsChild.poke)
        await child.signal(SignalsItsChild.finish)
        return "parent of " + await child

    @workflow.signal
    def poke(self) -> None:
        pass

    @workflow.signal
    def finish(self) -> None:
        self.done = True


async def test_child_start_recorded_during_a_workflow_task_still_reports_its_close(
    client: Client,
) -> None:
    """Found by the SDK suite's test_workflow_separate_protocol: a child start recorded while the
    parent's workflow task ran was buffered, its id never reached the child's record, and the
    child's close was deferred forever."""
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[SignalsItsChild]):
        for _ in range(5):
            handle = await client.start_workflow(
                SignalsItsChild.run,
                True,
                id=f"parent-{uuid.uuid4()}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=60),  # the bug's symptom: no close, ever
            )
            for _ in range(3):  # keeps the parent's workflow tasks busy while its child starts
                try:
                    await handle.signal(SignalsItsChild.poke)
                except RPCError as e:  # the parent may be done already: that is no failure
                    assert e.status == RPCStatusCode.NOT_FOUND, e
                    break
            assert await handle.result() == "parent of child"


async def test_describe_shows_the_start_summary_and_details(client: Client) -> None:
    """Found by the SDK suite's test_user_metadata_is_set."""
    handle = await client.start_workflow(
        "NoWorkerHere",
        id=f"wf-{uuid.uuid4()}",
        task_queue=f"tq-{uuid.uuid4()}",
        static_summary="a summary",
        static_details="some details",
    )
    description = await handle.describe()
    assert await description.static_summary() == "a summary"
    assert await description.static_details() == "some details"
    await handle.terminate()


@workflow.defn
class ReportsBuildId:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(milliseconds=1))
        return workflow.info().get_current_build_id()


async def test_workflow_tasks_record_the_workers_build_id(client: Client) -> None:
    """Found by the SDK suite's test_workflow_current_build_id_appropriately_set: workers stamp
    their build id on completed workflow tasks only when the server advertises
    build_id_based_versioning, and replaying workers read it back from history."""
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReportsBuildId],
        build_id="1.0",
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            ReportsBuildId.run, id=f"wf-{uuid.uuid4()}", task_queue=task_queue
        )
        assert await handle.result() == "1.0"
    completed = [
        e.workflow_task_completed_event_attributes
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    assert [c.worker_version.build_id for c in completed] == ["1.0", "1.0"]
    assert all(not c.binary_checksum for c in completed)
