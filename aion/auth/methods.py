"""Which access every API method needs, and on what: its namespace or the whole cluster.

The split follows Temporal's (its method metadata), with one category of Aion's own: the calls a
worker makes (polls, responses, heartbeats) are `Access.WORKER`, so that the worker role can run
workers without being allowed to start or signal workflows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aion.auth.roles import Access

WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
OPERATOR_SERVICE = "/temporal.api.operatorservice.v1.OperatorService/"
ADMIN_SERVICE = "/aion.admin.v1.AdminService/"
CODEC_SERVICE = "/aion.codec.v1.Codec/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


class Scope(enum.Enum):
    NAMESPACE = "namespace"  # needs the role in the request's namespace (or a system role)
    CLUSTER = "cluster"  # needs a system role


@dataclass(frozen=True)
class Rule:
    scope: Scope
    access: Access


def _names(text: str) -> list[str]:
    return text.split()


_WORKFLOW_NAMESPACE: dict[Access, list[str]] = {
    Access.WORKER: _names(
        """
        PollWorkflowTaskQueue PollActivityTaskQueue PollNexusTaskQueue
        RespondWorkflowTaskCompleted RespondWorkflowTaskFailed
        RespondActivityTaskCompleted RespondActivityTaskCompletedById
        RespondActivityTaskFailed RespondActivityTaskFailedById
        RespondActivityTaskCanceled RespondActivityTaskCanceledById
        RespondNexusTaskCompleted RespondNexusTaskFailed RespondQueryTaskCompleted
        RecordActivityTaskHeartbeat RecordActivityTaskHeartbeatById RecordWorkerHeartbeat
        ShutdownWorker ResetStickyTaskQueue
        """
    ),
    Access.READ: _names(
        """
        DescribeNamespace
        GetWorkflowExecutionHistory GetWorkflowExecutionHistoryReverse
        DescribeWorkflowExecution QueryWorkflow PollWorkflowExecutionUpdate
        PollWorkflowExecutionTimeSkipping
        ListOpenWorkflowExecutions ListClosedWorkflowExecutions ListWorkflowExecutions
        ListArchivedWorkflowExecutions ScanWorkflowExecutions CountWorkflowExecutions
        DescribeTaskQueue ListTaskQueuePartitions
        DescribeSchedule ListScheduleMatchingTimes ListSchedules CountSchedules
        GetWorkerBuildIdCompatibility GetWorkerVersioningRules GetWorkerTaskReachability
        DescribeDeployment ListDeployments GetDeploymentReachability GetCurrentDeployment
        DescribeWorkerDeploymentVersion DescribeWorkerDeployment ListWorkerDeployments
        ValidateWorkerDeploymentVersionComputeConfig
        DescribeBatchOperation ListBatchOperations
        DescribeWorkflowRule ListWorkflowRules
        ListWorkers CountWorkers DescribeWorker FetchWorkerConfig
        DescribeActivityExecution PollActivityExecution ListActivityExecutions
        CountActivityExecutions
        DescribeNexusOperationExecution PollNexusOperationExecution
        ListNexusOperationExecutions CountNexusOperationExecutions
        """
    ),
    Access.WRITE: _names(
        """
        StartWorkflowExecution ExecuteMultiOperation SignalWorkflowExecution
        SignalWithStartWorkflowExecution RequestCancelWorkflowExecution
        TerminateWorkflowExecution ResetWorkflowExecution DeleteWorkflowExecution
        UpdateWorkflowExecution UpdateWorkflowExecutionOptions
        PauseWorkflowExecution UnpauseWorkflowExecution
        CreateSchedule UpdateSchedule PatchSchedule DeleteSchedule
        UpdateWorkerBuildIdCompatibility UpdateWorkerVersioningRules
        SetCurrentDeployment SetWorkerDeploymentCurrentVersion SetWorkerDeploymentRampingVersion
        SetWorkerDeploymentManager CreateWorkerDeployment DeleteWorkerDeployment
        CreateWorkerDeploymentVersion DeleteWorkerDeploymentVersion
        UpdateWorkerDeploymentVersionComputeConfig UpdateWorkerDeploymentVersionMetadata
        StartBatchOperation StopBatchOperation
        UpdateActivityOptions PauseActivity UnpauseActivity ResetActivity
        CreateWorkflowRule DeleteWorkflowRule TriggerWorkflowRule
        UpdateTaskQueueConfig UpdateWorkerConfig
        StartActivityExecution RequestCancelActivityExecution TerminateActivityExecution
        DeleteActivityExecution PauseActivityExecution UnpauseActivityExecution
        ResetActivityExecution UpdateActivityExecutionOptions
        StartNexusOperationExecution RequestCancelNexusOperationExecution
        TerminateNexusOperationExecution DeleteNexusOperationExecution
        """
    ),
    Access.ADMIN: _names("RegisterNamespace UpdateNamespace DeprecateNamespace"),
}
_WORKFLOW_CLUSTER: dict[Access, list[str]] = {
    Access.READ: _names("ListNamespaces GetSearchAttributes GetClusterInfo GetSystemInfo"),
}
_OPERATOR_NAMESPACE: dict[Access, list[str]] = {
    Access.READ: _names("ListSearchAttributes"),
    Access.ADMIN: _names("AddSearchAttributes RemoveSearchAttributes DeleteNamespace"),
}
_OPERATOR_CLUSTER: dict[Access, list[str]] = {
    Access.ADMIN: _names(
        """
        AddOrUpdateRemoteCluster RemoveRemoteCluster ListClusters
        GetNexusEndpoint CreateNexusEndpoint UpdateNexusEndpoint DeleteNexusEndpoint
        ListNexusEndpoints
        """
    ),
}
# Aion's own API (`aion.auth.admin`): API keys and the audit log, for system admins only.
_ADMIN_CLUSTER: dict[Access, list[str]] = {
    Access.ADMIN: _names("CreateApiKey ListApiKeys DisableApiKey DeleteApiKey ListAuditEvents"),
}

# The codec server's two calls (`aion codec-server`): decoding a namespace's payloads reads them,
# encoding writes (the UI and the CLI encode what they send).
_CODEC_NAMESPACE: dict[Access, list[str]] = {Access.READ: ["Decode"], Access.WRITE: ["Encode"]}


def _rules(prefix: str, scope: Scope, table: dict[Access, list[str]]) -> dict[str, Rule]:
    return {prefix + name: Rule(scope, access) for access, names in table.items() for name in names}


RULES: dict[str, Rule] = {
    **_rules(WORKFLOW_SERVICE, Scope.NAMESPACE, _WORKFLOW_NAMESPACE),
    **_rules(WORKFLOW_SERVICE, Scope.CLUSTER, _WORKFLOW_CLUSTER),
    **_rules(OPERATOR_SERVICE, Scope.NAMESPACE, _OPERATOR_NAMESPACE),
    **_rules(OPERATOR_SERVICE, Scope.CLUSTER, _OPERATOR_CLUSTER),
    **_rules(ADMIN_SERVICE, Scope.CLUSTER, _ADMIN_CLUSTER),
    **_rules(CODEC_SERVICE, Scope.NAMESPACE, _CODEC_NAMESPACE),
}
"""Full method name (`/package.Service/Method`) to its rule; a method without one is denied."""

HEALTH_CHECKS = frozenset({HEALTH_CHECK, WORKFLOW_SERVICE + "GetSystemInfo"})
"""Methods anyone may call, with or without credentials (as Temporal's health checks)."""
