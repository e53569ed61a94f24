"""Retention and deletion (issue 16): a closed run is deleted a retention period after it
closed (history, describe, list), by a durable task that survives restarts, and
DeleteWorkflowExecution deletes a run at once, terminating it first if it runs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.operatorservice.v1 import DeleteNamespaceRequest
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeNamespaceRequest,
    ListNamespacesRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.helpers import Storage
from tests.servers import AionProcess

DELETION_TIMEOUT_S = 30.0
POLL_S = 0.2


@workflow.defn(name="RetentionQuick")
class QuickWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "done"


@workflow.defn(name="RetentionSleeps")
class SleepingWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(seconds)
        return "woke"


@workflow.defn(name="RetentionWaits")
class WaitingWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


def retention_server(storage: Storage, retention: str) -> AionProcess:
    return storage.server(
        extra_args=["--dynamic-config-value", f'aion.workflowRetention="{retention}"']
    )


async def is_gone(client: Client, handle: WorkflowHandle[object, object]) -> bool:
    """Describe, history and list all say the run does not exist."""
    try:
        await handle.describe()
        return False
    except RPCError as e:
        assert e.status == RPCStatusCode.NOT_FOUND, e
    with pytest.raises(RPCError) as history:
        await handle.fetch_history()
    assert history.value.status == RPCStatusCode.NOT_FOUND
    listed = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    return not listed


async def wait_until_gone(client: Client, handle: WorkflowHandle[object, object]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELETION_TIMEOUT_S
    while not await is_gone(client, handle):
        assert loop.time() < deadline, f"{handle.id} was not deleted"
        await asyncio.sleep(POLL_S)


async def test_closed_runs_are_deleted_after_retention(storage: Storage) -> None:
    server = retention_server(storage, "1s")
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        queue = f"retention-{uuid.uuid4()}"
        async with Worker(client, task_queue=queue, workflows=[QuickWorkflow]):
            handle = await client.start_workflow(
                QuickWorkflow.run, id=f"retention-{uuid.uuid4()}", task_queue=queue
            )
            assert await handle.result() == "done"
        await wait_until_gone(client, handle)
        # The workflow id is free again: a new run starts as if none had been.
        again = await client.start_workflow(QuickWorkflow.run, id=handle.id, task_queue=queue)
        assert (await again.describe()).run_id != handle.result_run_id
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_run_is_deleted_after_a_restart(storage: Storage) -> None:
    """The run's timeout and its deletion are durable tasks: a server stopped while the run
    still waits times it out once it is back, and deletes it a retention period later."""
    if storage.backend == "sqlite" and storage.db_filename is None:
        pytest.skip("needs storage that outlives the server")
    server = retention_server(storage, "1s")
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        handle = await client.start_workflow(
            WaitingWorkflow.run,
            id=f"retention-{uuid.uuid4()}",
            task_queue=f"retention-{uuid.uuid4()}",
            run_timeout=timedelta(seconds=2),
        )
    finally:
        await asyncio.to_thread(server.stop)
    restarted = retention_server(storage, "1s")
    await asyncio.to_thread(restarted.start)
    try:
        client = await Client.connect(restarted.address)
        await wait_until_gone(client, client.get_workflow_handle(handle.id))
    finally:
        await asyncio.to_thread(restarted.stop)


async def test_timers_due_beyond_the_in_memory_window_fire(storage: Storage) -> None:
    """Timer tasks due later than the window stay in the store until the window reaches them:
    a 3 s timer and a 2 s retention with a 1 s window."""
    server = storage.server(
        extra_args=[
            *("--dynamic-config-value", 'aion.timerTaskWindow="1s"'),
            *("--dynamic-config-value", 'aion.workflowRetention="2s"'),
        ]
    )
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        queue = f"window-{uuid.uuid4()}"
        async with Worker(client, task_queue=queue, workflows=[SleepingWorkflow]):
            handle = await client.start_workflow(
                SleepingWorkflow.run, 3.0, id=f"window-{uuid.uuid4()}", task_queue=queue
            )
            assert await handle.result() == "woke"
        await wait_until_gone(client, handle)
    finally:
        await asyncio.to_thread(server.stop)


async def test_delete_terminates_a_running_workflow_and_deletes_it(client: Client) -> None:
    queue = f"delete-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[WaitingWorkflow]):
        handle = await client.start_workflow(
            WaitingWorkflow.run,
            id=f"delete-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(hours=1),
        )
        await client.workflow_service.delete_workflow_execution(
            _delete_request(client, handle.id, handle.result_run_id or "")
        )
        await wait_until_gone(client, handle)


async def test_delete_of_an_unknown_workflow_is_not_found(client: Client) -> None:
    with pytest.raises(RPCError) as raised:
        await client.workflow_service.delete_workflow_execution(
            _delete_request(client, f"no-such-{uuid.uuid4()}", "")
        )
    assert raised.value.status == RPCStatusCode.NOT_FOUND


def _delete_request(
    client: Client, workflow_id: str, run_id: str
) -> DeleteWorkflowExecutionRequest:
    return DeleteWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
    )


async def test_delete_namespace_renames_it_and_deletes_everything_of_it(client: Client) -> None:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    doomed = await Client.connect(client.service_client.config.target_host, namespace=name)
    handle = await doomed.start_workflow(
        WaitingWorkflow.run, id=f"in-{name}", task_queue=f"q-{name}"
    )

    response = await client.operator_service.delete_namespace(
        DeleteNamespaceRequest(namespace=name)
    )
    assert response.deleted_namespace.startswith(f"{name}-deleted-")
    with pytest.raises(RPCError) as gone:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    assert gone.value.status == RPCStatusCode.NOT_FOUND

    # The deletion finishes in the background: the renamed namespace goes too.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELETION_TIMEOUT_S
    while True:
        listed = await client.workflow_service.list_namespaces(ListNamespacesRequest())
        names = {n.namespace_info.name for n in listed.namespaces}
        if response.deleted_namespace not in names:
            break
        assert loop.time() < deadline, names
        await asyncio.sleep(POLL_S)

    # The name is free again, and nothing of the old namespace is in the new one.
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    with pytest.raises(RPCError) as missing:
        await doomed.get_workflow_handle(handle.id).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
