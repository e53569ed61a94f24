"""Conformance scenarios for Workflow Update: accepted, rejected, failed, update-with-start.

Every update is sent with a fixed id (the SDK's default is a random UUID), so the update ids,
and the protocol message ids the server derives from them, match across servers. Each driver
sends an update only once the workflow is blocked (its first workflow task has completed) and
waits for the update's outcome, so no update races a workflow task.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from tests.conformance.scenarios import ACTIVITY_TIMEOUT, echo, first_task_completed, scenario

# Workflows


@workflow.defn
class UpdateRunsActivity:
    """An update whose handler runs an activity; the workflow ends once the handler has."""

    def __init__(self) -> None:
        self.done = False

    @workflow.update
    async def echo_via_activity(self, value: str) -> str:
        result = await workflow.execute_activity(
            echo, value, start_to_close_timeout=ACTIVITY_TIMEOUT
        )
        self.done = True
        return result

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done and workflow.all_handlers_finished())
        return "updated"


@workflow.defn
class ValidatedUpdate:
    """`set_value` rejects negative values in its validator; the workflow returns the value."""

    def __init__(self) -> None:
        self.value: int | None = None

    @workflow.update
    def set_value(self, value: int) -> int:
        self.value = value
        return value * 2

    @set_value.validator
    def check_value(self, value: int) -> None:
        if value < 0:
            raise ApplicationError(f"{value} is negative", type="NegativeValue")

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.value is not None)
        assert self.value is not None
        return self.value


@workflow.defn
class FailingUpdate:
    """`refuse` is accepted and then fails; the `finish` signal ends the workflow."""

    def __init__(self) -> None:
        self.value: str | None = None

    @workflow.update
    async def refuse(self, reason: str) -> str:
        raise ApplicationError(f"refused: {reason}", {"reason": reason}, type="UpdateRefused")

    @workflow.signal
    def finish(self, value: str) -> None:
        self.value = value

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.value is not None)
        assert self.value is not None
        return self.value


# Scenarios


@scenario([UpdateRunsActivity], [echo])
async def update_accepted(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    """Accepted on a speculative workflow task; its completion and the workflow's share a task."""
    handle = await client.start_workflow(
        UpdateRunsActivity.run, id=workflow_id, task_queue=task_queue
    )
    await first_task_completed(handle)
    result = await handle.execute_update(
        UpdateRunsActivity.echo_via_activity, "from the update", id="update-accepted"
    )
    assert result == "echo:from the update", result
    return handle


@scenario([ValidatedUpdate])
async def update_rejected(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    """A rejected update leaves no trace in the history; the next, accepted one completes it."""
    handle = await client.start_workflow(ValidatedUpdate.run, id=workflow_id, task_queue=task_queue)
    await first_task_completed(handle)
    before = await handle.fetch_history()
    try:
        await handle.execute_update(ValidatedUpdate.set_value, -1, id="update-rejected")
    except WorkflowUpdateFailedError as err:
        assert isinstance(err.cause, ApplicationError), err.cause
        assert err.cause.type == "NegativeValue", err.cause.type
    else:
        raise AssertionError("the validator did not reject the update")
    assert (await handle.fetch_history()).events == before.events
    assert await handle.execute_update(ValidatedUpdate.set_value, 21, id="update-accepted") == 42
    return handle


@scenario([FailingUpdate])
async def update_failed(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    """An update accepted and then completed with a failure; a signal then ends the workflow."""
    handle = await client.start_workflow(FailingUpdate.run, id=workflow_id, task_queue=task_queue)
    await first_task_completed(handle)
    try:
        await handle.execute_update(FailingUpdate.refuse, "no reason", id="update-failed")
    except WorkflowUpdateFailedError as err:
        assert isinstance(err.cause, ApplicationError), err.cause
        assert err.cause.type == "UpdateRefused", err.cause.type
    else:
        raise AssertionError("the update did not fail")
    await handle.signal(FailingUpdate.finish, "after the failed update")
    return handle


@scenario([ValidatedUpdate])
async def update_with_start(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle:
    """Update-with-start (ExecuteMultiOperation): the first workflow task carries the update."""
    start = WithStartWorkflowOperation(
        ValidatedUpdate.run,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    result = await client.execute_update_with_start_workflow(
        ValidatedUpdate.set_value, 5, id="update-with-start", start_workflow_operation=start
    )
    assert result == 10, result
    return await start.workflow_handle()
