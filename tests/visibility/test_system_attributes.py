"""The system attributes a run's visibility row carries, through the SDK: a child's parent and
root, a workflow's own root, history size and state transitions, in list rows and filters."""

from __future__ import annotations

import uuid

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


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
