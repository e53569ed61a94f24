"""Regressions found by running the official SDK's test suite against Aion (docs/compatibility.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

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
def small_history_server() -> Iterator[AionProcess]:
    server = AionProcess(
        extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=10"]
    )
    server.start()
    yield server
    server.stop()


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
