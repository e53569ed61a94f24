"""Operator controls on a running workflow's activities through the SDK's raw WorkflowService:
PauseActivity, UnpauseActivity and ResetActivity."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import (
    PauseActivityRequest,
    ResetActivityRequest,
    UnpauseActivityRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique

pytestmark = pytest.mark.timeout(30)

ACTIVITY_ID = "operated"


class Operated:
    """Activities that report what the worker was told when their attempt was interrupted."""

    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.running = asyncio.Event()
        self.interrupted: asyncio.Queue[activity.ActivityCancellationDetails | None] = (
            asyncio.Queue()
        )
        self.calls = 0

    @activity.defn(name="beat_until_interrupted")
    async def beat_until_interrupted(self, catch: bool) -> str:
        info = activity.info()
        self.attempts.append(info.attempt)
        if info.heartbeat_details:
            return f"attempt {info.attempt} resumed from {list(info.heartbeat_details)}"
        self.running.set()
        try:
            while True:
                activity.heartbeat("progress")
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            self.interrupted.put_nowait(details)
            if not catch:
                raise
            return f"interrupted: paused={details.paused} reset={details.reset}"  # type: ignore[union-attr]

    @activity.defn(name="fail_first_call")
    async def fail_first_call(self) -> str:
        self.calls += 1
        attempt = activity.info().attempt
        self.attempts.append(attempt)
        if self.calls == 1:
            raise RuntimeError("first call fails")
        return f"done on attempt {attempt}"


@workflow.defn
class OperatedWorkflow:
    @workflow.run
    async def run(self, name: str, args: list[Any], retry_interval_s: float) -> str:
        return await workflow.execute_activity(
            name,
            args=args,
            activity_id=ACTIVITY_ID,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=retry_interval_s),
                backoff_coefficient=1.0,
                maximum_attempts=3,
            ),
        )


def _worker(client: Client, task_queue: str, acts: Operated) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OperatedWorkflow],
        activities=[acts.beat_until_interrupted, acts.fail_first_call],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_heartbeat_throttle_interval=timedelta(milliseconds=100),
        default_heartbeat_throttle_interval=timedelta(milliseconds=100),
    )


async def _start(
    client: Client, task_queue: str, name: str, *args: Any, retry_interval_s: float = 0.1
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        OperatedWorkflow.run,
        args=[name, list(args), retry_interval_s],
        id=unique(name),
        task_queue=task_queue,
    )


def _execution(handle: WorkflowHandle[Any, Any]) -> WorkflowExecution:
    return WorkflowExecution(workflow_id=handle.id)


async def _pending_until(
    handle: WorkflowHandle[Any, Any], condition: Callable[[PendingActivityInfo], bool]
) -> PendingActivityInfo:
    """Describe the workflow until its pending activity satisfies `condition`."""
    while True:
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if condition(pending):
                return pending
        await asyncio.sleep(0.05)


async def _pause(client: Client, handle: WorkflowHandle[Any, Any], **target: Any) -> None:
    await client.workflow_service.pause_activity(
        PauseActivityRequest(
            namespace=client.namespace,
            execution=_execution(handle),
            identity="operator",
            reason="looking into it",
            **(target or {"id": ACTIVITY_ID}),
        )
    )


async def _unpause(client: Client, handle: WorkflowHandle[Any, Any], **options: Any) -> None:
    await client.workflow_service.unpause_activity(
        UnpauseActivityRequest(
            namespace=client.namespace, execution=_execution(handle), id=ACTIVITY_ID, **options
        )
    )


async def _reset(client: Client, handle: WorkflowHandle[Any, Any], **options: Any) -> None:
    await client.workflow_service.reset_activity(
        ResetActivityRequest(
            namespace=client.namespace, execution=_execution(handle), id=ACTIVITY_ID, **options
        )
    )


async def test_pausing_a_running_activity_interrupts_it_and_holds_the_next_attempt(
    client: Client,
) -> None:
    acts, task_queue = Operated(), unique("tq")
    async with _worker(client, task_queue, acts):
        handle = await _start(client, task_queue, "beat_until_interrupted", False)
        await acts.running.wait()
        await _pause(client, handle)

        details = await acts.interrupted.get()
        assert details is not None and details.paused and not details.reset
        # The interrupted attempt failed, but no new attempt is dispatched while paused.
        held = await _pending_until(
            handle, lambda p: p.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        )
        assert held.paused and held.attempt == 2
        assert held.pause_info.manual.identity == "operator"
        assert held.pause_info.manual.reason == "looking into it"
        assert held.heartbeat_details.payloads, "the attempt's heartbeat details are kept"
        assert acts.attempts == [1]

        await _unpause(client, handle)
        assert await handle.result() == "attempt 2 resumed from ['progress']"
        assert acts.attempts == [1, 2]


async def test_an_activity_that_handles_the_pause_completes(client: Client) -> None:
    acts, task_queue = Operated(), unique("tq")
    async with _worker(client, task_queue, acts):
        handle = await _start(client, task_queue, "beat_until_interrupted", True)
        await acts.running.wait()
        await _pause(client, handle, type="beat_until_interrupted")
        assert await handle.result() == "interrupted: paused=True reset=False"


async def test_unpause_dispatches_a_waiting_retry_at_once(client: Client) -> None:
    acts, task_queue = Operated(), unique("tq")
    async with _worker(client, task_queue, acts):
        # The first call fails; the retry would wait an hour.
        handle = await _start(client, task_queue, "fail_first_call", retry_interval_s=3600)
        await _pending_until(handle, lambda p: p.attempt == 2)
        await _pause(client, handle)
        paused = await _pending_until(handle, lambda p: p.paused)
        assert paused.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED

        await _unpause(client, handle, reset_attempts=True)
        assert await handle.result() == "done on attempt 1"


async def test_reset_interrupts_a_running_attempt(client: Client) -> None:
    acts, task_queue = Operated(), unique("tq")
    async with _worker(client, task_queue, acts):
        handle = await _start(client, task_queue, "beat_until_interrupted", True)
        await acts.running.wait()
        await _reset(client, handle)
        assert await handle.result() == "interrupted: paused=False reset=True"


async def test_reset_of_a_waiting_retry_runs_attempt_one_now(client: Client) -> None:
    acts, task_queue = Operated(), unique("tq")
    async with _worker(client, task_queue, acts):
        handle = await _start(client, task_queue, "fail_first_call", retry_interval_s=3600)
        await _pending_until(handle, lambda p: p.attempt == 2)
        await _reset(client, handle)
        assert await handle.result() == "done on attempt 1"
        assert acts.attempts == [1, 1]


async def test_reset_with_heartbeat_reset_drops_the_details(client: Client) -> None:
    acts, task_queue = Operated(), unique("tq")
    async with _worker(client, task_queue, acts):
        handle = await _start(client, task_queue, "beat_until_interrupted", False)
        await acts.running.wait()
        await _pause(client, handle)
        await _pending_until(
            handle, lambda p: p.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        )
        # Unpaused by the reset; without its heartbeat details the attempt starts over.
        acts.running.clear()
        await _reset(client, handle, reset_heartbeat=True)
        await acts.running.wait()
        assert acts.attempts == [1, 1]
        await handle.terminate()


async def _code_of(call: Any) -> tuple[RPCStatusCode, str]:
    with pytest.raises(RPCError) as err:
        await call
    return err.value.status, err.value.message


async def test_bad_operator_requests(client: Client) -> None:
    acts, task_queue = Operated(), unique("tq")
    async with _worker(client, task_queue, acts):
        handle = await _start(client, task_queue, "beat_until_interrupted", True)
        await acts.running.wait()
        ns, execution = client.namespace, _execution(handle)
        service = client.workflow_service

        assert await _code_of(
            service.pause_activity(PauseActivityRequest(namespace=ns, execution=execution))
        ) == (
            RPCStatusCode.INVALID_ARGUMENT,
            "Either Activity.Id or Activity.Type should be set on request.",
        )
        code, message = await _code_of(
            service.reset_activity(ResetActivityRequest(namespace=ns, execution=execution, id="x"))
        )
        assert code == RPCStatusCode.NOT_FOUND and "Can't find pending activity" in message

        first = PauseActivityRequest(
            namespace=ns, execution=execution, id=ACTIVITY_ID, request_id="r1"
        )
        await service.pause_activity(first)
        await service.pause_activity(first)  # the same request again
        second = PauseActivityRequest(
            namespace=ns, execution=execution, id=ACTIVITY_ID, request_id="r2"
        )
        assert await _code_of(service.pause_activity(second)) == (
            RPCStatusCode.FAILED_PRECONDITION,
            "activity is already paused",
        )

        await handle.result()
        assert await _code_of(
            service.unpause_activity(
                UnpauseActivityRequest(namespace=ns, execution=execution, unpause_all=True)
            )
        ) == (RPCStatusCode.NOT_FOUND, "workflow execution already completed")
