"""Temporal's server metrics, kept in `prometheus_client` and exposed in the reference server's
format (`exposition.py`), so dashboards built for Temporal read Aion unchanged.

Every metric name has one label set, the reference's. `service_name` is the role of the code that
emits it (`frontend`, `history`, `matching`, `worker`); a call without a namespace counts under
`_unknown_`, as the reference does. Metrics are recorded only once `enable()` has been called
(the server does when it has a metrics port); until then every helper hands out a no-op, so a
server without a metrics port spends nothing on them.

The helpers below return labelled children looked up once per label set (`labels()` checks and
locks on every call) and cached.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from aion import __version__
from aion.metrics.families import CounterFamily, HistogramFamily

REGISTRY = CollectorRegistry(auto_describe=False)
"""The process's metrics (one server per process)."""

# The reference's buckets: timers in seconds, sizes in bytes, counts.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000,
)  # fmt: skip
BYTE_BUCKETS = tuple(1024 * 2**i for i in range(15))
COUNT_BUCKETS = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
)  # fmt: skip

UNKNOWN_NAMESPACE = "_unknown_"
ACTIVE = "active"  # namespace_state: every namespace is active on its only cluster
NORMAL_PARTITION = "__normal__"
STICKY_PARTITION = "__sticky__"
UNVERSIONED = "__unversioned__"
TASK_TYPES = {"workflow": "Workflow", "activity": "Activity"}


class Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Observe(Protocol):
    def observe(self, amount: float) -> None: ...


class _Noop:
    """What every helper hands out while metrics are off."""

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


NOOP = _Noop()
_enabled = False
_caches: list[Any] = []
F = TypeVar("F", bound=Callable[..., Any])


def enabled() -> bool:
    return _enabled


def enable() -> None:
    """Start recording (the server calls this when it serves a metrics port)."""
    global _enabled
    _enabled = True
    for cache in _caches:
        cache.cache_clear()


def _cached(fn: F) -> F:
    cached = functools.cache(fn)
    _caches.append(cached)
    return cached  # type: ignore[return-value]


def _counter(name: str, labels: tuple[str, ...]) -> CounterFamily:
    return CounterFamily(name, labels, REGISTRY)


def _histogram(
    name: str, labels: tuple[str, ...], buckets: tuple[float, ...] = LATENCY_BUCKETS
) -> HistogramFamily:
    return HistogramFamily(name, labels, buckets, REGISTRY)


# ---- namespace names ----------------------------------------------------------------------
# Matching, persistence and history see namespace ids; the metrics carry names.
_namespace_names: dict[str, str] = {}


def name_namespace(namespace_id: str, name: str) -> None:
    """Record the name of a namespace id (the namespace registry calls this)."""
    _namespace_names[namespace_id] = name


def namespace_name(namespace_id: str) -> str:
    return _namespace_names.get(namespace_id, UNKNOWN_NAMESPACE)


# ---- frontend: service_* and action ------------------------------------------------------
SERVICE_LABELS = ("namespace", "operation", "service_name")
service_requests = _counter("service_requests", SERVICE_LABELS)
service_errors = _counter("service_errors", SERVICE_LABELS)
service_latency = _histogram("service_latency", SERVICE_LABELS)
service_error_with_type = _counter("service_error_with_type", ("error_type", *SERVICE_LABELS))
service_errors_resource_exhausted = _counter(
    "service_errors_resource_exhausted",
    (
        "namespace",
        "operation",
        "resource_exhausted_cause",
        "resource_exhausted_scope",
        "service_name",
    ),
)
service_errors_namespace_not_active = _counter(
    "service_errors_namespace_not_active", SERVICE_LABELS
)
action = _counter("action", ("action_type", "namespace", "operation", "service_name"))


class RequestMetrics(NamedTuple):
    """The requests, errors and latency of one namespace, operation and service (the
    `service_*` and `persistence_*` families)."""

    requests: Count
    errors: Count
    latency: Observe


