"""PostgreSQL restarted twice under a 500-workflow run on two Aion processes.

The test's own PostgreSQL cluster (never the shared one) goes down twice while workflows run: a
quick `pg_ctl restart`, then a stop held longer than a membership lease before the start. While
it is down, clients get UNAVAILABLE and nothing else; once it is back the processes recover by
themselves (pools reconnect, task processing goes on) and no shard changes hands; every workflow
completes exactly once and every signal acknowledged is in its workflow.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from aion.cluster.membership import LEASE_S
from tests.reliability.faults import (
    PrivatePostgres,
    Probe,
    errors_logged,
    log,
    private_postgres,
    shard_owners,
    two_processes,
    until_ok,
    wait_for,
)
from tests.reliability.workload import Short, Sink, assert_completed_once, double
from tests.servers import AionProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(240)]

WORKFLOWS = 500
NUM_SHARDS = 8
# The run is restarted under: after this many workflows completed, the database goes down.
OUTAGES_AT = (150, 330)


@pytest.fixture
async def postgres() -> AsyncIterator[PrivatePostgres]:
    cluster = await asyncio.to_thread(private_postgres)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.remove)


@pytest.fixture
async def nodes(postgres: PrivatePostgres, tmp_path: Path) -> AsyncIterator[list[AionProcess]]:
    async with two_processes(postgres.dsn, tmp_path, NUM_SHARDS) as started:
        yield started


async def test_postgres_restarted_twice_under_load_loses_nothing(
    postgres: PrivatePostgres, nodes: list[AionProcess]
) -> None:
    a, b = nodes
    on_a = await Client.connect(a.address)
    on_b = await Client.connect(b.address)
    task_queue = f"pg-outage-{uuid.uuid4()}"
    probes: list[Probe] = []
    sinks: list[WorkflowHandle[Sink, list[int]]] = []
    for client in (on_a, on_b):
        sink = await client.start_workflow(
            Sink.run, id=f"sink-{uuid.uuid4()}", task_queue=task_queue
        )
        sinks.append(sink)
        probes.append(Probe(client, sink.id, "number"))
    workers = [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[Short, Sink],
            activities=[double],
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        for client in (on_a, on_b)
    ]
    ids = [f"short-{i}-{uuid.uuid4()}" for i in range(WORKFLOWS)]
    completed = 0
    sdk_errors: Counter[str] = Counter()  # errors the SDK gave up on (it retried them first)
    outages: list[dict[str, Any]] = []

    async def run_one(i: int) -> int:
        nonlocal completed
        client = (on_a, on_b)[i % 2]
        handle = await until_ok(
            lambda: client.start_workflow(
                Short.run,
                i,
                id=ids[i],
                task_queue=task_queue,
                # A start the SDK gave up retrying may have been applied: start it again
                # or get that run.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            ),
            sdk_errors,
        )
        result = await until_ok(handle.result, sdk_errors)
        completed += 1
        return result

    async def restart(after: int) -> None:
        """A quick restart (`pg_ctl restart -m fast`): open connections are cut."""
        await wait_for(lambda: completed >= after, f"{after} workflows completed", 120)
        down_at = time.monotonic()
        await asyncio.to_thread(postgres.restart)
        await record(after, "restart", down_at, time.monotonic())

    async def long_outage(after: int) -> None:
        """Stopped for longer than a membership lease, then started again."""
        await wait_for(lambda: completed >= after, f"{after} workflows completed", 120)
        down_at = time.monotonic()
        await asyncio.to_thread(postgres.stop)
        await wait_for(
            lambda: all(
                (first := p.first_failure(down_at)) is not None
                and time.monotonic() - first > LEASE_S + 1
                for p in probes
            ),
            "both processes to refuse writes for longer than a lease",
        )
        await asyncio.to_thread(postgres.start)
        await record(after, "stop, start", down_at, time.monotonic())

    async def record(after: int, how: str, down_at: float, up_at: float) -> None:
        await wait_for(
            lambda: all(p.first_ok(up_at) for p in probes),
            "both processes to acknowledge a write again",
        )
        refused = [p for p in probes if p.first_failure(down_at) is not None]
        outages.append(
            {
                "after": after,
                "how": how,
                "down": up_at - down_at,
                "refused": sum(p.failures(down_at) for p in probes),
                "seen": max((p.outage(down_at) for p in refused), default=0.0),
                "recovery": max(p.first_ok(up_at) or up_at for p in probes) - up_at,
                "slowest": max(p.slowest(down_at) for p in probes),
            }
        )

    for probe in probes:
        probe.start()
    runs = [asyncio.ensure_future(run_one(i)) for i in range(WORKFLOWS)]
    try:
        async with workers[0], workers[1]:
            await wait_for(lambda: completed >= OUTAGES_AT[0], "the run to get going", 120)
            leases = await shard_owners(postgres.dsn)
            await restart(OUTAGES_AT[0])
            await long_outage(OUTAGES_AT[1])
            results = await asyncio.gather(*runs)
            for probe in probes:
                await probe.stop()
            for sink in sinks:
                await sink.signal(Sink.finish)
            received = [await sink.result() for sink in sinks]
    except BaseException:
        failed = [r.exception() for r in runs if r.done() and not r.cancelled() and r.exception()]
        log(
            f"failed after {completed} workflows completed; outages: {outages}; "
            f"SDK calls given up on: {dict(sdk_errors)}; {len(failed)} runs failed, "
            f"e.g. {failed[:3]}"
        )
        raise
    finally:
        for probe in probes:
            await probe.stop()
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    assert results == [2 * i for i in range(WORKFLOWS)]
    statuses = sum((p.statuses for p in probes), Counter[str]())
    for o in outages:
        log(
            f"{o['how']} after {o['after']} workflows completed: database down {o['down']:.2f} s, "
            f"{o['refused']} probe writes refused, clients saw writes refused for at most "
            f"{o['seen']:.2f} s; both processes acknowledged writes again {o['recovery']:.2f} s "
            f"after the database was back; slowest answer {o['slowest']:.2f} s"
        )
    log(f"probe answers: {dict(statuses)}; SDK calls given up on: {dict(sdk_errors)}")
    assert set(sdk_errors) <= {"UNAVAILABLE"}, sdk_errors
    assert set(statuses) <= {"OK", "UNAVAILABLE"}, statuses
    assert statuses["UNAVAILABLE"] > 0, "the outages were seen"
    for probe, numbers in zip(probes, received, strict=True):
        assert len(numbers) == len(set(numbers)), "no signal applied twice"
        missing = set(probe.acknowledged) - set(numbers)
        assert not missing, f"acknowledged signals lost: {sorted(missing)[:20]}"
    for node in nodes:
        assert node.proc is not None and node.proc.poll() is None, "the process is alive"
        assert not errors_logged(node), errors_logged(node)[:5]
    assert await shard_owners(postgres.dsn) == leases, "no shard changed hands"
    count = await on_a.count_workflows(f"TaskQueue = '{task_queue}'")
    assert count.count == WORKFLOWS + len(sinks), "no workflow started twice"
    for workflow_id in ids:
        await assert_completed_once(on_a, workflow_id)
