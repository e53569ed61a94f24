"""A teller workflow that moves money between accounts, one Workflow Update per transfer.

* The `transfer` update's validator turns away bad requests (over the limit, not positive, a
  transfer id seen before, the teller closed) before anything is recorded: a rejected update
  leaves no trace in the workflow's history.
* An accepted transfer withdraws, then deposits (two activities), and the caller gets the
  receipt as the update's result.
* If the deposit fails for good (the target account is frozen or does not exist), the update
  fails at once with the reason, and the workflow goes on to refund the withdrawal: the
  compensation of a saga, which runs after the caller already has its answer.
* The `close` signal ends the session once every transfer, refunds included, is done; the
  workflow's result is a report of what happened to each transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from examples.money_transfer.activities import Bank, Movement

ACTIVITY_TIMEOUT = timedelta(seconds=10)
# Non-retryable errors (frozen account, no money) are not retried whatever the policy says.
BANK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
)


@dataclass(frozen=True)
class TellerConfig:
    limit: int
    """The largest amount one transfer may move."""


@dataclass(frozen=True)
class TransferRequest:
    transfer_id: str
    """Unique per transfer; also a good update id, so that a resent request is deduplicated."""
    from_account: str
    to_account: str
    amount: int


@dataclass(frozen=True)
class TransferReceipt:
    transfer_id: str
    withdrawal: str
    deposit: str


@dataclass
class TellerReport:
    completed: list[str] = field(default_factory=list)
    """Transfers that moved their money."""
    refunded: list[str] = field(default_factory=list)
    """Transfers whose deposit failed and whose withdrawal was given back."""
    failed: list[str] = field(default_factory=list)
    """Transfers that failed before any money moved."""


@workflow.defn
class MoneyTransferWorkflow:
    @workflow.init
    def __init__(self, config: TellerConfig) -> None:
        self.limit = config.limit
        self.closed = False
        self.seen: set[str] = set()
        self.report = TellerReport()
        self.refunds: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self, config: TellerConfig) -> TellerReport:
        await workflow.wait_condition(lambda: self.closed and workflow.all_handlers_finished())
        await asyncio.gather(*self.refunds)
        return self.report

    @workflow.signal
    def close(self) -> None:
        """Take no more transfers; finish once those under way are done."""
        self.closed = True

    @workflow.update
    async def transfer(self, request: TransferRequest) -> TransferReceipt:
        self.seen.add(request.transfer_id)
        try:
            withdrawal = await self._move(Bank.withdraw, request.from_account, request, "withdraw")
        except ActivityError as err:
            self.report.failed.append(request.transfer_id)
            raise ApplicationError(
                f"transfer {request.transfer_id} failed: {err.cause}", type="TransferFailed"
            ) from err
        try:
            deposit = await self._move(Bank.deposit, request.to_account, request, "deposit")
        except ActivityError as err:
            # Answer the caller now; give the money back afterwards.
            self.refunds.append(asyncio.create_task(self._refund(request)))
            raise ApplicationError(
                f"transfer {request.transfer_id} failed: {err.cause}; the {request.amount} "
                f"withdrawn from {request.from_account} will be refunded",
                type="TransferFailed",
            ) from err
        self.report.completed.append(request.transfer_id)
        return TransferReceipt(request.transfer_id, withdrawal, deposit)

    @transfer.validator
    def check_transfer(self, request: TransferRequest) -> None:
        if self.closed:
            raise ApplicationError("the teller is closed", type="TellerClosed")
        if request.amount <= 0:
            raise ApplicationError(f"amount {request.amount} is not positive", type="BadAmount")
        if request.amount > self.limit:
            raise ApplicationError(
                f"amount {request.amount} is over the limit of {self.limit}", type="OverLimit"
            )
        if request.transfer_id in self.seen:
            raise ApplicationError(
                f"transfer {request.transfer_id} was already requested", type="DuplicateTransfer"
            )

    async def _refund(self, request: TransferRequest) -> None:
        await self._move(Bank.refund, request.from_account, request, "refund")
        self.report.refunded.append(request.transfer_id)

    async def _move(
        self,
        step: Callable[[Bank, Movement], Awaitable[str]],
        account: str,
        request: TransferRequest,
        kind: str,
    ) -> str:
        movement = Movement(account, request.amount, f"{request.transfer_id}/{kind}")
        return await workflow.execute_activity_method(
            step, movement, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=BANK_RETRY
        )
