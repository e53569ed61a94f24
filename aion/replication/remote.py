"""Calls to other clusters: their identity (`aion.replication.v1.Replication/DescribeCluster`),
their global namespaces (`.../Namespaces`), and a client's call forwarded to a namespace's active
cluster (Temporal's WorkflowService call as the client made it)."""

from __future__ import annotations

import base64
import json

import grpc
from google.protobuf.message import Message
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.cluster_metadata import ClusterMetadata
from aion.common.channels import Channels, caller_metadata
from aion.persistence import NamespaceRecord, RemoteClusterRecord

SERVICE = "aion.replication.v1.Replication"
DESCRIBE_METHOD = f"/{SERVICE}/DescribeCluster"
NAMESPACES_METHOD = f"/{SERVICE}/Namespaces"
WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
CALL_TIMEOUT_S = 10.0
# Temporal's headers: `xdc-redirection: false` keeps a call on the cluster it reached; the
# others mark a forwarded call and the cluster it came from.
REDIRECTION = "xdc-redirection"
REDIRECTED_API = "xdc-redirection-api"
SOURCE_CLUSTER = "xdc-redirection-source-cell"
_REDIRECTION_HEADERS = frozenset((REDIRECTION, REDIRECTED_API, SOURCE_CLUSTER))


class RemoteClusters:
    """The clusters connected to this one (`clusters`), reached over channels opened on first
    use."""

    def __init__(self, clusters: ClusterMetadata) -> None:
        self.clusters = clusters
        self._channels = Channels()
        self._channel = self._channels.get

    async def close(self) -> None:
        await self._channels.close()

    async def describe(self, address: str) -> RemoteClusterRecord:
        """The identity of the cluster at `address` (`ClusterMetadata.identity` there);
        UNAVAILABLE with Temporal's message when it cannot be reached."""
        call = self._channel(address).unary_unary(DESCRIBE_METHOD)
        try:
            raw = await call(b"", timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            raise errors.Unavailable(
                f"Unable connect to remote cluster {address} with error: {e.details()}."
            ) from None
        return RemoteClusterRecord(**json.loads(raw))

    async def namespaces(self, address: str) -> list[NamespaceRecord]:
        """The global namespaces the cluster at `address` replicates to this one."""
        call = self._channel(address).unary_unary(NAMESPACES_METHOD)
        request = json.dumps({"cluster": self.clusters.current_name}).encode()
        raw = await call(request, timeout=CALL_TIMEOUT_S)
        return [
            NamespaceRecord(
                id=item["id"],
                name=item["name"],
                data=base64.b64decode(item["data"]),
                config_version=item["config_version"],
            )
            for item in json.loads(raw)["namespaces"]
        ]

    async def forward(
        self, address: str, method: str, request: Message, context: grpc.aio.ServicerContext
    ) -> Message:
        """Make the client's WorkflowService call on the cluster at `address`, kept there
        (`xdc-redirection: false`); its answer, or its error passed on to the client as is."""
        call = self._channel(address).unary_unary(
            WORKFLOW_SERVICE + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=getattr(rr, f"{method}Response").FromString,
        )
        metadata = caller_metadata(context, _REDIRECTION_HEADERS)
        metadata += [
            (REDIRECTION, "false"),
            (REDIRECTED_API, "true"),
            (SOURCE_CLUSTER, self.clusters.current_name),
        ]
        try:
            response: Message = await call(
                request, timeout=context.time_remaining(), metadata=metadata
            )
        except grpc.aio.AioRpcError as e:
            await context.abort(
                e.code(), e.details() or "", trailing_metadata=tuple(e.trailing_metadata() or ())
            )
            raise AssertionError("unreachable") from None
        return response


def encode_namespaces(records: list[NamespaceRecord]) -> bytes:
    """The answer of `Namespaces` (read by `RemoteClusters.namespaces`)."""
    items = [
        {
            "id": r.id,
            "name": r.name,
            "data": base64.b64encode(r.data).decode(),
            "config_version": r.config_version,
        }
        for r in records
    ]
    return json.dumps({"namespaces": items}).encode()
