"""Bench worker process: polls one task queue until its stdin closes.

Started by run.py; prints `ready` on stdout once the worker is running.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from workloads import ACTIVITIES, WORKFLOWS


async def serve(address: str, namespace: str, task_queue: str) -> None:
    """Run the worker until the parent closes our stdin (or exits)."""
    client = await Client.connect(address, namespace=namespace)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        # The bench workflows are trivially deterministic; skipping the sandbox keeps the
        # worker's CPU cost (which competes with the server on a small machine) low.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.namespace, args.task_queue))


if __name__ == "__main__":
    main()
