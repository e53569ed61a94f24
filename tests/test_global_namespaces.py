"""Global namespaces across two Aion clusters (docs/global-namespaces.md), each a process on its
own storage (two SQLite files, or two PostgreSQL databases): cluster identity, connecting the
clusters with `temporal operator cluster`, a global namespace registered on the master and
replicated, failover and failback by Temporal's version arithmetic, NamespaceNotActive on the
standby, forwarding of Temporal's selected calls to the active cluster (off per call with
`xdc-redirection: false`), and polls on the standby handed nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.errordetails.v1 import message_pb2 as details_pb
from temporalio.api.operatorservice.v1 import request_response_pb2 as operator_rr
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.helpers import fresh_storage, unique
from tests.servers import AionProcess
from tests.test_cli_commands import Cli

T = TypeVar("T")
DEADLINE_S = 5.0  # the bound for a namespace change to reach the other cluster


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


@dataclass
class Cluster:
    name: str
    server: AionProcess
    client: Client

    @property
    def cli(self) -> Cli:
        return Cli(self.server.address)

    async def describe(self, namespace: str) -> rr.DescribeNamespaceResponse:
        return await self.client.workflow_service.describe_namespace(
            rr.DescribeNamespaceRequest(namespace=namespace)
        )

    async def upsert(self, other: Cluster, replication: bool = True) -> None:
        """Connect `other` here, with history replication to and from it on or off."""
        await self.client.operator_service.add_or_update_remote_cluster(
            operator_rr.AddOrUpdateRemoteClusterRequest(
                frontend_address=other.server.address,
                enable_remote_cluster_connection=True,
                enable_replication=replication,
            )
        )


@dataclass
class Clusters:
    a: Cluster  # the master, initial failover version 1
    b: Cluster  # initial failover version 2, forwarding Temporal's selected calls


def _cluster_args(name: str, initial_version: int, *extra: str) -> list[str]:
    return [
        "--cluster-name",
        name,
        "--enable-global-namespace",
        "--initial-failover-version",
        str(initial_version),
        "--master-cluster-name",
        "A",
        *extra,
    ]


async def _start(stack: AsyncExitStack, server: AionProcess, name: str) -> Cluster:
    await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    return Cluster(name, server, await Client.connect(server.address))


@pytest.fixture(scope="module")
async def clusters(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Clusters]:
    """Clusters A and B, connected both ways."""
    directory = tmp_path_factory.mktemp("global")
    async with AsyncExitStack() as stack:
        storage_a = await stack.enter_async_context(fresh_storage(backend, str(directory / "a.db")))
        storage_b = await stack.enter_async_context(fresh_storage(backend, str(directory / "b.db")))
        a = await _start(stack, storage_a.server(extra_args=_cluster_args("A", 1)), "A")
        forwarding = ("--redirection-policy", "selected-apis-forwarding")
        b = await _start(
            stack, storage_b.server(extra_args=_cluster_args("B", 2, *forwarding)), "B"
        )
        await a.upsert(b)
        await b.upsert(a)
        yield Clusters(a, b)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = DEADLINE_S) -> T:
    """`check()`'s first result that is not None, polled until `timeout` seconds have passed."""
    until = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        assert time.monotonic() < until, "not reached in time"
        await asyncio.sleep(0.1)


async def _register_global(clusters: Clusters) -> str:
    name = unique("global")
    await clusters.a.cli.ok(
        "operator",
        "namespace",
        "create",
        "--global",
        "--cluster",
        "A",
        "--cluster",
        "B",
        "--active-cluster",
        "A",
        "-n",
        name,
    )
    await _replicated(clusters.b, name, 1)
    return name


def start_request(
    namespace: str, workflow_id: str | None = None
) -> rr.StartWorkflowExecutionRequest:
    """A start of a workflow (of a new id unless given) on task queue "q"."""
    return rr.StartWorkflowExecutionRequest(
        namespace=namespace,
        workflow_id=workflow_id or unique("wf"),
        workflow_type={"name": "Greet"},
        task_queue={"name": "q"},
        request_id=unique("req"),
    )


