"""Nothing acknowledged is lost: SIGKILL the server mid-run, restart it on the same database
(a SQLite file, or a PostgreSQL database)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from tests.helpers import Storage

WORKFLOWS = 200


@activity.defn
async def add_one(value: int) -> int:
    return value + 1


@workflow.defn
class MixedWorkflow:
    """Activities, a durable timer and (for odd inputs) a signal, so every kind of task is in flight."""

    def __init__(self) -> None:
        self.bonus: int | None = None

    @workflow.run
    async def run(self, value: int) -> int:
        for _ in range(3):
            value = await workflow.execute_activity(
                add_one,
                value,
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
            )
        await workflow.sleep(timedelta(milliseconds=300))
        if value % 2 == 0:
            await workflow.wait_condition(lambda: self.bonus is not None)
            assert self.bonus is not None
            value += self.bonus
        return value

    @workflow.signal
    def bonus_signal(self, bonus: int) -> None:
        self.bonus = bonus


def expected(i: int) -> int:
    value = i + 3
    return value + 1000 if value % 2 == 0 else value


async def _describe(handle: WorkflowHandle[MixedWorkflow, int]) -> str:
    described = await handle.describe()
    raw = described.raw_description
    events = [e.event_type for e in (await handle.fetch_history()).events]
    return (
        f"{handle.id}: status={described.status} pending_activities={list(raw.pending_activities)} "
        f"pending_wt={raw.pending_workflow_task} events={events}"
    )


async def test_sigkill_mid_run_loses_nothing(storage: Storage) -> None:
    server = storage.server()
    server.start()
    try:
        client = await Client.connect(server.address)
        task_queue = f"durable-{uuid.uuid4()}"
        handles: list[WorkflowHandle[MixedWorkflow, int]] = []
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[MixedWorkflow],
            activities=[add_one],
            max_concurrent_workflow_task_polls=4,
        ):
            for i in range(WORKFLOWS):
                handles.append(
                    await client.start_workflow(
                        MixedWorkflow.run,
                        i,
                        id=f"durable-{i}-{uuid.uuid4()}",
                        task_queue=task_queue,
                    )
                )
            # Kill once some workflows have finished while the rest are mid-flight.
            odd = [h for i, h in enumerate(handles) if expected(i) % 2 == 1]
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(h.result()) for h in odd],
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert done
            server.kill()
            server.start()

            for i, handle in enumerate(handles):
                if (i + 3) % 2 == 0:
                    await handle.signal(MixedWorkflow.bonus_signal, 1000)
            tasks = [asyncio.ensure_future(h.result()) for h in handles]
            _, pending = await asyncio.wait(tasks, timeout=180)
            if pending:
                stuck = [h for h, t in zip(handles, tasks, strict=True) if t in pending]
                report = [await _describe(h) for h in stuck[:5]]
                errors = [line for line in server.output if "ERROR" in line or "Error" in line]
                pytest.fail(
                    f"{len(stuck)} workflows did not finish; first ones:\n"
                    + "\n".join(report)
                    + "\nserver errors:\n"
                    + "".join(errors[-30:])
                )
            results = [t.result() for t in tasks]
        assert results == [expected(i) for i in range(WORKFLOWS)]

    finally:
        server.stop()
