"""A call on a global namespace in handover, or at a cluster where it is not active (its
standby), as Temporal's frontend handles them. In handover (a graceful failover draining its
replication) a call waits, up to its deadline, for the namespace to leave that state, and is
then served (or redirected) as the namespace now stands, or refused with Temporal's handover
error; Temporal's namespace, cluster, visibility list/count and replication calls are exempt.
On a standby, Temporal's selected APIs are forwarded to the active cluster when the
redirection policy is `selected-apis-forwarding` (unless the call says `xdc-redirection: false`);
other writes answer NamespaceNotActive; polls wait, handed no task, until the namespace becomes
active here or the poll's time is up; reads are served here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors, metrics
from aion.frontend.rpc import deadline_seconds
from aion.matching import MatchingEngine
from aion.namespaces import Namespace, NamespaceRegistry
from aion.replication.remote import REDIRECTION, RemoteClusters

# Temporal's `selected-apis-forwarding` list (those of them Aion serves).
FORWARDED = frozenset(
    {
        "StartWorkflowExecution",
        "SignalWithStartWorkflowExecution",
        "SignalWorkflowExecution",
        "UpdateWorkflowExecution",
        "RequestCancelWorkflowExecution",
        "TerminateWorkflowExecution",
        "ResetWorkflowExecution",
        "DeleteWorkflowExecution",
        "QueryWorkflow",
        "ExecuteMultiOperation",
        "PauseWorkflowExecution",
        "UnpauseWorkflowExecution",
    }
)
# Calls that change executions (or start them, as schedules and batches do): only the active
# cluster makes them.
ACTIVE_ONLY = FORWARDED - {"QueryWorkflow"} | {
    "RespondWorkflowTaskCompleted",
    "RespondWorkflowTaskFailed",
    "RecordActivityTaskHeartbeat",
    "RecordActivityTaskHeartbeatById",
    "RespondActivityTaskCompleted",
    "RespondActivityTaskCompletedById",
    "RespondActivityTaskFailed",
    "RespondActivityTaskFailedById",
    "RespondActivityTaskCanceled",
    "RespondActivityTaskCanceledById",
    "UpdateWorkflowExecutionOptions",
    "UpdateActivityOptions",
    "PauseActivity",
    "UnpauseActivity",
    "ResetActivity",
    "CreateSchedule",
    "UpdateSchedule",
    "PatchSchedule",
    "DeleteSchedule",
    "StartBatchOperation",
    "StopBatchOperation",
}
# Temporal's calls served during a handover (`allowedMethodsDuringHandover`; those Aion serves).
HANDOVER_EXEMPT = frozenset(
    {
        "GetSystemInfo",
        "GetSearchAttributes",
        "GetClusterInfo",
        "DeprecateNamespace",
        "DescribeNamespace",
        "UpdateNamespace",
        "ListNamespaces",
        "RegisterNamespace",
        "ListTaskQueuePartitions",
        "ListOpenWorkflowExecutions",
        "ListClosedWorkflowExecutions",
        "ListWorkflowExecutions",
        "ListArchivedWorkflowExecutions",
        "ScanWorkflowExecutions",
        "CountWorkflowExecutions",
        "ListSchedules",
        "ListBatchOperations",
        "ShutdownWorker",
    }
)
# A call held by a handover answers this long before its deadline; one without a deadline
# waits at most HANDOVER_MAX_WAIT_S (Temporal's namespace cache refresh interval).
HANDOVER_TAIL_S = 0.1
HANDOVER_MAX_WAIT_S = 10.0
POLLS = frozenset({"PollWorkflowTaskQueue", "PollActivityTaskQueue", "PollNexusTaskQueue"})
# A held poll answers empty after this long at most, or this margin before its deadline, as the
# long polls of matching do.
MAX_POLL_S = 60.0
POLL_MARGIN_S = 1.0


class Redirection:
    """Decides where a WorkflowService call on a global namespace is served."""

    def __init__(
        self, namespaces: NamespaceRegistry, remotes: RemoteClusters, matching: MatchingEngine
    ) -> None:
        self.namespaces = namespaces
        self.remotes = remotes
        self.matching = matching
        self.clusters = remotes.clusters

    def _standby(self, request: Any) -> Namespace | None:
        """The request's namespace if it is global and active in another cluster."""
        ns = self.namespaces.find(getattr(request, "namespace", ""))
        if ns is None or not ns.is_global or ns.active_cluster == self.clusters.current_name:
            return None
        return ns

    async def serve(
        self,
        operation: str,
        request: Any,
        context: grpc.aio.ServicerContext,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """Serve the call here (`call`), on the active cluster, or refuse it."""
        if operation not in HANDOVER_EXEMPT:
            await self._after_handover(operation, request, context)
        ns = self._standby(request)
        if ns is None:
            return await call()
        active = self.clusters.remote(ns.active_cluster)
        if (
            operation in FORWARDED
            and self.clusters.forwarding
            and _redirection_allowed(context)
            and active is not None
            and active.connection_enabled
        ):
            return await self.remotes.forward(active.address, operation, request, context)
        if operation in ACTIVE_ONLY:
            raise errors.namespace_not_active(
                ns.name, self.clusters.current_name, ns.active_cluster
            )
        if operation in POLLS:
            held_s = min(MAX_POLL_S, deadline_seconds(context) - POLL_MARGIN_S)
            if not await self._until_active(request, held_s):
                return getattr(rr, f"{operation}Response")()  # no task
        return await call()

    async def _after_handover(
        self, operation: str, request: Any, context: grpc.aio.ServicerContext
    ) -> None:
        """Return once the request's namespace is not in handover; the handover error if its
        deadline (less a margin) comes first."""
        ns = self.namespaces.find(getattr(request, "namespace", ""))
        if ns is None or not ns.in_handover:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        until = started + max(0.0, deadline_seconds(context, HANDOVER_MAX_WAIT_S) - HANDOVER_TAIL_S)
        try:
            while self.namespaces.in_handover(ns.id):
                remaining = until - loop.time()
                if remaining <= 0:
                    raise errors.namespace_handover()
                await self.namespaces.wait_for_change(remaining)
        finally:
            metrics.handover_waited(ns.name, operation, loop.time() - started)

    async def _until_active(self, request: Any, timeout: float) -> bool:
        """Wait until the request's namespace is active here, or (a workflow task poll) a query
        waits on its task queue here, which the poll then takes before any task; False if
        `timeout` seconds pass first."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while (ns := self._standby(request)) is not None:
            remaining = until - loop.time()
            if remaining <= 0:
                return False
            if not isinstance(request, rr.PollWorkflowTaskQueueRequest):
                await self.namespaces.wait_for_change(remaining)
                continue
            query = loop.create_task(
                self.matching.wait_for_query(ns.id, request.task_queue.name, remaining)
            )
            change = loop.create_task(self.namespaces.wait_for_change(remaining))
            try:
                # Once both have started waiting no change is missed; one made before is seen here.
                await asyncio.sleep(0)
                if self._standby(request) is not None:
                    await asyncio.wait((query, change), return_when=asyncio.FIRST_COMPLETED)
            finally:
                query.cancel()
                change.cancel()
            if query.done() and not query.cancelled() and query.result():
                return True
        return True


def _redirection_allowed(context: grpc.aio.ServicerContext) -> bool:
    """Temporal's reading of `xdc-redirection`: allowed unless it parses as false."""
    for key, value in context.invocation_metadata() or ():
        if key == REDIRECTION:
            return value not in ("0", "f", "F", "false", "FALSE", "False")
    return True
