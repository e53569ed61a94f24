"""The system attributes a run's visibility row carries, through the SDK: a child's parent and
root, a workflow's own root, history size and state transitions, BuildIds (compared with the
reference dev server), in list rows and filters."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio import workflow
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig

from tests.conformance.reference import running_reference


@workflow.defn
class Leaf:
    @workflow.run
    async def run(self) -> str:
        return workflow.info().workflow_id


@workflow.defn
class Middle:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_child_workflow(
            Leaf.run, id=f"{workflow.info().workflow_id}-leaf"
        )


@workflow.defn
class Top:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_child_workflow(
            Middle.run, id=f"{workflow.info().workflow_id}-middle"
        )


async def test_parent_and_root_of_child_workflows(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    top_id = f"top-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Top, Middle, Leaf],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        top = await client.start_workflow(Top.run, id=top_id, task_queue=task_queue)
        assert await top.result() == f"{top_id}-middle-leaf"
    top_run = (await top.describe()).run_id

    middle = [w async for w in client.list_workflows(f"ParentWorkflowId = '{top_id}'")]
    assert [w.id for w in middle] == [f"{top_id}-middle"]
    assert middle[0].parent_id == top_id and middle[0].parent_run_id == top_run
    assert middle[0].root_id == top_id and middle[0].root_run_id == top_run

    rooted = [w async for w in client.list_workflows(f"RootWorkflowId = '{top_id}'")]
    assert sorted(w.id for w in rooted) == sorted(
        [top_id, f"{top_id}-middle", f"{top_id}-middle-leaf"]
    )
    leaf = next(w for w in rooted if w.id.endswith("-leaf"))
    assert leaf.parent_id == f"{top_id}-middle" and leaf.root_id == top_id
    (own,) = [w for w in rooted if w.id == top_id]
    assert own.parent_id is None and own.root_id == top_id and own.root_run_id == top_run

    query = f"RootWorkflowId = '{top_id}' AND ParentWorkflowId IS NULL"
    assert [w.id async for w in client.list_workflows(query)] == [top_id]
    count = await client.count_workflows(
        f"RootWorkflowId = '{top_id}' AND HistorySizeBytes > 0 AND StateTransitionCount > 1"
    )
    assert count.count == 3
    raw = own.raw_info
    assert raw.history_size_bytes > 0 and raw.state_transition_count > 1


@workflow.defn(name="BuildIdsProbe")
class Unversioned:
    @workflow.run
    async def run(self) -> str:
        return "done"


@workflow.defn(name="BuildIdsProbe", versioning_behavior=VersioningBehavior.PINNED)
class Pinned:
    @workflow.run
    async def run(self) -> str:
        return "done"


@pytest.fixture(scope="module")
async def reference() -> AsyncIterator[Client]:
    async with running_reference() as server:
        yield await Client.connect(server.address)


async def _set_current(client: Client, deployment: str, build_id: str) -> None:
    """Make the version current once its poller has registered it."""
    deadline = time.monotonic() + 30
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=deployment, build_id=build_id
    )
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(request)
            return
        except RPCError:
            assert time.monotonic() < deadline, f"{deployment}:{build_id} never registered"
            await asyncio.sleep(0.1)


async def _build_ids(client: Client) -> dict[str, object]:
    """BuildIds of an unversioned run and of a pinned run, and what filters on them find."""
    found: dict[str, object] = {}
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Unversioned],
        workflow_runner=UnsandboxedWorkflowRunner(),
        build_id="b1",
    ):
        handle = await client.start_workflow(
            Unversioned.run, id=f"unversioned-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.result()
    found["unversioned"] = (await handle.describe()).search_attributes.get("BuildIds")

    deployment = f"dep-{uuid.uuid4().hex[:8]}"
    pinned_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=pinned_queue,
        workflows=[Pinned],
        workflow_runner=UnsandboxedWorkflowRunner(),
        deployment_config=WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment, "v1"), use_worker_versioning=True
        ),
    ):
        await _set_current(client, deployment, "v1")
        pinned = await client.start_workflow(
            Pinned.run, id=f"pinned-{uuid.uuid4()}", task_queue=pinned_queue
        )
        await pinned.result()
    shown = (await pinned.describe()).search_attributes.get("BuildIds")
    found["pinned"] = [str(v).replace(deployment, "<dep>") for v in shown or []]

    for label, queue, value in (
        ("sentinel", task_queue, "unversioned"),
        ("build id", task_queue, "unversioned:b1"),
        ("no such build id", task_queue, "versioned:b1"),
        ("pinned version", pinned_queue, f"pinned:{deployment}:v1"),
    ):
        query = f"TaskQueue = '{queue}' AND BuildIds = '{value}'"
        found[label] = (await client.count_workflows(query)).count
    return found


async def test_build_ids_as_the_reference_fills_them(client: Client, reference: Client) -> None:
    expected = {
        "unversioned": ["unversioned", "unversioned:b1"],
        # The SDK's version stamp of a deployment worker does not say "versioned".
        "pinned": ["pinned:<dep>:v1", "unversioned:v1"],
        "sentinel": 1,
        "build id": 1,
        "no such build id": 0,
        "pinned version": 1,
    }
    assert await _build_ids(reference) == expected
    assert await _build_ids(client) == expected