_NO_REQUEST_METRICS = RequestMetrics(NOOP, NOOP, NOOP)


def _request_metrics(
    families: tuple[CounterFamily, CounterFamily, HistogramFamily], *labels: str
) -> RequestMetrics:
    if not _enabled:
        return _NO_REQUEST_METRICS
    requests, errors, latency = families
    return RequestMetrics(requests.labels(*labels), errors.labels(*labels), latency.labels(*labels))


@_cached
def service(namespace: str, operation: str, service_name: str) -> RequestMetrics:
    return _request_metrics(
        (service_requests, service_errors, service_latency), namespace, operation, service_name
    )


@_cached
def service_error(error_type: str, namespace: str, operation: str, service_name: str) -> Count:
    """`service_error_with_type`; `error_type` as the reference names it (`serviceerror_NotFound`)."""
    if not _enabled:
        return NOOP
    return service_error_with_type.labels(error_type, namespace, operation, service_name)


def resource_exhausted(namespace: str, operation: str, cause: str, scope: str) -> None:
    if _enabled:
        service_errors_resource_exhausted.labels(
            namespace, operation, cause, scope, "frontend"
        ).inc()


def namespace_not_active(namespace: str, operation: str) -> None:
    """A write refused on a cluster where its namespace is standby."""
    if _enabled:
        service_errors_namespace_not_active.labels(namespace, operation, "frontend").inc()


@_cached
def actions(action_type: str, namespace: str, operation: str) -> Count:
    """`action`: what Temporal Cloud bills (`grpc_StartWorkflowExecution`, `command_StartTimer`…)."""
    if not _enabled:
        return NOOP
    return action.labels(action_type, namespace, operation, "frontend")


# ---- persistence ---------------------------------------------------------------------------
persistence_requests = _counter("persistence_requests", SERVICE_LABELS)
persistence_errors = _counter("persistence_errors", SERVICE_LABELS)
persistence_error_with_type = _counter(
    "persistence_error_with_type", ("error_type", *SERVICE_LABELS)
)
persistence_latency = _histogram("persistence_latency", SERVICE_LABELS)


@_cached
def persistence(namespace: str, operation: str, service_name: str) -> RequestMetrics:
    families = (persistence_requests, persistence_errors, persistence_latency)
    return _request_metrics(families, namespace, operation, service_name)


def persistence_error(error_type: str, namespace: str, operation: str, service_name: str) -> None:
    if _enabled:
        persistence_error_with_type.labels(error_type, namespace, operation, service_name).inc()


# ---- matching ------------------------------------------------------------------------------
QUEUE_LABELS = (
    "namespace", "namespace_state", "operation", "partition", "service_name", "task_type",
    "taskqueue", "worker_build_id", "worker_deployment_name", "worker_version",
)  # fmt: skip
MATCH_LABELS = ("namespace", "operation", "partition", "service_name", "task_type", "taskqueue")
poll_success = _counter("poll_success", QUEUE_LABELS)
poll_success_sync = _counter("poll_success_sync", QUEUE_LABELS)
poll_timeouts = _counter("poll_timeouts", QUEUE_LABELS)
syncmatch_latency = _histogram("syncmatch_latency", MATCH_LABELS)
asyncmatch_latency = _histogram("asyncmatch_latency", MATCH_LABELS)
task_schedule_to_start_latency = _histogram("task_schedule_to_start_latency", MATCH_LABELS)


class QueueMetrics(NamedTuple):
    """The matching metrics of one task queue partition."""

    poll_success: Count
    poll_success_sync: Count
    poll_timeouts: Count
    syncmatch_latency: Observe
    asyncmatch_latency: Observe


