"""WorkflowService RPCs about the server and its namespaces."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, ServiceBase
from aion.namespaces import namespace_capabilities
from aion.visibility.search_attributes import system_and_preallocated

SERVER_VERSION = "1.32.0"


class NamespaceRpcs(ServiceBase):
    """System and cluster information, namespace registration and description."""

    @rpc
    async def GetSystemInfo(
        self, request: rr.GetSystemInfoRequest, context: Ctx
    ) -> rr.GetSystemInfoResponse:
        return rr.GetSystemInfoResponse(
            server_version=SERVER_VERSION,
            capabilities=rr.GetSystemInfoResponse.Capabilities(
                signal_and_query_header=True,
                internal_error_differentiation=True,
                activity_failure_include_heartbeat=True,
                supports_schedules=True,
                encoded_failure_attributes=True,
                # Workers then stamp completed workflow tasks with their build id.
                build_id_based_versioning=True,
                upsert_memo=True,
                eager_workflow_start=True,
                sdk_metadata=True,
                count_group_by_execution_status=True,
            ),
        )

    @rpc
    async def GetClusterInfo(
        self, request: rr.GetClusterInfoRequest, context: Ctx
    ) -> rr.GetClusterInfoResponse:
        clusters = self.namespaces.clusters
        return rr.GetClusterInfoResponse(
            supported_clients={
                "temporal-go": "<2.0.0",
                "temporal-java": "<2.0.0",
                "temporal-typescript": "<2.0.0",
                "temporal-php": "<2.0.0",
                "temporal-cli": "<2.0.0",
                "temporal-ui": "<3.0.0",
                "temporal-server": "<2.0.0",
            },
            server_version=SERVER_VERSION,
            cluster_id=clusters.cluster_id,
            cluster_name=clusters.current_name,
            history_shard_count=self.engine.num_shards,
            persistence_store=self.store.name,
            visibility_store=self.store.name,
            initial_failover_version=clusters.config.initial_failover_version,
            failover_version_increment=clusters.config.failover_version_increment,
        )

    @rpc
    async def RegisterNamespace(
        self, request: rr.RegisterNamespaceRequest, context: Ctx
    ) -> rr.RegisterNamespaceResponse:
        await self.namespaces.register(request)
        return rr.RegisterNamespaceResponse()

    @rpc
    async def DescribeNamespace(
        self, request: rr.DescribeNamespaceRequest, context: Ctx
    ) -> rr.DescribeNamespaceResponse:
        if request.id:
            try:
                ns = self.namespaces.by_id(request.id)
            except KeyError:
                raise errors.namespace_not_found(request.id) from None
        else:
            ns = self.namespaces.get(request.namespace)
        return self._describe(ns.description)

    def _describe(self, description: rr.DescribeNamespaceResponse) -> rr.DescribeNamespaceResponse:
        response = rr.DescribeNamespaceResponse()
        response.CopyFrom(description)
        aliases = self.namespaces.search_attributes.aliases(description.namespace_info.id)
        response.config.custom_search_attribute_aliases.update(aliases)
        info = response.namespace_info
        info.capabilities.CopyFrom(namespace_capabilities())
        info.supports_schedules = True
        # The SDKs fail a workflow task whose payloads are past these themselves.
        info.limits.blob_size_limit_error = self.engine.limits.blob_size_error
        info.limits.memo_size_limit_error = self.engine.limits.memo_size_error
        info.limits.workflow_task_completion_size_limit_error = 40 * 1024 * 1024  # reference's
        response.config.bad_binaries.SetInParent()
        return response

    @rpc
    async def ListNamespaces(
        self, request: rr.ListNamespacesRequest, context: Ctx
    ) -> rr.ListNamespacesResponse:
        return rr.ListNamespacesResponse(
            namespaces=[self._describe(ns.description) for ns in self.namespaces.all()]
        )

    @rpc
    async def UpdateNamespace(
        self, request: rr.UpdateNamespaceRequest, context: Ctx
    ) -> rr.UpdateNamespaceResponse:
        ns = await self.namespaces.update(request)
        d = self._describe(ns.description)
        return rr.UpdateNamespaceResponse(
            namespace_info=d.namespace_info,
            config=d.config,
            replication_config=d.replication_config,
            failover_version=d.failover_version,
            is_global_namespace=d.is_global_namespace,
        )

    @rpc
    async def GetSearchAttributes(
        self, request: rr.GetSearchAttributesRequest, context: Ctx
    ) -> rr.GetSearchAttributesResponse:
        return rr.GetSearchAttributesResponse(keys=system_and_preallocated())  # type: ignore[arg-type]
