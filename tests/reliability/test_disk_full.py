"""SQLite on a disk that fills up under a running workload.

The server's database file is on a small tmpfs made by the test; a ballast file fills it while
workflows run. Writes then fail cleanly (UNAVAILABLE, never INTERNAL or UNKNOWN), reads go on,
the process neither dies nor wedges, and once the ballast is removed the run finishes; the
database passes `PRAGMA integrity_check`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.reliability.faults import Probe, errors_logged, fill, log, small_filesystem, wait_for
from tests.reliability.workload import Chain, Sink, assert_completed_once, double
from tests.servers import AionProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(180)]

WORKFLOWS = 20
STEPS = 30
DISK_MIB = 24
FULL_WRITES = 100  # probe writes refused before the disk is freed


@pytest.fixture
def disk() -> Iterator[Path]:
    with small_filesystem(DISK_MIB) as mountpoint:
        yield mountpoint


async def test_a_full_disk_fails_writes_cleanly_and_the_run_finishes_once_freed(
    disk: Path, tmp_path: Path
) -> None:
    db_file = disk / "aion.db"
    server = AionProcess(db_filename=str(db_file), extra_args=["--log-level", "info"])
    await asyncio.to_thread(server.start)
    try:
        client = await Client.connect(server.address)
        task_queue = f"disk-full-{uuid.uuid4()}"
        sink = await client.start_workflow(
            Sink.run, id=f"sink-{uuid.uuid4()}", task_queue=task_queue
        )
        # Large signals: the database must grow for each, so the disk fills up for it soon.
        probe = Probe(client, sink.id, "number", interval=0.05, padding=64 * 1024)
        ballast = disk / "ballast"
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[Chain, Sink],
            activities=[double],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            handles = [
                await client.start_workflow(
                    Chain.run,
                    args=[i, STEPS],
                    id=f"chain-{i}-{uuid.uuid4()}",
                    task_queue=task_queue,
                )
                for i in range(WORKFLOWS)
            ]
            probe.start()
            await wait_for(lambda: len(probe.acknowledged) >= 10, "signals acknowledged")
            running = await client.count_workflows("ExecutionStatus = 'Running'")
            assert running.count > 1, "workflows are in flight when the disk fills"
            filled_at = time.monotonic()
            written = await asyncio.to_thread(fill, ballast)
            log(f"ballast of {written / 2**20:.1f} MiB filled the {DISK_MIB} MiB disk")
            await wait_for(
                lambda: probe.failures(filled_at) > 0, "a write to fail on the full disk", 60
            )
            failed_at = probe.first_failure(filled_at)
            assert failed_at is not None
            # Held full a while (the workers' retries run out meanwhile): the server keeps
            # answering, reads succeed, writes fail cleanly.
            await wait_for(lambda: probe.failures(failed_at) >= FULL_WRITES, "more refusals")
            listed = await client.count_workflows(f"TaskQueue = '{task_queue}'")
            assert listed.count == WORKFLOWS + 1, "reads go on"
            assert server.proc is not None and server.proc.poll() is None, "the server lives"
            ballast.unlink()
            freed_at = time.monotonic()
            await wait_for(
                lambda: probe.first_ok(freed_at) is not None, "a write to succeed once freed"
            )
            recovered = (probe.first_ok(freed_at) or freed_at) - freed_at
            results = await asyncio.gather(*(h.result() for h in handles))
            finished = time.monotonic() - freed_at
            await probe.stop()
            await sink.signal(Sink.finish)
            numbers = await sink.result()
        log(
            f"disk full: first failed write {failed_at - filled_at:.2f} s after the ballast, "
            f"{probe.failures(filled_at)} writes refused; after freeing, a write succeeded in "
            f"{recovered:.2f} s and every workflow finished in {finished:.2f} s"
        )
        log(f"probe answers: {dict(probe.statuses)}, slowest {probe.slowest(filled_at):.2f} s")
        assert results == [i * 2**STEPS for i in range(WORKFLOWS)]
        assert set(probe.statuses) <= {"OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED"}, probe.statuses
        assert not set(probe.acknowledged) - set(numbers), "acknowledged signals are kept"
        assert len(numbers) == len(set(numbers))
        for handle in handles:
            await assert_completed_once(client, handle.id)
        assert not errors_logged(server), errors_logged(server)[:5]
        assert server.proc is not None and server.proc.poll() is None
    finally:
        await asyncio.to_thread(server.stop)
        (tmp_path / "aion.log").write_text("".join(server.output))
    db = sqlite3.connect(db_file)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
