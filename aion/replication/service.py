"""What a cluster answers the other clusters: its identity, and the global namespaces it
replicates to them."""

from __future__ import annotations

import dataclasses
import json

import grpc

from aion.namespaces import NamespaceRegistry
from aion.replication.remote import SERVICE, encode_namespaces


def replication_handler(namespaces: NamespaceRegistry) -> grpc.GenericRpcHandler:
    """`aion.replication.v1.Replication`: `DescribeCluster` answers this cluster's identity;
    `Namespaces` answers, to the cluster named in the request, every global namespace it is one
    of the clusters of, as stored here."""

    async def describe(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return json.dumps(dataclasses.asdict(namespaces.clusters.identity())).encode()

    async def list_namespaces(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        cluster = json.loads(request)["cluster"]
        return encode_namespaces([ns.record for ns in namespaces.replicated_to(cluster)])

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "DescribeCluster": grpc.unary_unary_rpc_method_handler(describe),
            "Namespaces": grpc.unary_unary_rpc_method_handler(list_namespaces),
        },
    )
