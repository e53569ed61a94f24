"""Several `aion server start` processes on one PostgreSQL database.

The processes split the history shards between them; a call reaching the wrong process is
forwarded, a poller anywhere gets tasks from every shard, and when a process dies (or stops
answering) its shards move to the survivors, whose leases fence the old owner out.
Skipped when no PostgreSQL is reachable (see tests/test_store.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import TLSConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from aion.cluster.membership import LEASE_S
from aion.cluster.peers import INVOKE_METHOD, SECRET
from aion.persistence import ShardOwnershipLostError
from aion.persistence.postgres import SCHEMA_VERSION, PostgresStore, migrate
from tests.auth_support import Pki
from tests.servers import AionProcess
from tests.test_store import _tx, pg_database

pytestmark = pytest.mark.timeout(240)

NUM_SHARDS = 16
TASK_QUEUE = "cluster"


@activity.defn
async def double(x: int) -> int:
    return 2 * x


@workflow.defn
class Child:
    @workflow.run
    async def run(self, x: int) -> int:
        return x + 1


@workflow.defn
class Parent:
    """An activity, a child (likely on another shard), then a signal it waits for."""

    def __init__(self) -> None:
        self.bonus = 0

    @workflow.signal
    def add(self, bonus: int) -> None:
        self.bonus = bonus

    @workflow.query
    def current_bonus(self) -> int:
        return self.bonus

    @workflow.run
    async def run(self, x: int) -> int:
        y = await workflow.execute_activity(double, x, start_to_close_timeout=timedelta(seconds=5))
        z = await workflow.execute_child_workflow(
            Child.run, y, id=f"{workflow.info().workflow_id}-c"
        )
        await workflow.wait_condition(lambda: self.bonus > 0)
        return z + self.bonus


@workflow.defn
class Steps:
    """Long enough to be in flight when a process dies: activity, timer, activity."""

    @workflow.run
    async def run(self, x: int) -> int:
        options = {"start_to_close_timeout": timedelta(seconds=5)}
        y = await workflow.execute_activity(double, x, **options)  # type: ignore[arg-type]
        await workflow.sleep(1)
        return await workflow.execute_activity(double, y, **options)  # type: ignore[arg-type]


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    dsn, drop = await pg_database()
    yield dsn
    await drop()


@pytest.fixture
async def start_node(dsn: str) -> AsyncIterator[Callable[..., AionProcess]]:
    """Starts `aion server start` processes on one database (with the extra arguments given);
    stops them all at the end."""
    nodes: list[AionProcess] = []

    def start(*extra_args: str) -> AionProcess:
        node = AionProcess(
            dsn=dsn,
            command="start",
            extra_args=["--num-shards", str(NUM_SHARDS), "--log-level", "info", *extra_args],
        )
        node.start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        if node.proc and node.proc.poll() is None:
            os.kill(node.proc.pid, signal.SIGCONT)  # in case a test left it stopped
        await asyncio.to_thread(node.stop)


def _worker(client: Client) -> Worker:
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[Parent, Child, Steps],
        activities=[double],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def _owners(dsn: str) -> dict[int, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["shard_id"]: r["owner"] for r in await conn.fetch("SELECT * FROM shards")}
    finally:
        await conn.close()


async def _wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():  # type: ignore[misc]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_processes_split_shards_and_serve_each_other(
    dsn: str, start_node: Callable[..., AionProcess]
) -> None:
    a, b = start_node(), start_node()

    await _wait_for_split(dsn)
    await _run_parents(await Client.connect(a.address), await Client.connect(b.address), 16)
    owners = await _owners(dsn)
    assert len(owners) == NUM_SHARDS and len(set(owners.values())) == 2
    async with grpc.aio.insecure_channel(a.address) as outside:
        await _assert_peer_calls_refused(outside)


async def _wait_for_split(dsn: str) -> None:
    async def split() -> bool:
        return len(set((await _owners(dsn)).values())) == 2

    await _wait_for(split, "both processes to own shards")


async def _run_parents(on_a: Client, on_b: Client, count: int) -> None:
    """Clients talk only to A, the worker only to B: every start, signal and query whose shard
    B owns is forwarded, every task of A's shards reaches B's pollers, and children start on
    whichever shard their id falls in."""
    async with _worker(on_b):
        handles = [
            await on_a.start_workflow(
                Parent.run, i, id=f"split-{i}-{uuid.uuid4()}", task_queue=TASK_QUEUE
            )
            for i in range(count)
        ]
        for handle in handles:
            await _wait_for(
                lambda h=handle: _queryable(h), f"{handle.id} to answer a query through A"
            )
            await handle.signal(Parent.add, 5)
        assert [await h.result() for h in handles] == [2 * i + 1 + 5 for i in range(count)]


async def _assert_peer_calls_refused(channel: grpc.aio.Channel) -> None:
    """A caller that is not a process of the cluster cannot run its operations."""
    invoke = channel.unary_unary(INVOKE_METHOD)
    request = json.dumps({"op": "anything", "args": {}}).encode()
    for metadata in ((), ((SECRET, "guessed"),)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await invoke(request, metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_processes_call_each_other_over_mutual_tls(
    dsn: str, start_node: Callable[..., AionProcess], tmp_path: Path
) -> None:
    """With TLS (client certificates required), the processes reach each other with their own
    certificates: forwarded calls and operations on the other's shards work."""
    pki = Pki.create(tmp_path)
    cert, key = pki.issue("localhost", server=True)
    tls = ["--tls-cert-file", cert, "--tls-key-file", key, "--tls-client-ca-file", pki.ca_path]
    a, b = start_node(*tls), start_node(*tls)
    await _wait_for_split(dsn)
    client_cert, client_key = pki.issue("app")
    config = TLSConfig(
        server_root_ca_cert=Path(pki.ca_path).read_bytes(),
        client_cert=Path(client_cert).read_bytes(),
        client_private_key=Path(client_key).read_bytes(),
        domain="localhost",
    )
    await _run_parents(
        await Client.connect(a.address, tls=config), await Client.connect(b.address, tls=config), 6
    )
    # An outside caller with a valid client certificate is still no process of the cluster.
    credentials = grpc.ssl_channel_credentials(
        Path(pki.ca_path).read_bytes(),
        Path(client_key).read_bytes(),
        Path(client_cert).read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    async with grpc.aio.secure_channel(a.address, credentials, options=options) as outside:
        await _assert_peer_calls_refused(outside)


async def _queryable(handle: WorkflowHandle) -> bool:
    try:
        return await handle.query(Parent.current_bonus) == 0
    except Exception:  # the first workflow task has not completed yet
        return False


async def test_all_workflows_complete_after_a_process_is_killed(
    dsn: str, start_node: Callable[..., AionProcess]
) -> None:
    a, b = start_node(), start_node()
    on_a = await Client.connect(a.address)
    on_b = await Client.connect(b.address)
    async with _worker(on_b):
        handles = [
            await (on_a if i % 2 else on_b).start_workflow(
                Steps.run, i, id=f"failover-{i}-{uuid.uuid4()}", task_queue=TASK_QUEUE
            )
            for i in range(300)
        ]
        running = await on_b.count_workflows("ExecutionStatus = 'Running'")
        a.kill()  # SIGKILL, with workflows in flight on both processes' shards
        assert running.count > 0
        results = await asyncio.gather(
            *(on_b.get_workflow_handle(h.id, run_id=h.result_run_id).result() for h in handles)
        )
    assert results == [4 * i for i in range(300)]
    owners = await _owners(dsn)
    assert len(set(owners.values())) == 1, "the survivor owns every shard"


async def test_a_paused_owner_is_fenced_out_and_nothing_is_lost(
    dsn: str, start_node: Callable[..., AionProcess]
) -> None:
    a, b = start_node(), start_node()
    on_b = await Client.connect(b.address)
    async with _worker(on_b):
        handles = [
            await on_b.start_workflow(
                Steps.run, i, id=f"zombie-{i}-{uuid.uuid4()}", task_queue=TASK_QUEUE
            )
            for i in range(40)
        ]
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)  # A keeps its leases in memory, but stops renewing
        stopped_at = time.monotonic()

        async def b_owns_all() -> bool:
            return len(set((await _owners(dsn)).values())) == 1

        await _wait_for(b_owns_all, "B to take A's shards", timeout=LEASE_S + 20)
        assert time.monotonic() - stopped_at >= LEASE_S - 1
        os.kill(a.proc.pid, signal.SIGCONT)  # A wakes up believing it still owns its shards
        try:
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
        except TimeoutError:
            print("A:", "".join(a.output[-60:]))
            print("B:", "".join(b.output[-60:]))
            raise
    assert results == [4 * i for i in range(40)]
    for handle in handles:
        await _assert_well_formed(on_b, handle.id)