async def _replicated(
    cluster: Cluster, namespace: str, version: int
) -> rr.DescribeNamespaceResponse:
    """The namespace on `cluster` once it has reached failover version `version` there."""

    async def at_version() -> rr.DescribeNamespaceResponse | None:
        try:
            described = await cluster.describe(namespace)
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND
            return None
        return described if described.failover_version == version else None

    return await eventually(at_version)


async def test_cluster_identity(clusters: Clusters) -> None:
    info = await clusters.b.client.workflow_service.get_cluster_info(rr.GetClusterInfoRequest())
    assert (info.cluster_name, info.initial_failover_version) == ("B", 2)
    assert info.failover_version_increment == 10
    assert info.cluster_id
    again = await clusters.b.client.workflow_service.get_cluster_info(rr.GetClusterInfoRequest())
    assert again.cluster_id == info.cluster_id
    described = json.loads(await clusters.a.cli.ok("operator", "cluster", "describe", "-o", "json"))
    assert (described["clusterName"], described["initialFailoverVersion"]) == ("A", "1")


async def test_connect_list_and_remove_with_the_cli(clusters: Clusters) -> None:
    """Acceptance 1: upsert both ways, then `cluster list` shows both (with the remote's id);
    remove and upsert again; the cluster itself and an unknown one are refused."""
    a, b = clusters.a, clusters.b
    upsert = ("operator", "cluster", "upsert", "--enable-connection", "--enable-replication")
    await a.cli.ok(*upsert, "--frontend-address", b.server.address)
    await b.cli.ok(*upsert, "--frontend-address", a.server.address)
    listed = json.loads(await a.cli.ok("operator", "cluster", "list", "-o", "json"))
    b_info = await b.client.workflow_service.get_cluster_info(rr.GetClusterInfoRequest())
    by_name = {c["clusterName"]: c for c in _json_lines(listed)}
    assert set(by_name) == {"A", "B"}
    assert by_name["B"]["clusterId"] == b_info.cluster_id
    assert by_name["B"]["address"] == b.server.address
    assert by_name["B"]["initialFailoverVersion"] == "2"
    assert by_name["B"]["isConnectionEnabled"] is True
    assert by_name["A"]["initialFailoverVersion"] == "1"

    await a.cli.ok("operator", "cluster", "remove", "--name", "B")
    listed = json.loads(await a.cli.ok("operator", "cluster", "list", "-o", "json"))
    assert [c["clusterName"] for c in _json_lines(listed)] == ["A"]
    await a.cli.ok(*upsert, "--frontend-address", b.server.address)

    itself = await a.cli.run(*upsert, "--frontend-address", a.server.address)
    assert "Cannot update current cluster metadata from rpc calls." in itself.stderr
    with pytest.raises(RPCError) as unknown:
        await a.client.operator_service.remove_remote_cluster(
            operator_rr.RemoveRemoteClusterRequest(cluster_name="nowhere")
        )
    assert unknown.value.status == RPCStatusCode.NOT_FOUND
    with pytest.raises(RPCError) as current:
        await a.client.operator_service.remove_remote_cluster(
            operator_rr.RemoveRemoteClusterRequest(cluster_name="A")
        )
    assert current.value.status == RPCStatusCode.INVALID_ARGUMENT


def _json_lines(listed: Any) -> list[dict[str, Any]]:
    return listed if isinstance(listed, list) else [listed]


async def test_a_duplicate_initial_version_or_no_global_namespaces_is_refused(
    clusters: Clusters,
) -> None:
    """A cluster whose initial failover version is B's, or that serves no global namespaces,
    cannot connect (INVALID_ARGUMENT with Temporal's messages); an unreachable one is
    UNAVAILABLE."""
    async with AsyncExitStack() as stack:
        twin = await _start(stack, AionProcess(extra_args=_cluster_args("C", 2)), "C")
        local = await _start(stack, AionProcess(), "active")
        for other, message in (
            (twin, "Cannot add remote cluster due to initial failover version conflict."),
            (local, "Cannot add remote cluster as global namespace is not supported."),
        ):
            with pytest.raises(RPCError) as refused:
                await clusters.a.upsert(other)
            assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
            assert refused.value.message == (
                f"Unable connect to remote cluster with invalid config: {message}"
            )
        address = twin.server.address
    with pytest.raises(RPCError) as unreachable:
        await clusters.a.client.operator_service.add_or_update_remote_cluster(
            operator_rr.AddOrUpdateRemoteClusterRequest(frontend_address=address)
        )
    assert unreachable.value.status == RPCStatusCode.UNAVAILABLE
    listed = await clusters.a.client.operator_service.list_clusters(
        operator_rr.ListClustersRequest()
    )
    assert [c.cluster_name for c in listed.clusters] == ["A", "B"]


