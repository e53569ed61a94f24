"""WorkflowService: validates each request, resolves its namespace and calls the operation.

One servicer, composed of one part per area (each a module here): namespaces, workflows, tasks,
task queues, workers, schedules, deployments and batch operations. Every RPC goes through `aion.frontend.rpc.rpc`, which maps errors to
gRPC statuses and forwards a call to the process that owns the execution's shard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio.api.workflowservice.v1 import service_pb2_grpc

from aion.frontend.workflow_service.base import Backends
from aion.frontend.workflow_service.batch import BatchRpcs
from aion.frontend.workflow_service.deployments import DeploymentRpcs
from aion.frontend.workflow_service.namespaces import NamespaceRpcs
from aion.frontend.workflow_service.schedules import ScheduleRpcs
from aion.frontend.workflow_service.task_queues import TaskQueueRpcs
from aion.frontend.workflow_service.tasks import TaskRpcs
from aion.frontend.workflow_service.workers import WorkerRpcs
from aion.frontend.workflow_service.workflows import WorkflowRpcs

if TYPE_CHECKING:
    from aion.auth.guard import ServiceGuard
    from aion.frontend.quotas import FrontendQuotas
    from aion.frontend.redirection import Redirection


# The grpc stubs declare the servicer's methods sync; the parts implement them `async def`.
class WorkflowService(  # type: ignore[misc]
    NamespaceRpcs,
    WorkflowRpcs,
    TaskRpcs,
    TaskQueueRpcs,
    WorkerRpcs,
    ScheduleRpcs,
    DeploymentRpcs,
    BatchRpcs,
    service_pb2_grpc.WorkflowServiceServicer,
):
    """The gRPC WorkflowService; RPCs not implemented answer UNIMPLEMENTED (the generated base)."""

    guard: ServiceGuard | None = None
    """Checks every call's credentials when auth is on (`aion.frontend.rpc`)."""
    quotas: FrontendQuotas | None = None
    """The requests per second of each namespace and of the process (`aion.frontend.rpc`)."""
    redirection: Redirection | None = None
    """Where a call on a global namespace is served (`aion.frontend.rpc`); None: here."""


__all__ = ["Backends", "WorkflowService"]