async def _assert_well_formed(client: Client, workflow_id: str) -> None:
    """One history, ids 1..n in order, one start and one completion: no double writes."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    ids = [e.event_id for e in history.events]
    assert ids == list(range(1, len(ids) + 1))
    types = [e.event_type for e in history.events]
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


async def test_no_commit_succeeds_under_a_superseded_lease(dsn: str) -> None:
    """Two stores (two processes' pools) take one shard's lease in turns while both keep
    committing: once a lease is taken, nothing the previous owner sends succeeds."""
    stores = [PostgresStore(dsn), PostgresStore(dsn)]
    for store in stores:
        await store.open()
    try:
        ranges = [0, 0]
        ranges[0] = await stores[0].acquire_shard(0, "one")
        versions = {"wf": 0}
        leases: list[tuple[int, float]] = []  # (range id, when it was granted)
        successes: list[tuple[int, float]] = []  # (range id, when the commit was sent)

        flipped = False

        async def writer(i: int) -> None:
            while not flipped:
                range_id, sent = ranges[i], time.monotonic()
                version = versions["wf"]
                tx = _tx(0, range_id, "wf", db_version=version + 1)
                tx.expected_db_version = version or None
                try:
                    await stores[i].commit(tx)
                except ShardOwnershipLostError:
                    continue
                except Exception:  # the other writer moved the version first
                    continue
                versions["wf"] = version + 1
                successes.append((range_id, sent))
                await asyncio.sleep(0)

        async def flipper() -> None:
            """Ten turns; each waits for a commit under its new lease before the next."""
            nonlocal flipped
            for turn in range(10):
                i = (turn + 1) % 2
                ranges[i] = await stores[i].acquire_shard(0, f"owner-{i}")
                leases.append((ranges[i], time.monotonic()))
                deadline = time.monotonic() + 30
                while not any(r == ranges[i] for r, _ in successes):
                    assert time.monotonic() < deadline, f"no commit under lease {ranges[i]}"
                    await asyncio.sleep(0.001)
            flipped = True

        await asyncio.gather(writer(0), writer(1), flipper())
        assert successes, "some commits went through"
        assert len({range_id for range_id, _ in successes}) >= 10, "each new lease's owner wrote"
        for range_id, sent in successes:
            for later, granted in leases:
                assert later <= range_id or sent < granted, f"{range_id} wrote after {later}"
    finally:
        for store in stores:
            await store.close()


async def test_a_process_with_another_shard_count_is_refused(
    dsn: str, start_node: Callable[..., AionProcess]
) -> None:
    first = start_node()
    odd = AionProcess(
        dsn=dsn, command="start", namespaces=["not-written"], extra_args=["--num-shards", "8"]
    )
    with pytest.raises(RuntimeError) as refused:
        await asyncio.to_thread(odd.start)
    assert odd.proc is not None and odd.proc.wait() == 1
    assert (
        "aion: this server is configured with 8 history shards but the database was created "
        f"with {NUM_SHARDS}" in str(refused.value)
    )
    conn = await asyncpg.connect(dsn)
    try:  # refused before writing anything
        names = [r["name"] for r in await conn.fetch("SELECT name FROM namespaces")]
    finally:
        await conn.close()
    assert "not-written" not in names
    client = await Client.connect(first.address)
    assert (
        await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    ).history_shard_count == NUM_SHARDS


async def test_start_refuses_an_older_schema_and_asks_for_a_migration(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("DELETE FROM schema_version WHERE version = $1", SCHEMA_VERSION)
    finally:
        await conn.close()
    node = AionProcess(dsn=dsn, command="start")
    with pytest.raises(RuntimeError) as refused:
        await asyncio.to_thread(node.start)
    assert node.proc is not None and node.proc.wait() == 1
    assert (
        f"aion: database schema version {SCHEMA_VERSION - 1} is older than this Aion needs "
        f"({SCHEMA_VERSION}); stop the servers using it and run `aion db migrate --dsn ...` first"
        in str(refused.value)
    )