async def test_a_global_namespace_replicates_with_its_id(clusters: Clusters) -> None:
    """Acceptance 2, first half: created with the CLI on A, B shows it with the same id at
    failover version 1 within 5 s; a cluster in use cannot be removed."""
    name = await _register_global(clusters)
    on_a, on_b = await clusters.a.describe(name), await clusters.b.describe(name)
    assert on_b.namespace_info.id == on_a.namespace_info.id
    assert on_b.is_global_namespace and on_b.replication_config.active_cluster_name == "A"
    assert [c.cluster_name for c in on_b.replication_config.clusters] == ["A", "B"]
    assert on_a.failover_version == on_b.failover_version == 1
    with pytest.raises(RPCError) as in_use:
        await clusters.a.client.operator_service.remove_remote_cluster(
            operator_rr.RemoveRemoteClusterRequest(cluster_name="B")
        )
    assert in_use.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert "still referenced by namespace" in in_use.value.message


async def test_registration_is_checked_as_temporal_does(clusters: Clusters) -> None:
    async def refused(cluster: Cluster, request: rr.RegisterNamespaceRequest) -> str:
        with pytest.raises(RPCError) as error:
            await cluster.client.workflow_service.register_namespace(request)
        assert error.value.status == RPCStatusCode.INVALID_ARGUMENT
        return error.value.message

    def request(**fields: Any) -> rr.RegisterNamespaceRequest:
        return rr.RegisterNamespaceRequest(
            namespace=unique("refused"),
            workflow_execution_retention_period=Duration(seconds=86400),
            is_global_namespace=True,
            **fields,
        )

    assert await refused(clusters.b, request()) == (
        "Cluster is not master cluster, cannot do namespace registration or namespace update."
    )
    unknown = [replication_pb.ClusterReplicationConfig(cluster_name="Z")]
    assert await refused(clusters.a, request(clusters=unknown)) == "Invalid cluster name: Z"
    only_a = [replication_pb.ClusterReplicationConfig(cluster_name="A")]
    assert await refused(clusters.a, request(clusters=only_a, active_cluster_name="B")) == (
        "Active cluster is not contained in all clusters."
    )


async def test_failover_and_failback(clusters: Clusters) -> None:
    """Register on A: 1; fail over to B: 2; fail back to A (on B): 11; both clusters agree,
    with both failovers in the history."""
    name = await _register_global(clusters)
    await clusters.a.cli.ok("operator", "namespace", "update", "-n", name, "--active-cluster", "B")
    on_b = await _replicated(clusters.b, name, 2)
    assert on_b.replication_config.active_cluster_name == "B"
    await clusters.b.cli.ok("operator", "namespace", "update", "-n", name, "--active-cluster", "A")
    on_a = await _replicated(clusters.a, name, 11)
    assert on_a.replication_config.active_cluster_name == "A"
    assert [f.failover_version for f in on_a.failover_history] == [2, 11]
    on_b = await clusters.b.describe(name)
    assert (on_b.failover_version, on_b.replication_config.active_cluster_name) == (11, "A")
    with pytest.raises(RPCError) as both:
        await clusters.a.client.workflow_service.update_namespace(
            rr.UpdateNamespaceRequest(
                namespace=name,
                update_info={"description": "changed"},
                replication_config={"active_cluster_name": "B"},
            )
        )
    assert both.value.message == (
        "Cannot set active cluster to current cluster when other parameters are set."
    )


