"""Workflow Update through the official SDK: validators, handlers, wait stages, deduplication,
concurrency, update-with-start, errors, and updates across server and worker restarts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.helpers import Storage, unique

pytestmark = pytest.mark.timeout(60)

UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}


@activity.defn
async def double(value: int) -> int:
    return value * 2


@workflow.defn
class Counter:
    """Adds what updates send; finishes when told to."""

    def __init__(self) -> None:
        self.total = 0
        self.done = False
        self.release = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.total

    @workflow.update
    async def add(self, amount: int) -> int:
        doubled = await workflow.execute_activity(
            double, amount, start_to_close_timeout=timedelta(seconds=10)
        )
        self.total += doubled
        return self.total

    @add.validator
    def check_add(self, amount: int) -> None:
        if amount < 0:
            raise ValueError("amount must not be negative")

    @workflow.update
    async def add_when_released(self, amount: int) -> int:
        await workflow.wait_condition(lambda: self.release)
        self.total += amount
        return self.total

    @workflow.update
    def fail(self, message: str) -> None:
        raise ApplicationError(message, non_retryable=True)

    @workflow.signal
    def release_all(self) -> None:
        self.release = True

    @workflow.signal
    def finish(self) -> None:
        self.done = True


def worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[Counter], activities=[double])


async def start(client: Client, task_queue: str) -> WorkflowHandle[Counter, int]:
    return await client.start_workflow(Counter.run, id=unique("wf"), task_queue=task_queue)


async def event_types(handle: WorkflowHandle[Counter, int]) -> list[int]:
    return [e.event_type for e in (await handle.fetch_history()).events]


async def test_accepted_update_runs_an_activity_and_returns_its_result(client: Client) -> None:
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        assert await handle.execute_update(Counter.add, 21) == 42
        await handle.signal(Counter.finish)
        assert await handle.result() == 42
    types = await event_types(handle)
    accepted = types.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    assert types[accepted - 1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    assert types[accepted + 1] == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED in types


async def test_validator_rejection_reaches_the_caller_and_leaves_no_trace(client: Client) -> None:
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        await handle.execute_update(Counter.add, 1)  # history now ends with a completed task
        before = await event_types(handle)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(Counter.add, -5)
        assert isinstance(caught.value.cause, ApplicationError)
        assert "must not be negative" in str(caught.value.cause)
        assert await event_types(handle) == before  # not even a workflow task
        assert await handle.execute_update(Counter.add, 2) == 6  # the workflow carries on
        await handle.signal(Counter.finish)
        assert await handle.result() == 6


async def test_failing_handler_returns_its_failure(client: Client) -> None:
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(Counter.fail, "no funds")
        assert isinstance(caught.value.cause, ApplicationError)
        assert caught.value.cause.message == "no funds"
        await handle.signal(Counter.finish)
        await handle.result()
    types = await event_types(handle)
    assert [t for t in types if t in UPDATE_EVENTS] == sorted(UPDATE_EVENTS)


async def test_duplicate_update_id_returns_the_first_outcome(client: Client) -> None:
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        first = await handle.execute_update(Counter.add, 5, id="same")
        again = await handle.execute_update(Counter.add, 100, id="same")
        assert first == again == 10
        await handle.signal(Counter.finish)
        assert await handle.result() == 10
        # After the workflow closed, the id still answers with its outcome.
        assert await handle.execute_update(Counter.add, 7, id="same") == 10
        poll = handle.get_update_handle("same")
        assert await poll.result() == 10
    types = await event_types(handle)
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) == 1


async def test_wait_for_accepted_returns_a_handle_whose_result_arrives_later(
    client: Client,
) -> None:
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        update = await handle.start_update(
            Counter.add_when_released, 3, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        types = await event_types(handle)
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED in types
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED not in types
        await handle.signal(Counter.release_all)
        assert await update.result() == 3
        await handle.signal(Counter.finish)
        assert await handle.result() == 3


async def test_reset_run_completes_an_update_accepted_before_the_reset_point(
    client: Client,
) -> None:
    """The reset run rebuilds its updates from the events it copies: an update accepted there
    is known on the new run, whose worker completes it."""
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        await handle.start_update(
            Counter.add_when_released, 3, id="kept", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        with pytest.raises(WorkflowUpdateFailedError):  # one more workflow task
            await handle.execute_update(Counter.fail, "later")
        events = (await handle.fetch_history()).events
        last_task = [
            e.event_id
            for e in events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ][-1]
        reset = await client.workflow_service.reset_workflow_execution(
            rr.ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=common_pb.WorkflowExecution(workflow_id=handle.id),
                workflow_task_finish_event_id=last_task,
                request_id=unique("reset"),
            )
        )
        new_run = client.get_workflow_handle_for(Counter.run, handle.id, run_id=reset.run_id)
        await new_run.signal(Counter.release_all)
        assert await new_run.get_update_handle_for(Counter.add_when_released, "kept").result() == 3
        await new_run.signal(Counter.finish)
        assert await new_run.result() == 3


async def test_many_concurrent_updates_on_one_workflow(client: Client) -> None:
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        results = await asyncio.gather(*(handle.execute_update(Counter.add, 1) for _ in range(8)))
        assert sorted(results) == [2 * n for n in range(1, 9)]
        await handle.signal(Counter.finish)
        assert await handle.result() == 16
    types = await event_types(handle)
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED) == 8


async def test_update_with_start_creates_then_attaches(client: Client) -> None:
    task_queue = unique("tq")
    workflow_id = unique("wf")
    async with worker(client, task_queue):

        def operation() -> WithStartWorkflowOperation[Counter, int]:
            return WithStartWorkflowOperation(
                Counter.run,
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )

        created = operation()
        assert (
            await client.execute_update_with_start_workflow(
                Counter.add, 4, start_workflow_operation=created
            )
            == 8
        )
        attached = operation()
        assert (
            await client.execute_update_with_start_workflow(
                Counter.add, 1, start_workflow_operation=attached
            )
            == 10
        )
        first = await created.workflow_handle()
        assert (
            await attached.workflow_handle()
        ).first_execution_run_id == first.first_execution_run_id
        await first.signal(Counter.finish)
        assert await first.result() == 10


async def test_update_errors(client: Client) -> None:
    task_queue = unique("tq")
    with pytest.raises(RPCError) as caught:
        await client.get_workflow_handle("no-such-workflow").execute_update("add", 1)
    assert caught.value.status == RPCStatusCode.NOT_FOUND
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        await handle.signal(Counter.finish)
        await handle.result()
    with pytest.raises(RPCError) as caught:
        await handle.execute_update(Counter.add, 1)
    assert caught.value.status == RPCStatusCode.NOT_FOUND
    assert "already completed" in caught.value.message
    with pytest.raises(RPCError) as caught:
        await handle.get_update_handle("never-sent").result()
    assert caught.value.status == RPCStatusCode.NOT_FOUND


async def test_in_flight_limit(client: Client) -> None:
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        waiting = [
            await handle.start_update(
                Counter.add_when_released, 1, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
            for _ in range(10)
        ]
        with pytest.raises(RPCError) as caught:
            await handle.execute_update(Counter.add, 1)
        assert caught.value.status == RPCStatusCode.RESOURCE_EXHAUSTED
        await handle.signal(Counter.release_all)
        assert sorted([await u.result() for u in waiting]) == list(range(1, 11))
        await handle.signal(Counter.finish)
        await handle.result()


async def test_update_waits_for_a_worker(client: Client) -> None:
    """Admitted with no worker polling: delivered once a worker comes."""
    task_queue = unique("tq")
    async with worker(client, task_queue):
        handle = await start(client, task_queue)
        await handle.execute_update(Counter.add, 1)
    update = asyncio.create_task(handle.execute_update(Counter.add, 2))
    await asyncio.sleep(0)
    async with worker(client, task_queue):
        assert await update == 6
        await handle.signal(Counter.finish)
        assert await handle.result() == 6


async def test_accepted_update_survives_a_server_crash(storage: Storage) -> None:
    server = storage.server()
    server.start()
    try:
        client = await Client.connect(server.address)
        task_queue = unique("tq")
        async with worker(client, task_queue):
            handle = await start(client, task_queue)
            update = await handle.start_update(
                Counter.add_when_released, 7, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
        server.kill()
        server.start()
        client = await Client.connect(server.address)
        handle = client.get_workflow_handle_for(Counter.run, handle.id)
        async with worker(client, task_queue):
            await handle.signal(Counter.release_all)
            assert (
                await handle.get_update_handle_for(Counter.add_when_released, update.id).result()
                == 7
            )
            await handle.signal(Counter.finish)
            assert await handle.result() == 7
    finally:
        server.stop()
