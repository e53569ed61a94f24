"""Update-with-Start (ExecuteMultiOperation [Start, Update]) as Temporal answers it: the call's
status code is the first failed operation's (ALREADY_EXISTS, INVALID_ARGUMENT), an update id the
workflow already has is attached to whatever the conflict policy, and the conflict policies FAIL,
USE_EXISTING and TERMINATE_EXISTING decide between the running workflow and a new run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage, WorkflowIdConflictPolicy
from temporalio.api.errordetails.v1 import (
    MultiOperationExecutionFailure,
    WorkflowExecutionAlreadyStartedFailure,
)
from temporalio.api.failure.v1 import MultiOperationExecutionAborted
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.update.v1 import Input, Meta, Request, WaitPolicy
from temporalio.api.workflowservice.v1 import (
    ExecuteMultiOperationRequest,
    StartWorkflowExecutionRequest,
    UpdateWorkflowExecutionRequest,
)
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.helpers import unique

pytestmark = pytest.mark.timeout(60)


@workflow.defn
class Gate:
    """Counts the updates that enter; an update may wait until the gate opens."""

    def __init__(self) -> None:
        self.entered = 0
        self.opened = False
        self.finished = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.finished)
        return self.entered

    @workflow.update
    async def enter(self, wait: bool) -> str:
        self.entered += 1
        ticket = f"{workflow.info().run_id}/{self.entered}"
        if wait:
            await workflow.wait_condition(lambda: self.opened)
        return ticket

    @workflow.signal
    def open(self) -> None:
        self.opened = True

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@asynccontextmanager
async def gate_worker(client: Client, task_queue: str) -> AsyncIterator[Worker]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Gate],
        workflow_runner=UnsandboxedWorkflowRunner(),  # the sandbox is not what is tested here
    ) as w:
        yield w


def start_op(
    workflow_id: str,
    task_queue: str,
    policy: WorkflowIDConflictPolicy,
    reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
) -> WithStartWorkflowOperation[Gate, int]:
    return WithStartWorkflowOperation(
        Gate.run,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=policy,
        id_reuse_policy=reuse,
    )


async def raw_request(
    client: Client,
    workflow_id: str,
    task_queue: str,
    *,
    update_workflow_id: str | None = None,
    policy: WorkflowIdConflictPolicy.ValueType = WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
) -> ExecuteMultiOperationRequest:
    """The ExecuteMultiOperation request an SDK builds, by hand."""
    args = await client.data_converter.encode([False])
    update_input = Input(name="enter")
    update_input.args.payloads.extend(args)
    start = StartWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="Gate"),
        task_queue=TaskQueue(name=task_queue),
        request_id=str(uuid.uuid4()),
        workflow_id_conflict_policy=policy,
    )
    update = UpdateWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=update_workflow_id or workflow_id),
        request=Request(
            meta=Meta(update_id=str(uuid.uuid4()), identity="test"), input=update_input
        ),
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
        ),
    )
    return ExecuteMultiOperationRequest(
        namespace=client.namespace,
        operations=[
            ExecuteMultiOperationRequest.Operation(start_workflow=start),
            ExecuteMultiOperationRequest.Operation(update_workflow=update),
        ],
    )


def statuses(error: RPCError) -> list[tuple[int, str]]:
    """(code, detail type) of each operation in the call's MultiOperationExecutionFailure."""
    failure = MultiOperationExecutionFailure()
    assert error.grpc_status.details[0].Unpack(failure)
    return [
        (status.code, status.details[0].TypeName() if status.details else "")
        for status in failure.statuses
    ]


ABORTED_DETAIL = MultiOperationExecutionAborted.DESCRIPTOR.full_name


async def test_conflict_policy_fail_on_a_running_id(client: Client) -> None:
    task_queue, workflow_id = unique("tq"), unique("wf")
    async with gate_worker(client, task_queue):
        first = start_op(workflow_id, task_queue, WorkflowIDConflictPolicy.FAIL)
        ticket = await client.execute_update_with_start_workflow(
            Gate.enter, False, start_workflow_operation=first
        )
        handle = await first.workflow_handle()
        assert ticket == f"{handle.first_execution_run_id}/1"

        second = start_op(workflow_id, task_queue, WorkflowIDConflictPolicy.FAIL)
        with pytest.raises(WorkflowAlreadyStartedError) as caught:
            await client.execute_update_with_start_workflow(
                Gate.enter, False, start_workflow_operation=second
            )
        assert caught.value.run_id == handle.first_execution_run_id
        with pytest.raises(WorkflowAlreadyStartedError):
            await second.workflow_handle()

        # The raw call answers ALREADY_EXISTS (not ABORTED, which SDKs retry), with the start's
        # failure first and the update aborted.
        with pytest.raises(RPCError) as raw:
            await client.workflow_service.execute_multi_operation(
                await raw_request(client, workflow_id, task_queue)
            )
        assert raw.value.status == RPCStatusCode.ALREADY_EXISTS
        assert statuses(raw.value) == [
            (
                RPCStatusCode.ALREADY_EXISTS,
                WorkflowExecutionAlreadyStartedFailure.DESCRIPTOR.full_name,
            ),
            (RPCStatusCode.ABORTED, ABORTED_DETAIL),
        ]

        await handle.signal(Gate.finish)
        assert await handle.result() == 1  # neither refused update reached the workflow