async def test_promoting_a_local_namespace(clusters: Clusters) -> None:
    """A local namespace promoted to global takes A's first failover version; with B added to
    its clusters it replicates."""
    name = unique("promoted")
    await clusters.a.cli.ok("operator", "namespace", "create", "-n", name)
    assert (await clusters.a.describe(name)).failover_version == 0
    await clusters.a.cli.ok("operator", "namespace", "update", "-n", name, "--promote-global")
    promoted = await clusters.a.describe(name)
    assert promoted.is_global_namespace and promoted.failover_version == 1
    await clusters.a.cli.ok(
        "operator", "namespace", "update", "-n", name, "--cluster", "A", "--cluster", "B"
    )
    assert (await _replicated(clusters.b, name, 1)).namespace_info.id == promoted.namespace_info.id


async def test_a_configuration_change_replicates(clusters: Clusters) -> None:
    name = await _register_global(clusters)
    await clusters.b.client.workflow_service.update_namespace(
        rr.UpdateNamespaceRequest(namespace=name, update_info={"description": "from B"})
    )

    async def described_on_a() -> str | None:
        description = (await clusters.a.describe(name)).namespace_info.description
        return description or None

    assert await eventually(described_on_a) == "from B"


async def test_standby_refuses_writes_and_forwards_selected_calls(clusters: Clusters) -> None:
    """Acceptance 2, second half: a start sent to B with forwarding off for the call answers
    NamespaceNotActive{current B, active A}; with forwarding on it lands on A; a signal too."""
    name = await _register_global(clusters)
    start = start_request(name)
    with pytest.raises(RPCError) as not_active:
        await clusters.b.client.workflow_service.start_workflow_execution(
            start, metadata={"xdc-redirection": "false"}
        )
    assert not_active.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert not_active.value.message == (
        f"Namespace: {name} is active in cluster: A, while current cluster B is a standby cluster."
    )
    details = details_pb.NamespaceNotActiveFailure()
    assert not_active.value.grpc_status.details[0].Unpack(details)
    assert (details.namespace, details.current_cluster, details.active_cluster) == (
        name,
        "B",
        "A",
    )

    started = await clusters.b.client.workflow_service.start_workflow_execution(start)
    on_a = Client(clusters.a.client.service_client, namespace=name)
    handle = on_a.get_workflow_handle(start.workflow_id)
    assert (await handle.describe()).run_id == started.run_id
    on_b = Client(clusters.b.client.service_client, namespace=name)
    await on_b.get_workflow_handle(start.workflow_id).signal("ping")
    events = [e async for e in handle.fetch_history_events()]
    assert any(e.HasField("workflow_execution_signaled_event_attributes") for e in events)
    await handle.terminate()


async def test_only_the_active_cluster_hands_out_tasks(clusters: Clusters) -> None:
    """A poll on the standby answers empty while a task waits on the active cluster, where a
    worker then runs the workflow."""
    name = await _register_global(clusters)
    queue = unique("q")
    on_a = Client(clusters.a.client.service_client, namespace=name)
    handle = await on_a.start_workflow(Greet.run, "there", id=unique("wf"), task_queue=queue)
    poll = rr.PollWorkflowTaskQueueRequest(
        namespace=name, task_queue=taskqueue_pb.TaskQueue(name=queue), identity="standby"
    )
    polled = await clusters.b.client.workflow_service.poll_workflow_task_queue(
        poll, timeout=timedelta(seconds=3)
    )
    assert not polled.task_token
    async with Worker(on_a, task_queue=queue, workflows=[Greet]):
        assert await handle.result() == "hello there"


async def test_a_change_made_while_the_other_cluster_is_down_reaches_it(
    clusters: Clusters,
) -> None:
    """Both clusters pull: B, stopped while A fails a namespace over, takes the change in when it
    is back."""
    name = await _register_global(clusters)
    await asyncio.to_thread(clusters.b.server.stop)
    try:
        await clusters.a.cli.ok(
            "operator", "namespace", "update", "-n", name, "--active-cluster", "B"
        )
    finally:
        await asyncio.to_thread(clusters.b.server.start)
    await _replicated(clusters.b, name, 2)
