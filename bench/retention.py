"""Database size under a steady workload with a short retention (issue 16): does it stop growing?

    .venv/bin/python bench/retention.py --minutes 30 --retention 1m --rate 20

Starts Aion on a fresh SQLite file with `aion.workflowRetention` set, one bench worker, and
starts `--rate` one-activity workflows a second (each awaited) for `--minutes`; every
`--sample` seconds records the database's size (the file plus its WAL), the closed runs still
listed, and the workflows completed so far. Prints a markdown table. With deletion working, the
size levels off once runs start being deleted (retention plus the 10-minute timer window at
most): SQLite reuses the pages of deleted rows, so the file stops growing rather than shrinks.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from run import start_worker, stop_worker
from side_by_side import ROOT, free_port, machine, stop, wait_ready
from temporalio.client import Client
from workloads import OneActivityWorkflow


def db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


async def steady(
    client: Client, task_queue: str, rate: float, until: float, done: list[int]
) -> None:
    """Start `rate` workflows a second until `until` (monotonic), each awaited in its own task."""
    running: set[asyncio.Task[None]] = set()

    async def one() -> None:
        handle = await client.start_workflow(
            OneActivityWorkflow.run, id=f"retention-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.result()
        done[0] += 1

    interval = 1.0 / rate
    next_start = time.monotonic()
    while next_start < until:
        task = asyncio.get_running_loop().create_task(one())
        running.add(task)
        task.add_done_callback(running.discard)
        next_start += interval
        await asyncio.sleep(max(0.0, next_start - time.monotonic()))
    await asyncio.gather(*running)


async def bench(args: argparse.Namespace, db: Path) -> list[str]:
    port = free_port()
    argv = [sys.executable, "-m", "aion", "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
    argv += ["--port", str(port), "--db-filename", str(db)]
    argv += ["--dynamic-config-value", f'aion.workflowRetention="{args.retention}"']
    server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rows = [
        "| minute | DB + WAL MiB | closed runs listed | workflows completed |",
        "|---:|---:|---:|---:|",
    ]
    try:
        address = f"127.0.0.1:{port}"
        await wait_ready(server, address)
        client = await Client.connect(address)
        task_queue = f"retention-{uuid.uuid4().hex[:8]}"
        worker = await start_worker(address, "default", task_queue)
        try:
            started = time.monotonic()
            done = [0]
            load = asyncio.get_running_loop().create_task(
                steady(client, task_queue, args.rate, started + args.minutes * 60, done)
            )
            while not load.done():
                await asyncio.wait({load}, timeout=args.sample)
                closed = (await client.count_workflows("ExecutionStatus != 'Running'")).count
                minute = (time.monotonic() - started) / 60
                size = db_size(db) / 2**20
                rows.append(f"| {minute:.1f} | {size:.1f} | {closed} | {done[0]} |")
                print(rows[-1], file=sys.stderr)
            await load
        finally:
            await stop_worker(worker)
    finally:
        stop(server)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--retention", default="1m", help="a Go duration")
    parser.add_argument("--rate", type=float, default=20.0, help="workflows started a second")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aion-retention-") as tmp:
        rows = asyncio.run(bench(args, Path(tmp, "aion.db")))
    text = (
        f"Retention bench: {args.minutes} min at {args.rate} one-activity workflows/s, "
        f"retention {args.retention}; machine: {machine()}.\n\n" + "\n".join(rows) + "\n"
    )
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
