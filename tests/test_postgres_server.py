"""A real Aion server process on PostgreSQL: a workflow with an activity and a timer runs, and
its history outlives a restart of the server.

PostgreSQL only, by design: the end-to-end check of `start-dev --dsn` on its own (a fresh database
migrated on start, then a restart on the same database with new range ids). Every other server
test runs on both backends (tests/conftest.py), the restart ones included (test_durability.py,
test_updates.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import fresh_storage
from tests.servers import AionProcess

pytestmark = pytest.mark.timeout(90)


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(0.1)
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


@pytest.fixture
async def pg_server() -> AsyncIterator[AionProcess]:
    async with fresh_storage("postgres") as storage:
        server = storage.server()
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)


async def _run(client: Client, workflow_id: str) -> str:
    async with Worker(
        client,
        task_queue="pg",
        workflows=[Greeting],
        activities=[greet],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        return await client.execute_workflow(
            Greeting.run, "Postgres", id=workflow_id, task_queue="pg"
        )


async def test_workflow_with_activity_on_postgres_survives_restart(
    pg_server: AionProcess,
) -> None:
    client = await Client.connect(pg_server.address)
    assert await _run(client, "pg-1") == "Hello, Postgres!"
    before = [
        e.event_type for e in (await client.get_workflow_handle("pg-1").fetch_history()).events
    ]
    assert EventType.EVENT_TYPE_TIMER_FIRED in before
    assert before[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED

    await asyncio.to_thread(pg_server.stop)
    await asyncio.to_thread(pg_server.start)  # same database, new range ids

    client = await Client.connect(pg_server.address)
    handle = client.get_workflow_handle("pg-1")
    assert await handle.result() == "Hello, Postgres!"
    after = [e.event_type for e in (await handle.fetch_history()).events]
    assert after == before
    assert await _run(client, "pg-2") == "Hello, Postgres!"
    listed = [w.id async for w in client.list_workflows()]
    assert sorted(listed) == ["pg-1", "pg-2"]
