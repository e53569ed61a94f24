"""What every part of WorkflowService shares: its collaborators and the checks RPCs reuse."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar

import grpc
from temporalio.api.enums.v1 import task_queue_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.batch.runtime import BatchRuntime
from aion.common.versions import pinned_version, pinned_version_missing, version_key
from aion.history.api import update_workflow
from aion.history.engine import HistoryEngine
from aion.matching import MatchingEngine
from aion.namespaces import Namespace, NamespaceRegistry
from aion.persistence import Store
from aion.schedules.runtime import ScheduleRuntime
from aion.versioning.registry import DeploymentRegistry
from aion.visibility.search_attributes import SearchAttributeError

WORKFLOW_QUEUE = task_queue_pb2.TASK_QUEUE_TYPE_WORKFLOW
Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
MAX_ID_LENGTH = 1000


class NamespacedRequest(Protocol):
    """A request naming its namespace."""

    @property
    def namespace(self) -> str: ...


RequestT = TypeVar("RequestT", bound=NamespacedRequest)
ResponseT = TypeVar("ResponseT")
TargetT = TypeVar("TargetT")
Operation: TypeAlias = Callable[[TargetT, Namespace, RequestT], Awaitable[ResponseT]]


@dataclass(frozen=True)
class Backends:
    """What the RPCs call: history, matching, visibility's store, schedules and deployments."""

    engine: HistoryEngine
    namespaces: NamespaceRegistry
    matching: MatchingEngine
    store: Store
    schedules: ScheduleRuntime
    deployments: DeploymentRegistry
    address: str = ""  # where this process serves (task queue partitions' owner)
    batches: BatchRuntime | None = None  # None: batch operations answer UNIMPLEMENTED


class ServiceBase:
    """The backends the RPCs call, and the checks several RPCs share."""

    def __init__(self, backends: Backends) -> None:
        self.engine = backends.engine
        self.namespaces = backends.namespaces
        self.matching = backends.matching
        self.store = backends.store
        self.schedules = backends.schedules
        self.deployments = backends.deployments
        self.address = backends.address
        self.batches = backends.batches

    async def _in_namespace(
        self,
        operation: Operation[HistoryEngine, RequestT, ResponseT],
        request: RequestT,
        workflow_id: str | None = None,
    ) -> ResponseT:
        """Resolve the request's namespace and run the history `operation` on it; for a request
        on one workflow, pass its `workflow_id`, required once the namespace is known."""
        return await self._with_namespace(self.engine, operation, request, workflow_id)

    async def _with_namespace(
        self,
        backend: TargetT,
        operation: Operation[TargetT, RequestT, ResponseT],
        request: RequestT,
        workflow_id: str | None = None,
    ) -> ResponseT:
        """`_in_namespace` for an operation of another backend (schedules, deployments)."""
        ns = self.namespaces.get(request.namespace)
        if workflow_id is not None:
            require(workflow_id, "WorkflowId")
        return await operation(backend, ns, request)

    def _check_pinned_version(self, ns: Namespace, request: Any) -> None:
        """A start's versioning override may pin only to a version serving its task queue."""
        if not request.HasField("versioning_override"):
            return
        pinned = pinned_version(request.versioning_override)
        if pinned is None:
            return
        key = version_key(*pinned)
        queue = request.task_queue.name
        if self.deployments.route(ns.id, queue, WORKFLOW_QUEUE, "", key) != key:
            raise pinned_version_missing(*pinned, queue)

    def _check_search_attributes(self, ns: Namespace, request: Any) -> None:
        """A request's search attributes, checked as Temporal's frontend does."""
        if not request.HasField("search_attributes"):
            return
        try:
            self.namespaces.search_attributes.validate(ns.id, ns.name, request.search_attributes)
        except SearchAttributeError as e:
            raise errors.InvalidArgument(str(e)) from None


def require(value: str, what: str) -> None:
    """INVALID_ARGUMENT unless `value` is set."""
    if not value:
        raise errors.InvalidArgument(f"{what} is not set on request.")


def require_task_queue(name: str) -> None:
    """INVALID_ARGUMENT unless the task queue name is set and not too long."""
    if not name:
        raise errors.InvalidArgument("missing task queue name")
    if len(name) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("task queue name exceeds length limit")


def require_activity_target(request: Any) -> None:
    """INVALID_ARGUMENT unless an activity request names its workflow and activity."""
    require(request.execution.workflow_id, "WorkflowId")
    if request.WhichOneof("activity") is None:
        raise errors.InvalidArgument(
            "Either Activity.Id or Activity.Type should be set on request."
        )


def check_activity_execution(request: Any) -> None:
    """Temporal's checks on a *ActivityExecution request (a workflow's activity by id; Aion
    has no standalone activities, so one without a workflow id is refused as Temporal refuses
    it with standalone activities off)."""
    if not request.workflow_id:
        raise errors.Unimplemented("Standalone activity is disabled")
    if len(request.request_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("request ID exceeds length limit.")
    if not request.activity_id:
        raise errors.InvalidArgument("activity ID is required")
    if len(request.activity_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("activity ID exceeds length limit.")
    if len(request.identity) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("identity exceeds length limit.")
    if request.run_id:
        try:
            uuid.UUID(request.run_id)
        except ValueError:
            raise errors.InvalidArgument("invalid run id: must be a valid UUID") from None


def validate_update(request: rr.UpdateWorkflowExecutionRequest) -> None:
    """Temporal's checks on an update request; fills in the update id and wait stage."""
    require(request.workflow_execution.workflow_id, "WorkflowId")
    update = request.request
    if not update.HasField("meta"):
        raise errors.InvalidArgument("Update meta is not set on request.")
    if len(update.meta.update_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("UpdateId length exceeds limit.")
    if not update.meta.update_id:
        update.meta.update_id = str(uuid.uuid4())
    if not update.HasField("input"):
        raise errors.InvalidArgument("Update input is not set on request.")
    if not update.input.name:
        raise errors.InvalidArgument("Update name is not set on request.")
    stage = request.wait_policy.lifecycle_stage
    if stage == update_workflow.UNSPECIFIED:
        request.wait_policy.lifecycle_stage = update_workflow.COMPLETED
    elif stage == update_workflow.ADMITTED:
        raise errors.PermissionDenied(
            "UpdateWorkflowExecution issued asynchronously and waiting on update admitted is"
            " not supported."
        )
