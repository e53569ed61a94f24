"""Instrumenting a store: each store method counted and timed under the reference's operation
name (`persistence_requests`, `persistence_latency`, `persistence_errors`,
`persistence_error_with_type`, by the role that calls it and the namespace it concerns) when
metrics are on, and a span `persistence/<method>` under the traced RPC it serves when tracing
is on. The methods of the store instance are replaced by instrumented ones (the class is
untouched), only when either is on: otherwise nothing stands in the way of a store call."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any, Protocol

from aion import metrics
from aion.persistence.store import (
    ConditionFailedError,
    ExecutionTransaction,
    ShardOwnershipLostError,
    Store,
)

SYSTEM = "system"  # the reference's namespace label for work on no namespace

# Store method: (the reference's operation name, service_name, where the namespace id is: the
# index of the argument holding it (an execution's workflow id, if any, in the next one), "tx"
# the transaction's, None: none).
NamespaceAt = int | str | None
OPERATIONS: dict[str, tuple[str, str, NamespaceAt]] = {
    "check_shard_count": ("GetShardCount", "history", None),
    "acquire_shard": ("GetOrCreateShard", "history", None),
    "shard_range_ids": ("GetShards", "history", None),
    "heartbeat": ("UpsertClusterMembership", "history", None),
    "leave": ("PruneClusterMembership", "history", None),
    "cluster_id": ("GetClusterMetadata", "frontend", None),
    "list_remote_clusters": ("ListClusterMetadata", "frontend", None),
    "save_remote_cluster": ("SaveClusterMetadata", "frontend", None),
    "delete_remote_cluster": ("DeleteClusterMetadata", "frontend", None),
    "list_namespaces": ("ListNamespaces", "frontend", None),
    "create_namespace": ("CreateNamespace", "frontend", None),
    "update_namespace": ("UpdateNamespace", "frontend", None),
    "delete_namespace": ("DeleteNamespace", "worker", 0),
    "list_search_attributes": ("GetClusterMetadata", "frontend", None),
    "update_search_attributes": ("SaveClusterMetadata", "frontend", None),
    "get_current_execution": ("GetCurrentExecution", "history", 0),
    "get_execution": ("GetWorkflowExecution", "history", 0),
    "read_events": ("ReadHistoryBranch", "history", 0),
    "read_event_batches_reverse": ("ReadHistoryBranchReverse", "history", 0),
    "commit": ("UpdateWorkflowExecution", "history", "tx"),
    "load_timer_tasks": ("GetTimerTasks", "history", None),
    "load_queue_tasks": ("GetTransferTasks", "history", None),
    "delete_queue_tasks": ("CompleteHistoryTask", "history", None),
    "delete_timer_tasks": ("CompleteHistoryTask", "history", None),
    "delete_execution": ("DeleteWorkflowExecution", "history", 2),
    "save_schedule": ("UpsertSchedule", "worker", 0),
    "delete_schedule": ("DeleteSchedule", "worker", 0),
    "get_schedule": ("GetSchedule", "worker", 0),
    "list_schedules": ("ListSchedules", "worker", None),
    "save_deployment": ("UpsertWorkerDeployment", "worker", None),
    "delete_deployment": ("DeleteWorkerDeployment", "worker", 0),
    "list_deployments": ("ListWorkerDeployments", "worker", None),
    "save_nexus_endpoint": ("CreateOrUpdateNexusEndpoint", "matching", None),
    "delete_nexus_endpoint": ("DeleteNexusEndpoint", "matching", None),
    "get_nexus_endpoint": ("GetNexusEndpoint", "frontend", None),
    "find_nexus_endpoint": ("ListNexusEndpoints", "frontend", None),
    "list_nexus_endpoints": ("ListNexusEndpoints", "frontend", None),
    "list_visibility": ("ListWorkflowExecutions", "frontend", 0),
    "query_visibility": ("ListWorkflowExecutions", "frontend", 0),
    "count_visibility": ("CountWorkflowExecutions", "frontend", 0),
    "count_open_executions": ("CountWorkflowExecutions", "frontend", None),
}
# Lookups whose None (nothing there) the reference's store answers with NotFound.
LOOKUPS = frozenset({"get_current_execution", "get_execution", "get_schedule"})
# Outcomes the caller expects and acts on, not failures of the database.
EXPECTED = (ConditionFailedError, ShardOwnershipLostError)

Method = Callable[..., Coroutine[Any, Any, Any]]


class SpanFactory(Protocol):
    """Opens a span around one store call (`aion.tracing`'s `Tracing.store_span`)."""

    def __call__(self, method: str, workflow_id: str = "") -> AbstractContextManager[None]: ...


def instrument(store: Store, span: SpanFactory | None) -> None:
    """Instrument every store method of `store` from now on: metrics when they are enabled,
    spans through `span` when given."""
    if not metrics.enabled() and span is None:
        return
    for name, (operation, service_name, namespace_at) in OPERATIONS.items():
        method = getattr(store, name)
        if metrics.enabled():
            method = _measured(method, operation, service_name, namespace_at)
        if span is not None:
            method = _traced(method, name, namespace_at, span)
        setattr(store, name, method)


def _traced(method: Method, name: str, namespace_at: NamespaceAt, span: SpanFactory) -> Method:
    @functools.wraps(method)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        with span(name, _workflow_id(namespace_at, args)):
            return await method(*args, **kwargs)

    return traced


def _workflow_id(namespace_at: NamespaceAt, args: tuple[Any, ...]) -> str:
    if namespace_at == "tx":
        return str(args[0].workflow_id)
    if isinstance(namespace_at, int) and len(args) > namespace_at + 1:
        workflow_id = args[namespace_at + 1]  # an execution's (namespace id, workflow id, ...)
        return workflow_id if isinstance(workflow_id, str) else ""
    return ""


def _measured(
    method: Method, operation: str, service_name: str, namespace_at: NamespaceAt
) -> Method:
    lookup = method.__name__ in LOOKUPS

    @functools.wraps(method)
    async def measured(*args: Any, **kwargs: Any) -> Any:
        namespace, op = _labels(operation, namespace_at, args)
        recorded = metrics.persistence(namespace, op, service_name)
        recorded.requests.inc()
        started = time.perf_counter()
        try:
            result = await method(*args, **kwargs)
            if result is None and lookup:  # the reference's store answers NotFound
                metrics.persistence_error("serviceerror_NotFound", namespace, op, service_name)
            return result
        except Exception as e:
            metrics.persistence_error(
                f"persistence_{type(e).__name__}", namespace, op, service_name
            )
            if not isinstance(e, EXPECTED):
                recorded.errors.inc()
            raise
        finally:
            recorded.latency.observe(time.perf_counter() - started)

    return measured


def _labels(operation: str, namespace_at: NamespaceAt, args: tuple[Any, ...]) -> tuple[str, str]:
    """The namespace and operation labels of a call."""
    if namespace_at == "tx":
        tx: ExecutionTransaction = args[0]
        new = tx.expected_db_version is None
        op = "CreateWorkflowExecution" if new else "UpdateWorkflowExecution"
        return metrics.namespace_name(tx.namespace_id), op
    if isinstance(namespace_at, int) and len(args) > namespace_at:
        return metrics.namespace_name(args[namespace_at]), operation
    return SYSTEM, operation