async def test_mismatched_workflow_ids_are_invalid_argument(client: Client) -> None:
    task_queue, workflow_id = unique("tq"), unique("wf")
    with pytest.raises(RPCError) as raw:
        await client.workflow_service.execute_multi_operation(
            await raw_request(client, workflow_id, task_queue, update_workflow_id=unique("other"))
        )
    assert raw.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert statuses(raw.value) == [
        (RPCStatusCode.ABORTED, ABORTED_DETAIL),
        (RPCStatusCode.INVALID_ARGUMENT, ""),
    ]
    failure = MultiOperationExecutionFailure()
    raw.value.grpc_status.details[0].Unpack(failure)
    assert "not consistent" in failure.statuses[1].message
    with pytest.raises(RPCError) as described:
        await client.get_workflow_handle(workflow_id).describe()
    assert described.value.status == RPCStatusCode.NOT_FOUND  # nothing was started


@pytest.mark.parametrize(
    "policy", [WorkflowIDConflictPolicy.FAIL, WorkflowIDConflictPolicy.TERMINATE_EXISTING]
)
async def test_attaches_to_an_update_in_flight(
    client: Client, policy: WorkflowIDConflictPolicy
) -> None:
    """An update id the running workflow already has is attached to, whatever the policy."""
    task_queue, workflow_id, update_id = unique("tq"), unique("wf"), unique("up")
    async with gate_worker(client, task_queue):
        first = start_op(workflow_id, task_queue, policy)
        waiting = await client.start_update_with_start_workflow(
            Gate.enter,
            True,
            id=update_id,
            start_workflow_operation=first,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        second = start_op(workflow_id, task_queue, policy)
        attached = await client.start_update_with_start_workflow(
            Gate.enter,
            False,  # not run: the update with this id is already in the workflow
            id=update_id,
            start_workflow_operation=second,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        handle = await first.workflow_handle()
        assert (await second.workflow_handle()).first_execution_run_id == (
            handle.first_execution_run_id
        )
        await handle.signal(Gate.open)
        ticket = f"{handle.first_execution_run_id}/1"
        assert await waiting.result() == ticket
        assert await attached.result() == ticket
        await handle.signal(Gate.finish)
        assert await handle.result() == 1


async def test_attaches_to_a_completed_update_of_a_closed_run(client: Client) -> None:
    """Even after the run closed, and with a reuse policy that refuses a new run, the outcome of
    the update with this id is the answer."""
    task_queue, workflow_id, update_id = unique("tq"), unique("wf"), unique("up")
    async with gate_worker(client, task_queue):
        first = start_op(
            workflow_id,
            task_queue,
            WorkflowIDConflictPolicy.FAIL,
            WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        ticket = await client.execute_update_with_start_workflow(
            Gate.enter, False, id=update_id, start_workflow_operation=first
        )
        handle = await first.workflow_handle()
        await handle.signal(Gate.finish)
        assert await handle.result() == 1
        second = start_op(
            workflow_id,
            task_queue,
            WorkflowIDConflictPolicy.FAIL,
            WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        again = await client.execute_update_with_start_workflow(
            Gate.enter, False, id=update_id, start_workflow_operation=second
        )
        assert again == ticket
        assert (await second.workflow_handle()).first_execution_run_id == (
            handle.first_execution_run_id
        )
        # A new update id on the closed run is refused by the reuse policy.
        third = start_op(
            workflow_id,
            task_queue,
            WorkflowIDConflictPolicy.FAIL,
            WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        for refused in (
            client.execute_update_with_start_workflow(
                Gate.enter, False, start_workflow_operation=third
            ),
            third.workflow_handle(),
        ):
            with pytest.raises(WorkflowAlreadyStartedError):
                await refused


async def test_use_existing_updates_the_running_workflow(client: Client) -> None:
    task_queue, workflow_id = unique("tq"), unique("wf")
    async with gate_worker(client, task_queue):
        first = start_op(workflow_id, task_queue, WorkflowIDConflictPolicy.USE_EXISTING)
        await client.execute_update_with_start_workflow(
            Gate.enter, False, start_workflow_operation=first
        )
        second = start_op(workflow_id, task_queue, WorkflowIDConflictPolicy.USE_EXISTING)
        ticket = await client.execute_update_with_start_workflow(
            Gate.enter, False, start_workflow_operation=second
        )
        handle = await second.workflow_handle()
        assert (
            handle.first_execution_run_id == (await first.workflow_handle()).first_execution_run_id
        )
        assert ticket == f"{handle.first_execution_run_id}/2"
        await handle.signal(Gate.finish)
        assert await handle.result() == 2


async def test_terminate_existing_starts_a_new_run(client: Client) -> None:
    task_queue, workflow_id = unique("tq"), unique("wf")
    async with gate_worker(client, task_queue):
        first = start_op(workflow_id, task_queue, WorkflowIDConflictPolicy.TERMINATE_EXISTING)
        await client.execute_update_with_start_workflow(
            Gate.enter, False, start_workflow_operation=first
        )
        second = start_op(workflow_id, task_queue, WorkflowIDConflictPolicy.TERMINATE_EXISTING)
        ticket = await client.execute_update_with_start_workflow(
            Gate.enter, False, start_workflow_operation=second
        )
        old, new = await first.workflow_handle(), await second.workflow_handle()
        assert new.first_execution_run_id != old.first_execution_run_id
        assert ticket == f"{new.first_execution_run_id}/1"
        old_run = client.get_workflow_handle(workflow_id, run_id=old.first_execution_run_id)
        assert (await old_run.describe()).status == WorkflowExecutionStatus.TERMINATED
        await new.signal(Gate.finish)
        assert await new.result() == 1
