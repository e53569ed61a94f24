"""History replication with several processes on one cluster (docs/global-namespaces.md):
cluster A is two `aion server start` processes sharing a PostgreSQL database, the shards split
between them, twice as many as B's; cluster B is one process. Both directions replicate event by event: A's
transitions, written by either process, reach B, and their tasks are deleted once B has applied
them, with `replication_tasks_lag` back to 0 on both of A's processes; B's transitions are
applied on A by the process owning each execution's shard, also across a failover to A."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client

from tests.helpers import pg_database, unique
from tests.metrics_scrape import scrape
from tests.reliability.faults import shard_owners
from tests.servers import AionProcess, free_port
from tests.test_global_namespaces import Cluster, Clusters, _cluster_args, _replicated, eventually
from tests.test_history_replication import (
    REPLICATED_S,
    Mixed,
    _histories_equal,
    _released_once,
    _start_mixed,
    _worker,
)

# A has more shards than B: a shard of B's holds executions of two of A's shards, which the
# two processes may own apart (with fewer or as many, a source shard's executions all fall in
# the local shard that pulls it).
NUM_SHARDS = 8


@dataclass
class TwoProcessClusters(Clusters):
    a_processes: list[AionProcess]
    a_metrics_ports: list[int]
    a_dsn: str


# The second process takes its shards within seconds alone; under a whole suite's load it has
# taken more than 30 s once.
SPLIT_S = 90.0


@pytest.fixture(scope="module")
async def clusters() -> AsyncIterator[TwoProcessClusters]:
    async with AsyncExitStack() as stack:
        a_dsn, drop_a = await pg_database()
        stack.push_async_callback(drop_a)
        b_dsn, drop_b = await pg_database()
        stack.push_async_callback(drop_b)
        ports = [free_port(), free_port()]
        a_processes = []
        for port in ports:
            process = AionProcess(
                dsn=a_dsn,
                command="start",
                extra_args=[
                    *("--num-shards", str(NUM_SHARDS), "--metrics-port", str(port)),
                    *_cluster_args("A", 1),
                ],
            )
            await asyncio.to_thread(process.start)
            stack.callback(process.stop)
            a_processes.append(process)
        b_process = AionProcess(dsn=b_dsn, extra_args=_cluster_args("B", 2))
        await asyncio.to_thread(b_process.start)
        stack.callback(b_process.stop)
        a = Cluster("A", a_processes[0], await Client.connect(a_processes[0].address))
        b = Cluster("B", b_process, await Client.connect(b_process.address))

        async def split() -> bool | None:
            owners = {owner for owner, _ in (await shard_owners(a_dsn)).values()}
            return True if len(owners) == 2 else None

        try:
            await eventually(split, SPLIT_S)
        except AssertionError:
            outputs = "".join(
                f"--- A{i}:\n" + "".join(p.output[-40:]) for i, p in enumerate(a_processes)
            )
            raise AssertionError(
                f"A's shards not split between its processes:\n{outputs}"
            ) from None
        await a.upsert(b)
        await b.upsert(a)
        yield TwoProcessClusters(a, b, a_processes, ports, a_dsn)


async def _register(clusters: TwoProcessClusters, active: str) -> str:
    """A global namespace of A and B, active in `active`, once B has it."""
    namespace = unique("global")
    await clusters.a.client.workflow_service.register_namespace(
        rr.RegisterNamespaceRequest(
            namespace=namespace,
            workflow_execution_retention_period=Duration(seconds=86400),
            clusters=[replication_pb.ClusterReplicationConfig(cluster_name=n) for n in "AB"],
            active_cluster_name=active,
            is_global_namespace=True,
        )
    )
    await _replicated(clusters.b, namespace, 1 if active == "A" else 2)
    return namespace


async def _run_mixed(client: Client, count: int) -> list[str]:
    """`count` mixed workflows run to completion on the cluster of `client`; their results."""
    task_queue = unique("mixed")
    ids = [unique("wf") for _ in range(count)]
    async with _worker(client, task_queue):
        await _start_mixed(client, task_queue, ids)
        for workflow_id in ids:
            await client.get_workflow_handle(workflow_id).signal(Mixed.release)
        return [await client.get_workflow_handle(w).result() for w in ids]


async def test_two_processes_replicate_to_one(clusters: TwoProcessClusters) -> None:
    """Workflows on A, whose shards both processes own: B's histories equal A's; A deletes
    the replication tasks B has applied, and both of A's processes report no lag for B."""
    namespace = await _register(clusters, "A")
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    results = await _run_mixed(a, 8)
    assert results == [f"{i}:{2 * i + 1}" for i in range(8)]
    await _histories_equal(clusters, namespace)

    async def no_lag_anywhere() -> bool | None:
        for port in clusters.a_metrics_ports:
            samples = await scrape(port)
            lag = [v for name, labels, v in samples if name == "replication_tasks_lag"]
            if lag != [0.0]:
                return None
        return True

    await eventually(no_lag_anywhere, REPLICATED_S)

    async def tasks_deleted() -> bool | None:
        connection = await asyncpg.connect(clusters.a_dsn)
        try:
            left = await connection.fetchval("SELECT COUNT(*) FROM replication_tasks")
        finally:
            await connection.close()
        return True if left == 0 else None

    await eventually(tasks_deleted, REPLICATED_S)


async def test_one_process_replicates_to_two(clusters: TwoProcessClusters) -> None:
    """Workflows on B: A applies each transition on the process owning its shard (both own
    some), and A's histories equal B's."""
    namespace = await _register(clusters, "B")
    b = await Client.connect(clusters.b.server.address, namespace=namespace)
    results = await _run_mixed(b, 8)
    assert results == [f"{i}:{2 * i + 1}" for i in range(8)]
    await _histories_equal(clusters, namespace)


async def test_failover_to_the_two_process_cluster(clusters: TwoProcessClusters) -> None:
    """Workflows running on B, waiting on a signal, failed over to A: A's processes catch up
    every shard of B before taking over, and each workflow completes on A exactly once."""
    namespace = await _register(clusters, "B")
    a = await Client.connect(clusters.a.server.address, namespace=namespace)
    b = await Client.connect(clusters.b.server.address, namespace=namespace)
    task_queue = unique("failover")
    ids = [unique("wf") for _ in range(8)]
    async with _worker(a, task_queue), _worker(b, task_queue):
        await _start_mixed(b, task_queue, ids)
        await _released_once(b, ids[:4])
        await b.workflow_service.update_namespace(
            rr.UpdateNamespaceRequest(
                namespace=namespace,
                replication_config=replication_pb.NamespaceReplicationConfig(
                    active_cluster_name="A"
                ),
            )
        )
        await _replicated(clusters.a, namespace, 11)
        await _released_once(a, ids[4:])
        results = [await a.get_workflow_handle(w).result() for w in ids]
    assert results == [f"{i}:{2 * i + 1}" for i in range(8)]
    await _histories_equal(clusters, namespace)
