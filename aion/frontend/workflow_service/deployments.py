"""WorkflowService RPCs of Worker Versioning: deployments, their versions, a workflow's
versioning options, and the legacy build-id APIs (refused, as Temporal does by default)."""

from __future__ import annotations

from typing import NoReturn

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, NamespacedRequest, ServiceBase
from aion.history.api import update_workflow_options
from aion.versioning import api as versioning


class DeploymentRpcs(ServiceBase):
    """Worker deployments and versions, and the legacy versioning RPCs."""

    def _refuse_legacy(self, request: NamespacedRequest, message: str) -> NoReturn:
        """PERMISSION_DENIED for a legacy versioning RPC, once its namespace is known."""
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(message)

    @rpc
    async def UpdateWorkflowExecutionOptions(
        self, request: rr.UpdateWorkflowExecutionOptionsRequest, context: Ctx
    ) -> rr.UpdateWorkflowExecutionOptionsResponse:
        return await self._in_namespace(
            update_workflow_options.update_workflow_options,
            request,
            request.workflow_execution.workflow_id,
        )

    @rpc
    async def DescribeWorkerDeployment(
        self, request: rr.DescribeWorkerDeploymentRequest, context: Ctx
    ) -> rr.DescribeWorkerDeploymentResponse:
        return await self._with_namespace(
            self.deployments, versioning.describe_worker_deployment, request
        )

    @rpc
    async def ListWorkerDeployments(
        self, request: rr.ListWorkerDeploymentsRequest, context: Ctx
    ) -> rr.ListWorkerDeploymentsResponse:
        return await self._with_namespace(
            self.deployments, versioning.list_worker_deployments, request
        )

    @rpc
    async def SetWorkerDeploymentCurrentVersion(
        self, request: rr.SetWorkerDeploymentCurrentVersionRequest, context: Ctx
    ) -> rr.SetWorkerDeploymentCurrentVersionResponse:
        return await self._with_namespace(self.deployments, versioning.set_current_version, request)

    @rpc
    async def SetWorkerDeploymentRampingVersion(
        self, request: rr.SetWorkerDeploymentRampingVersionRequest, context: Ctx
    ) -> rr.SetWorkerDeploymentRampingVersionResponse:
        return await self._with_namespace(self.deployments, versioning.set_ramping_version, request)

    @rpc
    async def DescribeWorkerDeploymentVersion(
        self, request: rr.DescribeWorkerDeploymentVersionRequest, context: Ctx
    ) -> rr.DescribeWorkerDeploymentVersionResponse:
        return await self._with_namespace(self.deployments, versioning.describe_version, request)

    @rpc
    async def UpdateWorkerDeploymentVersionMetadata(
        self, request: rr.UpdateWorkerDeploymentVersionMetadataRequest, context: Ctx
    ) -> rr.UpdateWorkerDeploymentVersionMetadataResponse:
        return await self._with_namespace(
            self.deployments, versioning.update_version_metadata, request
        )

    @rpc
    async def DeleteWorkerDeploymentVersion(
        self, request: rr.DeleteWorkerDeploymentVersionRequest, context: Ctx
    ) -> rr.DeleteWorkerDeploymentVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.delete_version(
            self.deployments, ns, request, self.matching.last_poll_ns
        )

    @rpc
    async def DeleteWorkerDeployment(
        self, request: rr.DeleteWorkerDeploymentRequest, context: Ctx
    ) -> rr.DeleteWorkerDeploymentResponse:
        return await self._with_namespace(self.deployments, versioning.delete_deployment, request)

    @rpc
    async def UpdateWorkerBuildIdCompatibility(
        self, request: rr.UpdateWorkerBuildIdCompatibilityRequest, context: Ctx
    ) -> rr.UpdateWorkerBuildIdCompatibilityResponse:
        self._refuse_legacy(request, versioning.LEGACY_SETS_DISABLED)

    @rpc
    async def GetWorkerBuildIdCompatibility(
        self, request: rr.GetWorkerBuildIdCompatibilityRequest, context: Ctx
    ) -> rr.GetWorkerBuildIdCompatibilityResponse:
        self._refuse_legacy(request, versioning.LEGACY_SETS_DISABLED)

    @rpc
    async def UpdateWorkerVersioningRules(
        self, request: rr.UpdateWorkerVersioningRulesRequest, context: Ctx
    ) -> rr.UpdateWorkerVersioningRulesResponse:
        self._refuse_legacy(request, versioning.LEGACY_RULES_DISABLED)

    @rpc
    async def GetWorkerVersioningRules(
        self, request: rr.GetWorkerVersioningRulesRequest, context: Ctx
    ) -> rr.GetWorkerVersioningRulesResponse:
        self._refuse_legacy(request, versioning.LEGACY_RULES_DISABLED)

    @rpc
    async def GetWorkerTaskReachability(
        self, request: rr.GetWorkerTaskReachabilityRequest, context: Ctx
    ) -> rr.GetWorkerTaskReachabilityResponse:
        self._refuse_legacy(request, versioning.LEGACY_RULES_DISABLED)
