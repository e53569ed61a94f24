"""A mixed workload that makes a server emit most of Temporal's metrics: workflows that
complete (with an activity, a timer, a child, a signal, a query and an update), fail, time out,
are terminated, cancelled or continue as new, and an activity that fails once and is retried.
The metrics tests run it against Aion and against the reference server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

RETRY_FAST = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3)


@activity.defn(name="metrics_echo")
async def echo(value: str) -> str:
    return value


@activity.defn(name="metrics_flaky")
async def flaky(value: str) -> str:
    if activity.info().attempt == 1:
        raise ApplicationError("first attempt fails")
    return value


@workflow.defn(name="MetricsChild")
class ChildWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return value


@workflow.defn(name="MetricsMixed")
class MixedWorkflow:
    """Runs an activity, a flaky activity, a timer and a child, then waits for a signal."""

    def __init__(self) -> None:
        self.released = False
        self.added = 0

    @workflow.run
    async def run(self) -> str:
        options = {"start_to_close_timeout": timedelta(seconds=30), "retry_policy": RETRY_FAST}
        await workflow.execute_activity(echo, "a", **options)  # type: ignore[arg-type]
        await workflow.execute_activity(flaky, "b", **options)  # type: ignore[arg-type]
        await workflow.sleep(0.05)
        await workflow.execute_child_workflow(ChildWorkflow.run, "c")
        await workflow.wait_condition(lambda: self.released)
        return "done"

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.query
    def is_released(self) -> bool:
        return self.released

    @workflow.update
    def add(self, amount: int) -> int:
        self.added += amount
        return self.added


@workflow.defn(name="MetricsFails")
class FailingWorkflow:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("fails on purpose", non_retryable=True)


@workflow.defn(name="MetricsWaits")
class WaitingWorkflow:
    """Waits until it is terminated, cancelled or timed out."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn(name="MetricsContinues")
class ContinuingWorkflow:
    @workflow.run
    async def run(self, remaining: int) -> int:
        if remaining > 0:
            workflow.continue_as_new(remaining - 1)
        return remaining


WORKFLOWS = [MixedWorkflow, ChildWorkflow, FailingWorkflow, WaitingWorkflow, ContinuingWorkflow]
ACTIVITIES = [echo, flaky]


async def run_workload(client: Client, task_queue: str, rounds: int = 2) -> None:
    """Run every outcome `rounds` times on `task_queue`, with a worker in this process."""
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        await asyncio.gather(*(_one_round(client, task_queue) for _ in range(rounds)))


async def _one_round(client: Client, task_queue: str) -> None:
    def new_id(kind: str) -> str:
        return f"metrics-{kind}-{uuid.uuid4()}"

    mixed = await client.start_workflow(
        MixedWorkflow.run, id=new_id("mixed"), task_queue=task_queue
    )
    assert await mixed.execute_update(MixedWorkflow.add, 2) == 2
    await mixed.query(MixedWorkflow.is_released)
    await mixed.signal(MixedWorkflow.release)
    assert await mixed.result() == "done"

    failing = await client.start_workflow(
        FailingWorkflow.run, id=new_id("fails"), task_queue=task_queue
    )
    try:
        await failing.result()
        raise AssertionError("the workflow should have failed")
    except WorkflowFailureError:
        pass

    timing_out = await client.start_workflow(
        WaitingWorkflow.run,
        id=new_id("times-out"),
        task_queue=task_queue,
        run_timeout=timedelta(seconds=1),
    )
    terminated = await client.start_workflow(
        WaitingWorkflow.run, id=new_id("terminated"), task_queue=task_queue
    )
    cancelled = await client.start_workflow(
        WaitingWorkflow.run, id=new_id("cancelled"), task_queue=task_queue
    )
    await terminated.terminate("metrics workload")
    await cancelled.cancel()
    for handle in (timing_out, cancelled):
        try:
            await handle.result()
            raise AssertionError("the workflow should not have completed")
        except WorkflowFailureError:
            pass

    continuing = await client.start_workflow(
        ContinuingWorkflow.run, 2, id=new_id("continues"), task_queue=task_queue
    )
    assert await continuing.result() == 0