@_cached
def task_queue(namespace: str, task_queue: str, kind: str, sticky: bool) -> QueueMetrics:
    """`kind` is "workflow" or "activity"; a sticky queue counts under its normal queue's name.
    Aion's task queues have one partition: "0", as the reference names it in matching."""
    if not _enabled:
        return QueueMetrics(NOOP, NOOP, NOOP, NOOP, NOOP)
    partition = STICKY_PARTITION if sticky else "0"
    task_type = TASK_TYPES[kind]
    queue: tuple[str, ...] = (
        namespace,
        ACTIVE,
        "TaskQueueMgr",
        partition,
        "matching",
        task_type,
        task_queue,
    )
    queue = (*queue, "", "", UNVERSIONED)  # worker build id, deployment name, version
    add = "AddWorkflowTask" if kind == "workflow" else "AddActivityTask"
    match = (namespace, add, partition, "matching", task_type, task_queue)
    return QueueMetrics(
        poll_success.labels(*queue),
        poll_success_sync.labels(*queue),
        poll_timeouts.labels(*queue),
        syncmatch_latency.labels(*match),
        asyncmatch_latency.labels(*match),
    )


@_cached
def schedule_to_start(namespace: str, task_queue: str, kind: str, sticky: bool) -> Observe:
    """`task_schedule_to_start_latency`, recorded by history when a task is started."""
    if not _enabled:
        return NOOP
    operation = "RecordWorkflowTaskStarted" if kind == "workflow" else "RecordActivityTaskStarted"
    partition = STICKY_PARTITION if sticky else NORMAL_PARTITION
    return task_schedule_to_start_latency.labels(
        namespace, operation, partition, "history", TASK_TYPES[kind], task_queue
    )


# ---- history: executions -------------------------------------------------------------------
OUTCOME_LABELS = (
    "namespace", "namespace_state", "operation", "service_name", "taskqueue", "workflowType",
)  # fmt: skip
OUTCOMES = {
    name: _counter(name, OUTCOME_LABELS)
    for name in (
        "workflow_success",
        "workflow_failed",
        "workflow_timeout",
        "workflow_terminate",
        "workflow_cancel",
        "workflow_continued_as_new",
    )
}
history_size = _histogram("history_size", SERVICE_LABELS, BYTE_BUCKETS)
history_count = _histogram("history_count", SERVICE_LABELS, COUNT_BUCKETS)
state_transition_count = _histogram(
    "state_transition_count",
    ("namespace", "namespace_state", "operation", "service_name"),
    COUNT_BUCKETS,
)


def workflow_closed(
    outcome: str, namespace: str, task_queue: str, workflow_type: str, events: int, size: int
) -> None:
    """A run closed: `outcome` is a key of OUTCOMES; its history's final length and size."""
    if not _enabled:
        return
    OUTCOMES[outcome].labels(
        namespace, ACTIVE, "CompletionStats", "history", task_queue, workflow_type
    ).inc()
    history_count.labels(namespace, "CompletionStats", "history").observe(events)
    history_size.labels(namespace, "CompletionStats", "history").observe(size)


class TransitionMetrics(NamedTuple):
    state_transitions: Observe
    history_count: Observe
    history_size: Observe


@_cached
def transition(namespace: str) -> TransitionMetrics:
    """Observed on every committed transition of an execution (the reference's
    `WorkflowContext` and `ExecutionStats`)."""
    if not _enabled:
        return TransitionMetrics(NOOP, NOOP, NOOP)
    return TransitionMetrics(
        state_transition_count.labels(namespace, ACTIVE, "WorkflowContext", "history"),
        history_count.labels(namespace, "ExecutionStats", "history"),
        history_size.labels(namespace, "ExecutionStats", "history"),
    )


# ---- history: the execution cache and lock ------------------------------------------------
CACHE_LABELS = ("cache_type", "namespace_id", "operation", "service_name")
cache_requests = _counter("cache_requests", CACHE_LABELS)
cache_miss = _counter("cache_miss", CACHE_LABELS)
cache_latency = _histogram("cache_latency", CACHE_LABELS)
lock_requests = _counter("lock_requests", ("operation", "service_name"))
lock_latency = _histogram("lock_latency", ("operation", "service_name"))


class CacheMetrics(NamedTuple):
    requests: Count
    misses: Count
    latency: Observe
    lock_requests: Count
    lock_latency: Observe


