"""Fencing: a frozen process of a two-process PostgreSQL cluster.

Process A is frozen (SIGSTOP) with workflows in flight on its shards. Once its lease runs out,
B takes A's shards, bumping their range ids. Then A is resumed (SIGCONT) still believing it owns
them, with client calls waiting in its socket: every write it makes under its old range id is
refused by the fence, and it drops the shards. Nothing is lost or written twice:
the workflows started before and during the freeze complete exactly once, and every signal
acknowledged is in its workflow exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payloads, WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import default as default_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from aion.cluster.membership import LEASE_S
from tests.helpers import pg_database
from tests.reliability.faults import (
    errors_logged,
    log,
    shard_owners,
    two_processes,
    until_ok,
    wait_for,
)
from tests.reliability.workload import assert_completed_once
from tests.servers import AionProcess

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(180)]

NUM_SHARDS = 8
BEFORE = 60  # workflows started before the freeze
DURING = 30  # workflows started while A is frozen


@activity.defn
async def add_one(x: int) -> int:
    return x + 1


@workflow.defn
class Fenced:
    """An activity, a timer, then the signals it waits for."""

    def __init__(self) -> None:
        self.received: list[int] = []

    @workflow.signal
    def add(self, value: int) -> None:
        self.received.append(value)

    @workflow.run
    async def run(self, x: int, signals: int) -> list[int]:
        x = await workflow.execute_activity(add_one, x, start_to_close_timeout=timedelta(seconds=5))
        await workflow.sleep(2)
        await workflow.wait_condition(lambda: len(self.received) >= signals)
        return [x, *self.received]


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    dsn, drop = await pg_database()
    yield dsn
    await drop()


@pytest.fixture
async def nodes(dsn: str, tmp_path: Path) -> AsyncIterator[list[AionProcess]]:
    async with two_processes(dsn, tmp_path, NUM_SHARDS) as started:
        yield started


def _shard_events(node: AionProcess, since: int, what: str) -> set[int]:
    """Shards named by log lines `what` (e.g. "released shard") the node wrote since line
    `since`."""
    found: set[int] = set()
    for line in node.output[since:]:
        if what in line:
            found.add(int(line.rsplit(what, 1)[1].split()[0]))
    return found


async def _signal(client: Client, workflow_id: str, value: int, seen: Counter[str]) -> None:
    """One signal without the SDK's retries (it waits in a frozen process's socket), sent again
    with its request id while answered UNAVAILABLE: applied once."""
    request = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        signal_name="add",
        input=Payloads(payloads=default_converter().payload_converter.to_payloads([value])),
        identity="fencing-test",
        request_id=str(uuid.uuid4()),
    )
    await until_ok(
        lambda: client.workflow_service.signal_workflow_execution(
            request, retry=False, timeout=timedelta(seconds=60)
        ),
        seen,
    )


async def test_a_frozen_process_is_fenced_out_and_nothing_is_lost(
    dsn: str, nodes: list[AionProcess]
) -> None:
    a, b = nodes
    assert a.proc is not None
    await wait_for(lambda: _owned_by(dsn, 2), "both processes to own shards")
    on_a = await Client.connect(a.address)
    on_b = await Client.connect(b.address)
    task_queue = f"fencing-{uuid.uuid4()}"
    handles: list[WorkflowHandle[Fenced, list[int]]] = []
    refusals: Counter[str] = Counter()
    async with Worker(
        on_b,
        task_queue=task_queue,
        workflows=[Fenced],
        activities=[add_one],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        for i in range(BEFORE):
            handles.append(
                await on_b.start_workflow(
                    Fenced.run, args=[i, 1], id=f"before-{i}-{uuid.uuid4()}", task_queue=task_queue
                )
            )
        before = await shard_owners(dsn)
        os.kill(a.proc.pid, signal.SIGSTOP)  # A keeps its leases in memory, but stops renewing
        # Signals to A while it is frozen: they wait in its socket and reach it on resume.
        to_a = [
            asyncio.ensure_future(_signal(on_a, h.id, 1000 + i, refusals))
            for i, h in enumerate(handles)
        ]
        during = [
            asyncio.ensure_future(
                on_b.start_workflow(
                    Fenced.run, args=[i, 0], id=f"during-{i}-{uuid.uuid4()}", task_queue=task_queue
                )
            )
            for i in range(DURING)
        ]
        taken = await wait_for(lambda: _owned_by(dsn, 1), "B to take A's shards", LEASE_S + 30)
        after = await shard_owners(dsn)
        a_shards = {s for s, (host, _) in before.items() if host != after[s][0]}
        assert a_shards, "A owned shards"
        assert all(after[s][1] > before[s][1] for s in a_shards), "the takeover bumped range ids"
        resumed_from = len(a.output)
        # Hold the membership table while A wakes up: its heartbeat, after which it would look
        # at the range ids and let its shards go without writing, waits; its writes do not.
        # So they reach the database under the old range ids, and the fence must refuse them.
        blocker = await asyncpg.connect(dsn)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE hosts IN EXCLUSIVE MODE")
                os.kill(a.proc.pid, signal.SIGCONT)  # A believes it still owns its shards
                refused = await wait_for(
                    lambda: bool(_shard_events(a, resumed_from, "lost ownership of shard ")),
                    "a write of A under an old range id to be refused",
                )
        finally:
            await blocker.close()
        await wait_for(
            lambda: _shard_events(a, resumed_from, "released shard ") >= a_shards,
            "A to drop every shard it lost",
        )
        fenced = _shard_events(a, resumed_from, "lost ownership of shard ")
        await asyncio.gather(*to_a)  # each applied by the shard's owner of the moment
        handles += await asyncio.gather(*during)
        results = await asyncio.gather(*(h.result() for h in handles))
    log(
        f"fencing: B took A's {len(a_shards)} shards {taken:.2f} s after A froze "
        f"(lease {LEASE_S:.0f} s); resumed, A had its first write refused by the fence after "
        f"{refused:.2f} s (on shards {sorted(fenced)}) and dropped them; signals to A answered "
        f"{dict(refusals)} before OK"
    )
    assert fenced, "A's writes under its old range ids were refused"
    assert fenced <= a_shards
    assert results[:BEFORE] == [[i + 1, 1000 + i] for i in range(BEFORE)]
    assert results[BEFORE:] == [[i + 1] for i in range(DURING)]
    for handle in handles:
        await assert_completed_once(on_b, handle.id)
    await wait_for(lambda: _owned_by(dsn, 2), "A to take its share back")
    for node in nodes:
        assert not errors_logged(node), errors_logged(node)[:5]


async def _owned_by(dsn: str, processes: int) -> bool:
    return len({host for host, _ in (await shard_owners(dsn)).values()}) == processes
