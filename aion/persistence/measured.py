"""Persistence metrics: each store method counted and timed under the reference's operation
name (`persistence_requests`, `persistence_latency`, `persistence_errors`,
`persistence_error_with_type`), by the role that calls it and the namespace it concerns."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aion import metrics
from aion.persistence.store import (
    ConditionFailedError,
    ExecutionTransaction,
    ShardOwnershipLostError,
    Store,
)

SYSTEM = "system"  # the reference's namespace label for work on no namespace

# Store method: (the reference's operation name, service_name, where the namespace id is:
# "arg" the first argument, "tx" the transaction's, None: none).
OPERATIONS: dict[str, tuple[str, str, str | None]] = {
    "check_shard_count": ("GetShardCount", "history", None),
    "acquire_shard": ("GetOrCreateShard", "history", None),
    "shard_range_ids": ("GetShards", "history", None),
    "heartbeat": ("UpsertClusterMembership", "history", None),
    "leave": ("PruneClusterMembership", "history", None),
    "list_namespaces": ("ListNamespaces", "frontend", None),
    "create_namespace": ("CreateNamespace", "frontend", None),
    "update_namespace": ("UpdateNamespace", "frontend", None),
    "list_search_attributes": ("GetClusterMetadata", "frontend", None),
    "update_search_attributes": ("SaveClusterMetadata", "frontend", None),
    "get_current_execution": ("GetCurrentExecution", "history", "arg"),
    "get_execution": ("GetWorkflowExecution", "history", "arg"),
    "read_events": ("ReadHistoryBranch", "history", "arg"),
    "commit": ("UpdateWorkflowExecution", "history", "tx"),
    "load_timer_tasks": ("GetTimerTasks", "history", None),
    "load_queue_tasks": ("GetTransferTasks", "history", None),
    "delete_queue_tasks": ("CompleteHistoryTask", "history", None),
    "delete_timer_tasks": ("CompleteHistoryTask", "history", None),
    "save_schedule": ("UpsertSchedule", "worker", "arg"),
    "delete_schedule": ("DeleteSchedule", "worker", "arg"),
    "get_schedule": ("GetSchedule", "worker", "arg"),
    "list_schedules": ("ListSchedules", "worker", None),
    "save_deployment": ("UpsertWorkerDeployment", "worker", None),
    "delete_deployment": ("DeleteWorkerDeployment", "worker", "arg"),
    "list_deployments": ("ListWorkerDeployments", "worker", None),
    "list_visibility": ("ListWorkflowExecutions", "frontend", "arg"),
    "count_open_executions": ("CountWorkflowExecutions", "frontend", None),
}
# Lookups whose None (nothing there) the reference's store answers with NotFound.
LOOKUPS = frozenset({"get_current_execution", "get_execution", "get_schedule"})
# Outcomes the caller expects and acts on, not failures of the database.
EXPECTED = (ConditionFailedError, ShardOwnershipLostError)

Method = Callable[..., Coroutine[Any, Any, Any]]


def measure(store: Store) -> None:
    """Count and time every store method of `store` from now on (the instance's methods are
    replaced by measured ones; the class is untouched)."""
    for name, (operation, service_name, namespace_at) in OPERATIONS.items():
        setattr(store, name, _measured(getattr(store, name), operation, service_name, namespace_at))


def _measured(
    method: Method, operation: str, service_name: str, namespace_at: str | None
) -> Method:
    lookup = method.__name__ in LOOKUPS

    @functools.wraps(method)
    async def measured(*args: Any, **kwargs: Any) -> Any:
        if namespace_at == "tx":
            tx: ExecutionTransaction = args[0]
            namespace = metrics.namespace_name(tx.namespace_id)
            op = (
                "UpdateWorkflowExecution"
                if tx.expected_db_version is not None
                else "CreateWorkflowExecution"
            )
        else:
            namespace = metrics.namespace_name(args[0]) if namespace_at and args else SYSTEM
            op = operation
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
