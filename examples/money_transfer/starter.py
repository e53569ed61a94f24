"""Run the money transfer demo: a worker and three transfers against a Temporal-API server.

python -m examples.money_transfer.starter --address 127.0.0.1:7233
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.worker import Worker

from examples.money_transfer.activities import Bank
from examples.money_transfer.workflows import (
    MoneyTransferWorkflow,
    TellerConfig,
    TransferRequest,
)

DEMO_BALANCES = {"alice": 1000, "bob": 200, "carol": 0}
DEMO_FROZEN = {"carol"}
DEMO_LIMIT = 500


def new_worker(client: Client, task_queue: str, bank: Bank) -> Worker:
    """A worker for the teller workflow and `bank`'s activities."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[MoneyTransferWorkflow],
        activities=bank.activities(),
    )


async def run_demo(client: Client, task_queue: str) -> None:
    bank = Bank(DEMO_BALANCES, DEMO_FROZEN)
    print(f"balances: {bank.balances}; frozen: {sorted(bank.frozen)}; limit: {DEMO_LIMIT}")
    async with new_worker(client, task_queue, bank):
        handle = await client.start_workflow(
            MoneyTransferWorkflow.run,
            TellerConfig(limit=DEMO_LIMIT),
            id=f"money-transfer-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        print(f"started teller workflow {handle.id}")
        requests = [
            TransferRequest("t-1", "alice", "bob", 100),  # goes through
            TransferRequest("t-2", "alice", "bob", 5000),  # over the limit: rejected
            TransferRequest("t-3", "alice", "carol", 300),  # carol is frozen: refunded
        ]
        for request in requests:
            line = f"{request.transfer_id}: {request.amount} {request.from_account} -> "
            line += request.to_account
            try:
                receipt = await handle.execute_update(
                    MoneyTransferWorkflow.transfer, request, id=request.transfer_id
                )
            except WorkflowUpdateFailedError as err:
                print(f"{line}: FAILED: {err.cause}")
            else:
                print(f"{line}: done ({receipt.withdrawal}, {receipt.deposit})")
        await handle.signal(MoneyTransferWorkflow.close)
        report = await handle.result()
    print(f"report: {report}")
    print(f"balances: {bank.balances}")
    print("journal:\n  " + "\n  ".join(bank.journal))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:7233", help="server host:port")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", default="money-transfer")
    args = parser.parse_args()
    client = await Client.connect(args.address, namespace=args.namespace)
    await run_demo(client, args.task_queue)


if __name__ == "__main__":
    asyncio.run(main())
