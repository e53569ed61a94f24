"""Two builds of one transfer workflow, as two deployments of the code would define it.

v1 moves a fixed $10. v2 first asks the bank for the amount (one more activity): replaying a
v1 history with v2 code would fail with a non-determinism error, which is why transfers started
on v1 are PINNED to v1 and finish there, while new transfers go to v2.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from examples.versioning.activities import Bank

TIMEOUT = timedelta(seconds=10)


class _Transfer:
    def __init__(self) -> None:
        self.approved = False

    @workflow.signal
    def approve(self) -> None:
        self.approved = True

    async def move(self, amount: int) -> str:
        await workflow.execute_activity_method(
            Bank.withdraw, args=["alice", amount], start_to_close_timeout=TIMEOUT
        )
        await workflow.wait_condition(lambda: self.approved)
        await workflow.execute_activity_method(
            Bank.deposit, args=["bob", amount], start_to_close_timeout=TIMEOUT
        )
        return f"moved ${amount}"


@workflow.defn(name="Transfer", versioning_behavior=VersioningBehavior.PINNED)
class TransferV1(_Transfer):
    @workflow.run
    async def run(self) -> str:
        return await self.move(10)


@workflow.defn(name="Transfer", versioning_behavior=VersioningBehavior.PINNED)
class TransferV2(_Transfer):
    @workflow.run
    async def run(self) -> str:
        amount = await workflow.execute_activity_method(
            Bank.fetch_amount, workflow.info().workflow_id, start_to_close_timeout=TIMEOUT
        )
        return await self.move(amount)
