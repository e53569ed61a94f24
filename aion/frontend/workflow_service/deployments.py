"""WorkflowService RPCs of Worker Versioning: deployments, their versions, a workflow's
versioning options, and the legacy build-id APIs (refused, as Temporal does by default)."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.frontend.rpc import rpc
from aion.frontend.workflow_service.base import Ctx, ServiceBase, require
from aion.history.api import update_workflow_options
from aion.versioning import api as versioning


class DeploymentRpcs(ServiceBase):
    """Worker deployments and versions, and the legacy versioning RPCs."""

    @rpc
    async def UpdateWorkflowExecutionOptions(
        self, request: rr.UpdateWorkflowExecutionOptionsRequest, context: Ctx
    ) -> rr.UpdateWorkflowExecutionOptionsResponse:
        ns = self.namespaces.get(request.namespace)
        require(request.workflow_execution.workflow_id, "WorkflowId")
        return await update_workflow_options.update_workflow_options(self.engine, ns, request)

    @rpc
    async def DescribeWorkerDeployment(
        self, request: rr.DescribeWorkerDeploymentRequest, context: Ctx
    ) -> rr.DescribeWorkerDeploymentResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.describe_worker_deployment(self.engine, ns, request)

    @rpc
    async def ListWorkerDeployments(
        self, request: rr.ListWorkerDeploymentsRequest, context: Ctx
    ) -> rr.ListWorkerDeploymentsResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.list_worker_deployments(self.engine, ns, request)

    @rpc
    async def SetWorkerDeploymentCurrentVersion(
        self, request: rr.SetWorkerDeploymentCurrentVersionRequest, context: Ctx
    ) -> rr.SetWorkerDeploymentCurrentVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.set_current_version(self.engine, ns, request)

    @rpc
    async def SetWorkerDeploymentRampingVersion(
        self, request: rr.SetWorkerDeploymentRampingVersionRequest, context: Ctx
    ) -> rr.SetWorkerDeploymentRampingVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.set_ramping_version(self.engine, ns, request)

    @rpc
    async def DescribeWorkerDeploymentVersion(
        self, request: rr.DescribeWorkerDeploymentVersionRequest, context: Ctx
    ) -> rr.DescribeWorkerDeploymentVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.describe_version(self.engine, ns, request)

    @rpc
    async def UpdateWorkerDeploymentVersionMetadata(
        self, request: rr.UpdateWorkerDeploymentVersionMetadataRequest, context: Ctx
    ) -> rr.UpdateWorkerDeploymentVersionMetadataResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.update_version_metadata(self.engine, ns, request)

    @rpc
    async def DeleteWorkerDeploymentVersion(
        self, request: rr.DeleteWorkerDeploymentVersionRequest, context: Ctx
    ) -> rr.DeleteWorkerDeploymentVersionResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.delete_version(self.engine, ns, request)

    @rpc
    async def DeleteWorkerDeployment(
        self, request: rr.DeleteWorkerDeploymentRequest, context: Ctx
    ) -> rr.DeleteWorkerDeploymentResponse:
        ns = self.namespaces.get(request.namespace)
        return await versioning.delete_deployment(self.engine, ns, request)

    @rpc
    async def UpdateWorkerBuildIdCompatibility(
        self, request: rr.UpdateWorkerBuildIdCompatibilityRequest, context: Ctx
    ) -> rr.UpdateWorkerBuildIdCompatibilityResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_SETS_DISABLED)

    @rpc
    async def GetWorkerBuildIdCompatibility(
        self, request: rr.GetWorkerBuildIdCompatibilityRequest, context: Ctx
    ) -> rr.GetWorkerBuildIdCompatibilityResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_SETS_DISABLED)

    @rpc
    async def UpdateWorkerVersioningRules(
        self, request: rr.UpdateWorkerVersioningRulesRequest, context: Ctx
    ) -> rr.UpdateWorkerVersioningRulesResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_RULES_DISABLED)

    @rpc
    async def GetWorkerVersioningRules(
        self, request: rr.GetWorkerVersioningRulesRequest, context: Ctx
    ) -> rr.GetWorkerVersioningRulesResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_RULES_DISABLED)

    @rpc
    async def GetWorkerTaskReachability(
        self, request: rr.GetWorkerTaskReachabilityRequest, context: Ctx
    ) -> rr.GetWorkerTaskReachabilityResponse:
        self.namespaces.get(request.namespace)
        raise errors.PermissionDenied(versioning.LEGACY_RULES_DISABLED)
