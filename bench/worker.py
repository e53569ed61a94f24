"""Bench worker process: polls one task queue until its stdin closes.

Started by run.py (and bench/memory.py); prints `ready` on stdout once the worker is running.
With --progress it then prints `progress FIRST_TASKS COMPLETED` (BenchMemoryWait runs, see
workloads.MEMORY_PROGRESS) every PROGRESS_INTERVAL_S.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from workloads import ACTIVITIES, MEMORY_PROGRESS, WORKFLOWS

PROGRESS_INTERVAL_S = 0.5


async def report_progress() -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        first, completed = MEMORY_PROGRESS["first_tasks"], MEMORY_PROGRESS["completed"]
        print(f"progress {first} {completed}", flush=True)


async def serve(address: str, namespace: str, task_queue: str, progress: bool = False) -> None:
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
        reporter = asyncio.create_task(report_progress()) if progress else None
        await asyncio.to_thread(sys.stdin.read)
        if reporter is not None:
            reporter.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument(
        "--progress", action="store_true", help="print BenchMemoryWait progress every 0.5 s"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.namespace, args.task_queue, args.progress))


if __name__ == "__main__":
    main()