@_cached
def execution_cache(namespace_id: str) -> CacheMetrics:
    """Getting an execution from the mutable-state cache (a miss loads it from the store), and
    the wait for its lock."""
    if not _enabled:
        return CacheMetrics(NOOP, NOOP, NOOP, NOOP, NOOP)
    cache = ("mutablestate", namespace_id, "HistoryCacheGetOrCreate", "history")
    return CacheMetrics(
        cache_requests.labels(*cache),
        cache_miss.labels(*cache),
        cache_latency.labels(*cache),
        lock_requests.labels("WorkflowContext", "history"),
        lock_latency.labels("WorkflowContext", "history"),
    )


# ---- history: timer and transfer tasks -----------------------------------------------------
TASK_LABELS = ("archetype", "namespace", "operation", "service_name", "task_priority", "task_type")
TASK_LABELS_NO_PRIORITY = ("archetype", "namespace", "operation", "service_name", "task_type")
task_requests = _counter("task_requests", TASK_LABELS)
task_errors = _counter("task_errors", TASK_LABELS)
task_latency = _histogram("task_latency", TASK_LABELS)
task_latency_processing = _histogram("task_latency_processing", TASK_LABELS_NO_PRIORITY)
task_latency_queue = _histogram(
    "task_latency_queue",
    ("archetype", "namespace", "operation", "queue_reader_id", "service_name", "task_priority")
    + ("task_type",),
)
task_attempt = _histogram("task_attempt", TASK_LABELS_NO_PRIORITY, COUNT_BUCKETS)


class TaskMetrics(NamedTuple):
    requests: Count
    errors: Count
    latency: Observe
    processing: Observe
    queue: Observe
    attempts: Observe


@_cached
def task(namespace: str, task_type: str, priority: str) -> TaskMetrics:
    """The metrics of one kind of history task (`task_type` as the reference names it, such as
    `TimerActiveTaskUserTimer`; `priority` "high" or "low")."""
    if not _enabled:
        return TaskMetrics(NOOP, NOOP, NOOP, NOOP, NOOP, NOOP)
    labels = ("workflow", namespace, task_type, "history", priority, task_type)
    unprioritized = ("workflow", namespace, task_type, "history", task_type)
    return TaskMetrics(
        task_requests.labels(*labels),
        task_errors.labels(*labels),
        task_latency.labels(*labels),
        task_latency_processing.labels(*unprioritized),
        task_latency_queue.labels(
            "workflow", namespace, task_type, "0", "history", priority, task_type
        ),
        task_attempt.labels(*unprioritized),
    )


# ---- history: shards -----------------------------------------------------------------------
sharditem_created_count = _counter("sharditem_created_count", ("operation", "service_name"))
sharditem_removed_count = _counter("sharditem_removed_count", ("operation", "service_name"))
sharditem_acquisition_latency = _histogram(
    "sharditem_acquisition_latency", ("operation", "service_name")
)


def shard_acquired(latency: float) -> None:
    if _enabled:
        sharditem_created_count.labels("ShardController", "history").inc()
        sharditem_acquisition_latency.labels("ShardController", "history").observe(latency)


def shard_released() -> None:
    if _enabled:
        sharditem_removed_count.labels("ShardController", "history").inc()


# Tasks a shard's sweep found in the store but not in this process's queues (none expected).
tasks_swept = _counter("aion_tasks_swept", ("service_name",))


def swept(count: int) -> None:
    if _enabled:
        tasks_swept.labels("history").inc(count)


# ---- history: replication between clusters (the receiver's side) ------------------------
REPLICATION_LABELS = ("namespace", "service_name", "source_cluster")
replication_tasks_applied = _counter("replication_tasks_applied", REPLICATION_LABELS)
replication_tasks_failed = _counter("replication_tasks_failed", REPLICATION_LABELS)
replication_latency = _histogram("replication_latency", REPLICATION_LABELS)


