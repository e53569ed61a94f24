"""OperatorService: custom search attributes (add, list, remove), namespace deletion, the
connected clusters (add or update, list, remove) and the Nexus endpoint registry, as the
reference answers them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.enums.v1.namespace_pb2 import NAMESPACE_STATE_DELETED
from temporalio.api.operatorservice.v1 import request_response_pb2 as rr
from temporalio.api.operatorservice.v1 import service_pb2_grpc

from aion import errors
from aion.frontend.nexus_endpoints import NexusEndpoints
from aion.frontend.rpc import rpc
from aion.namespaces import Namespace, NamespaceRegistry
from aion.replication.remote import RemoteClusters
from aion.visibility.query import PREDEFINED_SEARCH_ATTRIBUTES
from aion.visibility.search_attributes import (
    SearchAttributeError,
    TooManySearchAttributesError,
    is_reserved,
)

if TYPE_CHECKING:  # the auth modules load only when auth is on
    from aion.auth.guard import ServiceGuard

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)
SYSTEM_NAMESPACE = "temporal-system"


class OperatorService(service_pb2_grpc.OperatorServiceServicer):
    guard: ServiceGuard | None = None
    """Checks every call's credentials when auth is on (`aion.frontend.rpc`)."""

    def __init__(
        self,
        namespaces: NamespaceRegistry,
        remotes: RemoteClusters,
        nexus_endpoints: NexusEndpoints,
    ) -> None:
        """`remotes`: the clusters connected to this one."""
        self.namespaces = namespaces
        self.nexus_endpoints = nexus_endpoints
        self.search_attributes = namespaces.search_attributes
        self.remotes = remotes
        self.clusters = remotes.clusters
        self._reaping: set[asyncio.Task[None]] = set()

    @rpc
    async def ListClusters(
        self, request: rr.ListClustersRequest, context: Ctx
    ) -> rr.ListClustersResponse:
        return rr.ListClustersResponse(clusters=self.clusters.cluster_list())

    @rpc
    async def AddOrUpdateRemoteCluster(
        self, request: rr.AddOrUpdateRemoteClusterRequest, context: Ctx
    ) -> rr.AddOrUpdateRemoteClusterResponse:
        """Connect to the cluster at the frontend address: its identity is read from it and
        checked as Temporal does before it is stored."""
        address = request.frontend_address
        if not address:
            raise errors.InvalidArgument("FrontendAddress is not set on request.")
        remote = await self.remotes.describe(address)
        self.clusters.check_remote(remote)
        await self.clusters.save_remote(
            dataclasses.replace(
                remote,
                address=address,
                http_address=request.frontend_http_address,
                connection_enabled=request.enable_remote_cluster_connection,
                replication_enabled=request.enable_replication,
            )
        )
        return rr.AddOrUpdateRemoteClusterResponse()

    @rpc
    async def RemoveRemoteCluster(
        self, request: rr.RemoveRemoteClusterRequest, context: Ctx
    ) -> rr.RemoveRemoteClusterResponse:
        name = request.cluster_name
        self.clusters.check_removable(name)
        current = self.clusters.current_name
        for ns in self.namespaces.all():
            if (
                ns.is_global
                and len(ns.clusters) > 1
                and ns.description.namespace_info.state != NAMESPACE_STATE_DELETED
                and current in ns.clusters
                and name in ns.clusters
            ):
                raise errors.FailedPrecondition(
                    f'cannot remove cluster "{name}": still referenced by namespace "{ns.name}"'
                )
        await self.clusters.remove_remote(name)
        return rr.RemoveRemoteClusterResponse()

    def _namespace(self, name: str) -> Namespace | None:
        """The named namespace; NOT_FOUND if unknown, None if not set (checked later, as
        Temporal's namespace interceptor only resolves names that are set)."""
        return self.namespaces.get(name) if name else None

    @staticmethod
    def _required(ns: Namespace | None) -> Namespace:
        if ns is None:
            raise errors.InvalidArgument("Namespace is not set on request.")
        return ns

    @rpc
    async def DeleteNamespace(
        self, request: rr.DeleteNamespaceRequest, context: Ctx
    ) -> rr.DeleteNamespaceResponse:
        if request.namespace_id:
            try:
                ns = self.namespaces.by_id(request.namespace_id)
            except KeyError:
                raise errors.NotFound(f"Namespace {request.namespace_id} is not found.") from None
        else:
            ns = self._required(self._namespace(request.namespace))
        if ns.name == SYSTEM_NAMESPACE:
            raise errors.InvalidArgument("Unable to delete system namespace.")
        deleted = await self.namespaces.mark_deleted(ns)
        reaping = asyncio.get_running_loop().create_task(self._reap())
        self._reaping.add(reaping)
        reaping.add_done_callback(self._reaping.discard)
        return rr.DeleteNamespaceResponse(deleted_namespace=deleted.name)

    async def stop(self) -> None:
        """Wait for the deletions under way (before the store closes)."""
        await asyncio.gather(*self._reaping, return_exceptions=True)

    async def _reap(self) -> None:
        try:
            await self.namespaces.reap_deleted()
        except Exception:  # the mark stays: the next start (or heartbeat) reaps it
            log.exception("deleting namespaces failed")

    @rpc
    async def AddSearchAttributes(
        self, request: rr.AddSearchAttributesRequest, context: Ctx
    ) -> rr.AddSearchAttributesResponse:
        ns = self._namespace(request.namespace)
        if not request.search_attributes:
            raise errors.InvalidArgument("SearchAttributes are not set on request.")
        for name, sa_type in request.search_attributes.items():
            if is_reserved(name):
                raise errors.InvalidArgument(f"Search attribute {name} is reserved by system.")
            if sa_type not in IndexedValueType.values():
                raise errors.InvalidArgument(f"Unknown search attribute type: {sa_type}.")
        ns = self._required(ns)
        try:
            await self.search_attributes.add(ns.id, dict(request.search_attributes))
        except TooManySearchAttributesError as e:
            raise errors.InvalidArgument(f"Unable to create search attributes: {e}.") from None
        return rr.AddSearchAttributesResponse()

    @rpc
    async def RemoveSearchAttributes(
        self, request: rr.RemoveSearchAttributesRequest, context: Ctx
    ) -> rr.RemoveSearchAttributesResponse:
        ns = self._namespace(request.namespace)
        if not request.search_attributes:
            raise errors.InvalidArgument("SearchAttributes are not set on request.")
        ns = self._required(ns)
        try:
            await self.search_attributes.remove(ns.id, request.search_attributes)
        except SearchAttributeError as e:
            raise errors.InvalidArgument(str(e)) from None
        return rr.RemoveSearchAttributesResponse()

    @rpc
    async def ListSearchAttributes(
        self, request: rr.ListSearchAttributesRequest, context: Ctx
    ) -> rr.ListSearchAttributesResponse:
        ns = self._required(self._namespace(request.namespace))
        return rr.ListSearchAttributesResponse(
            custom_attributes=self.search_attributes.custom(ns.id),  # type: ignore[arg-type]
            system_attributes=PREDEFINED_SEARCH_ATTRIBUTES,  # type: ignore[arg-type]
        )

    @rpc
    async def CreateNexusEndpoint(
        self, request: rr.CreateNexusEndpointRequest, context: Ctx
    ) -> rr.CreateNexusEndpointResponse:
        return rr.CreateNexusEndpointResponse(endpoint=await self.nexus_endpoints.create(request))

    @rpc
    async def UpdateNexusEndpoint(
        self, request: rr.UpdateNexusEndpointRequest, context: Ctx
    ) -> rr.UpdateNexusEndpointResponse:
        return rr.UpdateNexusEndpointResponse(endpoint=await self.nexus_endpoints.update(request))

    @rpc
    async def DeleteNexusEndpoint(
        self, request: rr.DeleteNexusEndpointRequest, context: Ctx
    ) -> rr.DeleteNexusEndpointResponse:
        await self.nexus_endpoints.delete(request)
        return rr.DeleteNexusEndpointResponse()

    @rpc
    async def GetNexusEndpoint(
        self, request: rr.GetNexusEndpointRequest, context: Ctx
    ) -> rr.GetNexusEndpointResponse:
        return rr.GetNexusEndpointResponse(endpoint=await self.nexus_endpoints.get(request.id))

    @rpc
    async def ListNexusEndpoints(
        self, request: rr.ListNexusEndpointsRequest, context: Ctx
    ) -> rr.ListNexusEndpointsResponse:
        return await self.nexus_endpoints.list(request)
