"""The replication service between clusters, secured (docs/global-namespaces.md): two clusters
with mTLS on their ports, calling each other over TLS with their own certificates, and sharing a
replication secret. A caller without the secret (or with another) is refused UNAUTHENTICATED,
also through `aion replication status`; the clusters still connect and replicate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import request_response_pb2 as operator_rr
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from tests.auth_support import Pki
from tests.helpers import aion_command, fresh_storage, unique
from tests.servers import AionProcess
from tests.test_global_namespaces import _cluster_args, eventually, start_request

REPLICATED_S = 30.0
TASKS = "/aion.replication.v1.Replication/Tasks"


@dataclass
class SecuredClusters:
    pki: Pki
    client_cert: tuple[str, str]  # (certificate, key) of an operator's client certificate
    secret_file: str
    servers: dict[str, AionProcess]
    clients: dict[str, Client]


@pytest.fixture(scope="module")
async def secured(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SecuredClusters]:
    directory = tmp_path_factory.mktemp("secured")
    pki = Pki.create(directory)
    server_cert, server_key = pki.issue("localhost", server=True)
    client_cert = pki.issue("operator")
    secret_file = directory / "replication-secret"
    secret_file.write_text("s3cret-shared-by-a-and-b\n")
    security = [
        *("--tls-cert-file", server_cert, "--tls-key-file", server_key),
        *("--tls-client-ca-file", pki.ca_path, "--remote-tls-ca-file", pki.ca_path),
        *("--replication-secret-file", str(secret_file)),
    ]
    tls = TLSConfig(
        server_root_ca_cert=Path(pki.ca_path).read_bytes(),
        domain="localhost",
        client_cert=Path(client_cert[0]).read_bytes(),
        client_private_key=Path(client_cert[1]).read_bytes(),
    )
    async with AsyncExitStack() as stack:
        servers, clients = {}, {}
        for name, version in (("A", 1), ("B", 2)):
            storage = await stack.enter_async_context(
                fresh_storage(backend, str(directory / f"{name}.db"))
            )
            server = storage.server(extra_args=_cluster_args(name, version, *security))
            await asyncio.to_thread(server.start)
            stack.callback(server.stop)
            servers[name] = server
            clients[name] = await Client.connect(server.address, tls=tls)
        for here, there in (("A", "B"), ("B", "A")):
            await clients[here].operator_service.add_or_update_remote_cluster(
                operator_rr.AddOrUpdateRemoteClusterRequest(
                    frontend_address=servers[there].address,
                    enable_remote_cluster_connection=True,
                    enable_replication=True,
                )
            )
        yield SecuredClusters(pki, client_cert, str(secret_file), servers, clients)


def _channel(clusters: SecuredClusters, name: str) -> grpc.aio.Channel:
    """A TLS channel to cluster `name` with the operator's client certificate: through the
    port's mTLS, but without the replication secret."""
    credentials = grpc.ssl_channel_credentials(
        Path(clusters.pki.ca_path).read_bytes(),
        Path(clusters.client_cert[1]).read_bytes(),
        Path(clusters.client_cert[0]).read_bytes(),
    )
    return grpc.aio.secure_channel(clusters.servers[name].address, credentials)


@pytest.mark.parametrize("secret", [None, "not-the-secret"])
async def test_a_caller_without_the_secret_is_refused(
    secured: SecuredClusters, secret: str | None
) -> None:
    request = {"cluster": "B", "shard_id": 0, "after_task_id": 0, "limit": 10}
    metadata = () if secret is None else (("aion-replication-secret", secret),)
    async with _channel(secured, "A") as channel:
        call = channel.unary_unary(TASKS)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(json.dumps(request).encode(), metadata=metadata, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "Request unauthorized."


async def _status(clusters: SecuredClusters, name: str, *extra: str) -> tuple[int, str, str]:
    """`aion replication status` on cluster `name` over TLS: (exit status, stdout, stderr)."""
    cert, key = clusters.client_cert
    tls = ("--tls-ca-path", clusters.pki.ca_path, "--tls-cert-path", cert, "--tls-key-path", key)
    address = clusters.servers[name].address
    return await aion_command("replication", "status", "--address", address, *tls, *extra)


async def test_the_admin_command_needs_the_secret(secured: SecuredClusters) -> None:
    code, _, err = await _status(secured, "B")
    assert code == 1 and "UNAUTHENTICATED" in err
    code, out, err = await _status(secured, "B", "--replication-secret-file", secured.secret_file)
    assert code == 0, err
    assert json.loads(out)["cluster"] == "B"


async def test_clusters_with_tls_and_the_secret_replicate(secured: SecuredClusters) -> None:
    """A global namespace registered on A reaches B, and so does a workflow started on A."""
    namespace = unique("secured")
    a, b = secured.clients["A"], secured.clients["B"]
    await a.workflow_service.register_namespace(
        rr.RegisterNamespaceRequest(
            namespace=namespace,
            workflow_execution_retention_period=Duration(seconds=86400),
            clusters=[replication_pb.ClusterReplicationConfig(cluster_name=n) for n in "AB"],
            active_cluster_name="A",
            is_global_namespace=True,
        )
    )
    workflow_id = unique("wf")

    async def on_b(request: rr.DescribeWorkflowExecutionRequest) -> bool | None:
        try:
            await b.workflow_service.describe_workflow_execution(request)
        except RPCError as e:
            assert e.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.UNAVAILABLE)
            return None
        return True

    async def namespace_on_b() -> bool | None:
        try:
            await b.workflow_service.describe_namespace(
                rr.DescribeNamespaceRequest(namespace=namespace)
            )
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND
            return None
        return True

    await eventually(namespace_on_b, REPLICATED_S)
    await a.workflow_service.start_workflow_execution(start_request(namespace, workflow_id))
    described = rr.DescribeWorkflowExecutionRequest(
        namespace=namespace, execution={"workflow_id": workflow_id}
    )
    await eventually(lambda: on_b(described), REPLICATED_S)