def replication_applied(namespace_id: str, source_cluster: str, latency: float) -> None:
    """A replicated transition applied, `latency` seconds after the source wrote it."""
    if _enabled:
        labels = (namespace_name(namespace_id), "history", source_cluster)
        replication_tasks_applied.labels(*labels).inc()
        replication_latency.labels(*labels).observe(latency)


def replication_failed(namespace_id: str, source_cluster: str) -> None:
    if _enabled:
        replication_tasks_failed.labels(
            namespace_name(namespace_id), "history", source_cluster
        ).inc()


# `replication_dlq_non_empty` (a gauge read at each scrape): 1 per source cluster whose tasks
# wait in this cluster's replication DLQ, else 0. The reference's is a counter bumped by each
# periodic check that finds a shard's DLQ non-empty; its operation is this one.
REPLICATION_DLQ_LABELS = ("operation", "service_name", "source_cluster")
REPLICATION_DLQ_OPERATION = "ReplicationDLQStats"
# ---- namespace failover ------------------------------------------------------------------
handover_wait_latency = _histogram(
    "handover_wait_latency", ("namespace", "operation", "service_name")
)
namespace_failovers = _counter("namespace_failovers", ("namespace", "mode", "outcome"))


def handover_waited(namespace: str, operation: str, seconds: float) -> None:
    """How long a call (held by the frontend) or a graceful failover (waiting for the target's
    acknowledgements: operation `NamespaceFailover`) waited on a namespace's handover."""
    if _enabled:
        handover_wait_latency.labels(namespace, operation, "frontend").observe(seconds)


def namespace_failover(namespace: str, mode: str, outcome: str) -> None:
    """A failover of `mode` (graceful, forced) ended with `outcome` (done, timed_out, failed)."""
    if _enabled:
        namespace_failovers.labels(namespace, mode, outcome).inc()


# ---- Aion's own (not in the reference) ---------------------------------------------------
event_loop_lag = _histogram("aion_event_loop_lag", ("service_name",))
group_commit_batch_size = _histogram(
    "aion_group_commit_batch_size", ("service_name",), COUNT_BUCKETS
)
group_commit_latency = _histogram("aion_group_commit_latency", ("service_name",))


def group_commit(batch_size: int, latency: float) -> None:
    """One group-commit flush: how many transitions went in one database transaction, and how
    long it took."""
    if _enabled:
        group_commit_batch_size.labels("history").observe(batch_size)
        group_commit_latency.labels("history").observe(latency)


# ---- gauges read when scraped ------------------------------------------------------------
GaugeRows = Callable[[], Iterable[tuple[tuple[str, ...], float]]]


class _ReadGauge(Collector):
    """A gauge whose samples a function computes at each scrape (label values, value)."""

    def __init__(self, name: str, labels: tuple[str, ...], rows: GaugeRows) -> None:
        self.name, self.labels, self.rows = name, labels, rows

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, f"{self.name} gauge", labels=self.labels)
        for values, value in self.rows():
            family.add_metric(values, value)
        yield family


_read_gauges: dict[str, _ReadGauge] = {}


def read_gauge(name: str, labels: tuple[str, ...], rows: GaugeRows) -> None:
    """Register (or replace) a gauge computed by `rows` at each scrape."""
    old = _read_gauges.pop(name, None)
    if old is not None:
        REGISTRY.unregister(old)
    _read_gauges[name] = _ReadGauge(name, labels, rows)
    REGISTRY.register(_read_gauges[name])


BACKLOG_COUNT_LABELS = QUEUE_LABELS[:5] + ("task_priority",) + QUEUE_LABELS[5:]

build_information = Gauge(
    "build_information",
    "build_information gauge",
    ("build_date", "build_platform", "build_version", "git_revision", "go_version", "service_name"),
    registry=REGISTRY,
)
for _service in ("frontend", "history", "matching", "worker"):
    # go_version carries the Python version: the label is the reference's.
    build_information.labels(
        "", platform.machine(), __version__, "", f"python{platform.python_version()}", _service
    ).set(1)
