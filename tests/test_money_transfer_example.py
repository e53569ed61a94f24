"""The money transfer example (examples/money_transfer) against a real Aion server: Workflow
Update with a validator, and a saga whose compensation runs after the update has answered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from examples.money_transfer.activities import Bank, Movement
from examples.money_transfer.starter import new_worker
from examples.money_transfer.workflows import (
    MoneyTransferWorkflow,
    TellerConfig,
    TellerReport,
    TransferReceipt,
    TransferRequest,
)

pytestmark = pytest.mark.timeout(60)

LIMIT = 500


class GatedRefundBank(Bank):
    """A bank whose refunds wait for `release_refunds`, so a test can look in between."""

    def __init__(self, balances: Mapping[str, int], frozen: set[str]) -> None:
        super().__init__(balances, frozen)
        self.release_refunds = asyncio.Event()

    @activity.defn(name="refund")
    async def refund(self, movement: Movement) -> str:
        await self.release_refunds.wait()
        return await super().refund(movement)


@asynccontextmanager
async def teller(client: Client, bank: Bank) -> AsyncIterator[WorkflowHandle]:
    """A running teller workflow, with a worker for it on a task queue of its own."""
    task_queue = f"money-transfer-{uuid.uuid4()}"
    async with new_worker(client, task_queue, bank):
        yield await client.start_workflow(
            MoneyTransferWorkflow.run,
            TellerConfig(limit=LIMIT),
            id=f"teller-{uuid.uuid4()}",
            task_queue=task_queue,
        )


async def transfer(handle: WorkflowHandle, request: TransferRequest) -> TransferReceipt:
    return await handle.execute_update(
        MoneyTransferWorkflow.transfer, request, id=request.transfer_id
    )


async def history(handle: WorkflowHandle) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


def of_type(events: list[HistoryEvent], event_type: EventType.ValueType) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == event_type]


async def test_accepted_transfer_returns_its_receipt(client: Client) -> None:
    bank = Bank({"alice": 1000, "bob": 0})
    async with teller(client, bank) as handle:
        receipt = await transfer(handle, TransferRequest("t-1", "alice", "bob", 100))
        assert receipt == TransferReceipt("t-1", withdrawal="withdraw-1", deposit="deposit-2")
        assert bank.balances == {"alice": 900, "bob": 100}
        await handle.signal(MoneyTransferWorkflow.close)
        assert await handle.result() == TellerReport(completed=["t-1"])

    events = await history(handle)
    (accepted,) = of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    assert accepted.workflow_execution_update_accepted_event_attributes.protocol_instance_id == (
        "t-1"
    )
    (completed,) = of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
    attributes = completed.workflow_execution_update_completed_event_attributes
    assert (attributes.meta.update_id, attributes.accepted_event_id) == ("t-1", accepted.event_id)
    assert attributes.outcome.HasField("success")


async def test_over_limit_transfer_is_rejected_without_a_trace(client: Client) -> None:
    bank = Bank({"alice": 1000, "bob": 0})
    async with teller(client, bank) as handle:
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await transfer(handle, TransferRequest("t-2", "alice", "bob", LIMIT + 1))
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "OverLimit"
        assert bank.balances == {"alice": 1000, "bob": 0}
        assert bank.journal == []
        await handle.signal(MoneyTransferWorkflow.close)
        assert await handle.result() == TellerReport()

    events = await history(handle)
    assert of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) == []
    assert of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED) == []
    assert of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == []


async def test_failed_deposit_answers_at_once_then_refunds(client: Client) -> None:
    bank = GatedRefundBank({"alice": 1000, "carol": 0}, frozen={"carol"})
    async with teller(client, bank) as handle:
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await transfer(handle, TransferRequest("t-3", "alice", "carol", 300))
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "TransferFailed"
        assert "carol is frozen" in cause.message
        # The caller has its answer while the refund is still held back.
        assert bank.balances == {"alice": 700, "carol": 0}
        assert bank.journal == ["withdraw alice 300 (t-3/withdraw)"]

        bank.release_refunds.set()
        await handle.signal(MoneyTransferWorkflow.close)
        assert await handle.result() == TellerReport(refunded=["t-3"])
        assert bank.balances == {"alice": 1000, "carol": 0}
        assert bank.journal == [
            "withdraw alice 300 (t-3/withdraw)",
            "refund alice 300 (t-3/refund)",
        ]

    events = await history(handle)
    (completed,) = of_type(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
    outcome = completed.workflow_execution_update_completed_event_attributes.outcome
    assert outcome.failure.application_failure_info.type == "TransferFailed"
    scheduled = of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    kinds = [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled]
    assert kinds == ["withdraw", "deposit", "refund"]
    refund_done = [
        e
        for e in of_type(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        if e.activity_task_completed_event_attributes.scheduled_event_id == scheduled[2].event_id
    ]
    assert len(refund_done) == 1
    assert completed.event_id < refund_done[0].event_id
