"""The keynote's Worker Versioning demo against a running server.

1. A v1 worker runs; v1 becomes the deployment's current version; transfer A starts on v1 and
   waits for its approval.
2. A v2 worker (one more activity in the workflow) starts; v2 becomes current.
3. Transfer B starts and runs on v2. Transfer A, pinned to v1, is approved and finishes on v1:
   nobody sees a non-determinism error. v1, with no pinned workflow left, drains.

    python -m examples.versioning.demo [--address 127.0.0.1:7233]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkerDeploymentConfig

from examples.versioning.activities import Bank
from examples.versioning.workflows import TransferV1, TransferV2

TASK_QUEUE = "transfers"


@asynccontextmanager
async def worker(
    client: Client, deployment: str, build_id: str, bank: Bank
) -> AsyncIterator[Worker]:
    workflow = TransferV1 if build_id == "v1" else TransferV2
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[workflow],
        activities=[bank.withdraw, bank.deposit, bank.fetch_amount],
        deployment_config=WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment, build_id), use_worker_versioning=True
        ),
    ) as running:
        await _until_registered(client, deployment, build_id)
        yield running


async def _until_registered(client: Client, deployment: str, build_id: str) -> None:
    while True:
        try:
            described = await client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(
                    namespace=client.namespace, deployment_name=deployment
                )
            )
            summaries = described.worker_deployment_info.version_summaries
            if any(s.deployment_version.build_id == build_id for s in summaries):
                return
        except RPCError:
            pass  # not there until its first poller arrives
        await asyncio.sleep(0.1)


async def make_current(client: Client, deployment: str, build_id: str) -> None:
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace, deployment_name=deployment, build_id=build_id
        )
    )


async def run(client: Client, deployment: str = "bank") -> dict[str, str]:
    bank = Bank()
    suffix = uuid.uuid4().hex[:8]
    async with worker(client, deployment, "v1", bank):
        await make_current(client, deployment, "v1")
        a = await client.start_workflow(
            TransferV1.run, id=f"transfer-a-{suffix}", task_queue=TASK_QUEUE
        )
        async with worker(client, deployment, "v2", bank):
            await make_current(client, deployment, "v2")
            bank.quotes[f"transfer-b-{suffix}"] = 25
            b = await client.start_workflow(
                TransferV2.run, id=f"transfer-b-{suffix}", task_queue=TASK_QUEUE
            )
            await b.signal(TransferV2.approve)
            await a.signal(TransferV1.approve)
            return {"A (started on v1)": await a.result(), "B (started on v2)": await b.result()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1:7233")
    args = parser.parse_args()
    results = await run(await Client.connect(args.address))
    for transfer, result in results.items():
        print(f"{transfer}: {result}")


if __name__ == "__main__":
    asyncio.run(main())
