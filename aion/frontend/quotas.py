"""Requests per second and requests in flight at the frontend, per namespace and per process,
as the reference limits them (docs/security.md, "Limits per namespace"; docs/reliability.md,
"Overload").

Every WorkflowService call of a known namespace takes a token from that namespace's bucket, then
one from the process's; without one it answers RESOURCE_EXHAUSTED (cause RPS_LIMIT, scope
NAMESPACE or SYSTEM) with the reference's message, and the SDK retries it. Calls fall in two
classes with their own rates, execution and visibility (list, count, scan), and inside a class
in priority levels (`EXECUTION_PRIORITY`): a call spends the budget of every lower level, so
starts, signals and task completions go ahead of polls when a namespace is at its limit.

Before the rates, two bounds on calls in flight: the long-running calls (polls, queries,
updates: `LONG_RUNNING`) of one namespace and method (`frontend.namespaceCount`; cause
CONCURRENT_LIMIT, scope NAMESPACE), and every other call of the process (Aion's
`aion.maxInFlightRequests`; cause SYSTEM_OVERLOADED, scope SYSTEM), so that a burst past what
the process can serve is refused at once instead of queueing without bound.

A call refused for its namespace's rate is answered after a short hold (Aion's
`aion.namespaceRefusalHoldMillis`): a client that retries at once, ignoring RESOURCE_EXHAUSTED,
then makes a few calls a second instead of thousands, and its refusals no longer take the
process's time from the other namespaces' calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import failed_cause_pb2 as enums_pb
from temporalio.api.errordetails.v1 import message_pb2 as details_pb

from aion import errors
from aion.common.quotas import PriorityBuckets, check_constrained_value, constrained_value

# The reference's dynamic config keys, with their defaults (per process, per namespace unless
# "global": for the whole cluster, shared evenly among its processes, and then overriding the
# per-process value when above 0).
NAMESPACE_RPS = "frontend.namespaceRPS"
NAMESPACE_BURST_RATIO = "frontend.namespaceBurstRatio"
GLOBAL_NAMESPACE_RPS = "frontend.globalNamespaceRPS"
NAMESPACE_COUNT = "frontend.namespaceCount"
GLOBAL_NAMESPACE_COUNT = "frontend.globalNamespaceCount"
VISIBILITY_RPS = "frontend.namespaceRPS.visibility"
VISIBILITY_BURST_RATIO = "frontend.namespaceBurstRatio.visibility"
GLOBAL_VISIBILITY_RPS = "frontend.globalNamespaceRPS.visibility"
NAMESPACE_DEFAULTS: dict[str, int | float] = {
    NAMESPACE_RPS: 2400,
    NAMESPACE_BURST_RATIO: 2.0,
    GLOBAL_NAMESPACE_RPS: 0,
    VISIBILITY_RPS: 10,
    VISIBILITY_BURST_RATIO: 1.0,
    GLOBAL_VISIBILITY_RPS: 0,
    NAMESPACE_COUNT: 1200,
    GLOBAL_NAMESPACE_COUNT: 0,
}
# The whole process (every namespace, and calls without one); burst twice the rate.
PROCESS_RPS = "frontend.rps"
GLOBAL_RPS = "frontend.globalRPS"
MAX_IN_FLIGHT = "aion.maxInFlightRequests"  # Aion's own
REFUSAL_HOLD_MS = "aion.namespaceRefusalHoldMillis"  # Aion's own
PROCESS_DEFAULTS: dict[str, int] = {
    PROCESS_RPS: 2400,
    GLOBAL_RPS: 0,
    MAX_IN_FLIGHT: 2000,
    REFUSAL_HOLD_MS: 100,
}
# Refusals held at once per namespace; past it (a flood of concurrent calls rather than one of
# retries) they are answered at once, so that holding them costs a bounded amount of memory.
MAX_HELD_REFUSALS = 200
# A held refusal is answered this long before the call's deadline at the latest (or at half the
# time left, if that is sooner), so that a busy server still answers RESOURCE_EXHAUSTED before
# the caller's deadline passes.
HOLD_DEADLINE_MARGIN_S = 0.05
PROCESS_BURST_RATIO = 2.0
# What the reference's dev server (`temporal server start-dev`) raises.
DEV_SERVER_DEFAULTS: dict[str, int] = {VISIBILITY_RPS: 100}


def check_value(key: str, value: Any) -> str | None:
    """Why `value` is not valid for quota `key` (None: it is)."""
    if key in PROCESS_DEFAULTS:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        return None
    return check_constrained_value(value, type(NAMESPACE_DEFAULTS[key]), ("namespace",))


# Priority levels of the execution class (0 first), as the reference orders them: system
# calls, then starts / signals / updates and the progress of tasks, then changes of state,
# then reads, then failures of tasks, then polls; last, long polls of a history.
_EXECUTION_LEVELS: tuple[list[str], ...] = (
    [
        "GetClusterInfo",
        "GetSystemInfo",
        "GetSearchAttributes",
        "DescribeNamespace",
        "ListNamespaces",
        "DeprecateNamespace",
    ],
    [
        "SignalWorkflowExecution",
        "SignalWithStartWorkflowExecution",
        "StartWorkflowExecution",
        "UpdateWorkflowExecution",
        "ExecuteMultiOperation",
        "CreateSchedule",
        "StartBatchOperation",
        "StartActivityExecution",
        "StartNexusOperationExecution",
        "RecordActivityTaskHeartbeat",
        "RecordActivityTaskHeartbeatById",
        "RespondActivityTaskCompleted",
        "RespondActivityTaskCompletedById",
        "RespondWorkflowTaskCompleted",
        "RespondQueryTaskCompleted",
        "RespondNexusTaskCompleted",
        "RegisterNamespace",
        "UpdateNamespace",
    ],
    [
        "RequestCancelWorkflowExecution",
        "TerminateWorkflowExecution",
        "ResetWorkflowExecution",
        "DeleteWorkflowExecution",
        "GetWorkflowExecutionHistory",
        "UpdateSchedule",
        "PatchSchedule",
        "DeleteSchedule",
        "StopBatchOperation",
        "UpdateActivityOptions",
        "PauseActivity",
        "UnpauseActivity",
        "ResetActivity",
        "UpdateActivityExecutionOptions",
        "PauseActivityExecution",
        "UnpauseActivityExecution",
        "ResetActivityExecution",
        "UpdateWorkflowExecutionOptions",
        "SetCurrentDeployment",
        "CreateWorkerDeployment",
        "CreateWorkerDeploymentVersion",
        "UpdateWorkerDeploymentVersionComputeConfig",
        "SetWorkerDeploymentCurrentVersion",
        "SetWorkerDeploymentRampingVersion",
        "SetWorkerDeploymentManager",
        "DeleteWorkerDeployment",
        "DeleteWorkerDeploymentVersion",
        "UpdateWorkerDeploymentVersionMetadata",
        "CreateWorkflowRule",
        "DescribeWorkflowRule",
        "DeleteWorkflowRule",
        "ListWorkflowRules",
        "TriggerWorkflowRule",
        "UpdateTaskQueueConfig",
        "RequestCancelActivityExecution",
        "TerminateActivityExecution",
        "DeleteActivityExecution",
        "RequestCancelNexusOperationExecution",
        "TerminateNexusOperationExecution",
        "DeleteNexusOperationExecution",
        "PauseWorkflowExecution",
        "UnpauseWorkflowExecution",
        "UpdateWorkerBuildIdCompatibility",
        "UpdateWorkerVersioningRules",
    ],
    [
        "DescribeWorkflowExecution",
        "DescribeActivityExecution",
        "DescribeTaskQueue",
        "GetWorkerBuildIdCompatibility",
        "GetWorkerVersioningRules",
        "ListTaskQueuePartitions",
        "QueryWorkflow",
        "DescribeSchedule",
        "ListScheduleMatchingTimes",
        "DescribeBatchOperation",
        "DescribeDeployment",
        "GetCurrentDeployment",
        "DescribeWorkerDeploymentVersion",
        "DescribeWorkerDeployment",
        "DescribeNexusOperationExecution",
        "ValidateWorkerDeploymentVersionComputeConfig",
        "ListWorkers",
        "DescribeWorker",
        "CountWorkers",
        "RespondActivityTaskCanceled",
        "RespondActivityTaskCanceledById",
        "RespondActivityTaskFailed",
        "RespondActivityTaskFailedById",
        "RespondWorkflowTaskFailed",
        "RespondNexusTaskFailed",
    ],
    [
        "PollNexusOperationExecution",
        "PollActivityExecution",
        "PollWorkflowTaskQueue",
        "PollActivityTaskQueue",
        "PollWorkflowExecutionUpdate",
        "PollNexusTaskQueue",
        "ResetStickyTaskQueue",
        "ShutdownWorker",
        "GetWorkflowExecutionHistoryReverse",
        "RecordWorkerHeartbeat",
        "FetchWorkerConfig",
        "UpdateWorkerConfig",
    ],
    ["PollWorkflowExecutionTimeSkipping"],
)
EXECUTION_PRIORITY: dict[str, int] = {
    method: level for level, methods in enumerate(_EXECUTION_LEVELS) for method in methods
}
# A history long poll (GetWorkflowExecutionHistory waiting for new events) comes last.
HISTORY_LONG_POLL_PRIORITY = len(_EXECUTION_LEVELS) - 1
# The visibility class: lists and counts first, then what else reads visibility.
VISIBILITY_PRIORITY: dict[str, int] = {
    **dict.fromkeys(
        [
            "CountWorkflowExecutions",
            "ScanWorkflowExecutions",
            "ListOpenWorkflowExecutions",
            "ListClosedWorkflowExecutions",
            "ListWorkflowExecutions",
            "ListArchivedWorkflowExecutions",
            "CountActivityExecutions",
            "ListActivityExecutions",
            "CountNexusOperationExecutions",
            "ListNexusOperationExecutions",
        ],
        0,
    ),
    **dict.fromkeys(
        [
            "GetWorkerTaskReachability",
            "ListSchedules",
            "CountSchedules",
            "ListBatchOperations",
            "ListDeployments",
            "GetDeploymentReachability",
            "ListWorkerDeployments",
        ],
        1,
    ),
}
VISIBILITY_LEVELS = 2
# Calls in neither class (none of the namespace's work) are not limited.

# Calls that wait (for a task, a workflow task, new events): counted per namespace and method.
LONG_RUNNING = frozenset(
    {
        "PollActivityTaskQueue",
        "PollWorkflowTaskQueue",
        "PollWorkflowExecutionUpdate",
        "PollNexusTaskQueue",
        "PollNexusOperationExecution",
        "PollWorkflowExecutionTimeSkipping",
        "PollActivityExecution",
        "QueryWorkflow",
        "UpdateWorkflowExecution",
        "DescribeNexusOperationExecution",
        "GetWorkflowExecutionHistory",  # when it waits for new events
        "DescribeActivityExecution",
        "ExecuteMultiOperation",
    }
)


def _exhausted(
    message: str,
    cause: enums_pb.ResourceExhaustedCause.ValueType,
    scope: enums_pb.ResourceExhaustedScope.ValueType,
) -> errors.ResourceExhausted:
    return errors.ResourceExhausted(
        message, details_pb.ResourceExhaustedFailure(cause=cause, scope=scope)
    )


RPS_LIMIT = enums_pb.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT
CONCURRENT_LIMIT = enums_pb.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT
SYSTEM_OVERLOADED = enums_pb.RESOURCE_EXHAUSTED_CAUSE_SYSTEM_OVERLOADED
NAMESPACE_SCOPE = enums_pb.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE
SYSTEM_SCOPE = enums_pb.RESOURCE_EXHAUSTED_SCOPE_SYSTEM
NAMESPACE_LIMIT_EXCEEDED = "namespace rate limit exceeded"
SERVICE_LIMIT_EXCEEDED = "service rate limit exceeded"
CONCURRENT_LIMIT_EXCEEDED = "namespace concurrent poller limit exceeded"
OVERLOADED = "too many requests in flight on this frontend; retry later"


def is_long_running(method: str, request: Any) -> bool:
    if method == "GetWorkflowExecutionHistory":
        return bool(request.wait_new_event)
    return method in LONG_RUNNING


def classify(method: str, request: Any) -> tuple[bool, int] | None:
    """(visibility class?, priority) of a call; None when it is not limited."""
    if method == "GetWorkflowExecutionHistory" and request.wait_new_event:
        return False, HISTORY_LONG_POLL_PRIORITY
    if method == "DescribeTaskQueue" and request.report_task_reachability:
        return True, 1
    if method in VISIBILITY_PRIORITY:
        return True, VISIBILITY_PRIORITY[method]
    if method in EXECUTION_PRIORITY:
        return False, EXECUTION_PRIORITY[method]
    return None


@dataclass
class _Buckets:
    """The buckets of one namespace (or of the process): execution and visibility."""

    execution: PriorityBuckets
    visibility: PriorityBuckets
    members: int  # the cluster's size their rates were set for

    def allow(self, visibility: bool, priority: int) -> bool:
        return (self.visibility if visibility else self.execution).allow(priority)


@dataclass
class FrontendQuotas:
    """The frontend's limits, from the dynamic config (`admit`, around each call)."""

    dynamic_config: dict[str, Any]
    known: Callable[[str], bool]
    """Is this a namespace of the server? Others get no bucket (their calls fail anyway)."""
    members: Callable[[], int] = lambda: 1
    """How many processes serve the cluster (global limits are shared evenly among them)."""
    _namespaces: dict[str, _Buckets] = field(default_factory=dict)
    _process: _Buckets | None = None
    _long_running: Counter[tuple[str, str]] = field(default_factory=Counter)
    _in_flight: int = 0
    _held: Counter[str] = field(default_factory=Counter)

    @contextlib.contextmanager
    def admit(self, method: str, request: Any) -> Iterator[None]:
        """Count the call in flight while it runs and take its token, else raise
        RESOURCE_EXHAUSTED."""
        namespace = getattr(request, "namespace", "")
        known = bool(namespace) and self.known(namespace)
        members = max(1, self.members())
        if is_long_running(method, request):
            key = (namespace, method)
            self._long_running[key] += 1
            release: Callable[[], None] = functools.partial(self._release_long_running, key)
            if known and self._long_running[key] > self._count_quota(namespace, members):
                release()
                raise _exhausted(CONCURRENT_LIMIT_EXCEEDED, CONCURRENT_LIMIT, NAMESPACE_SCOPE)
        else:
            self._in_flight += 1
            release = self._release_in_flight
            if self._in_flight > self.dynamic_config.get(
                MAX_IN_FLIGHT, PROCESS_DEFAULTS[MAX_IN_FLIGHT]
            ):
                release()
                raise _exhausted(OVERLOADED, SYSTEM_OVERLOADED, SYSTEM_SCOPE)
        try:
            self._take_token(method, request, namespace if known else "", members)
            yield
        finally:
            release()

    async def hold_refusal(
        self, namespace: str, error: errors.ResourceExhausted, time_remaining: float | None
    ) -> None:
        """Wait a little before `error` is answered if it refuses a call for its namespace's
        rate (not for the process's or for calls in flight, which every namespace shares)."""
        details = error.details
        if not (
            isinstance(details, details_pb.ResourceExhaustedFailure)
            and details.cause == RPS_LIMIT
            and details.scope == NAMESPACE_SCOPE
            and self._held[namespace] < MAX_HELD_REFUSALS
        ):
            return
        hold = self.dynamic_config.get(REFUSAL_HOLD_MS, PROCESS_DEFAULTS[REFUSAL_HOLD_MS]) / 1000
        if time_remaining is not None:
            hold = min(hold, time_remaining - max(HOLD_DEADLINE_MARGIN_S, time_remaining / 2))
        if hold <= 0:
            return
        self._held[namespace] += 1
        try:
            await asyncio.sleep(hold)
        finally:
            self._held[namespace] -= 1
            if not self._held[namespace]:
                del self._held[namespace]

    def _release_long_running(self, key: tuple[str, str]) -> None:
        self._long_running[key] -= 1
        if not self._long_running[key]:
            del self._long_running[key]

    def _release_in_flight(self) -> None:
        self._in_flight -= 1

    def _take_token(self, method: str, request: Any, namespace: str, members: int) -> None:
        kind = classify(method, request)
        if kind is None:
            return
        if namespace:
            buckets = self._namespaces.get(namespace)
            if buckets is None or buckets.members != members:
                buckets = self._namespaces[namespace] = self._namespace_buckets(namespace, members)
            if not buckets.allow(*kind):
                raise _exhausted(NAMESPACE_LIMIT_EXCEEDED, RPS_LIMIT, NAMESPACE_SCOPE)
        if self._process is None or self._process.members != members:
            self._process = self._process_buckets(members)
        if not self._process.allow(*kind):
            raise _exhausted(SERVICE_LIMIT_EXCEEDED, RPS_LIMIT, SYSTEM_SCOPE)

    def _count_quota(self, namespace: str, members: int) -> float:
        return self._shared(NAMESPACE_COUNT, GLOBAL_NAMESPACE_COUNT, namespace, members)

    def _setting(self, key: str, namespace: str) -> float:
        value = constrained_value(self.dynamic_config.get(key), namespace=namespace)
        return float(NAMESPACE_DEFAULTS[key] if value is None else value)

    def _shared(self, per_process: str, global_: str, namespace: str, members: int) -> float:
        shared = self._setting(global_, namespace)
        return shared / members if shared > 0 else self._setting(per_process, namespace)

    def _namespace_buckets(self, namespace: str, members: int) -> _Buckets:
        execution = self._shared(NAMESPACE_RPS, GLOBAL_NAMESPACE_RPS, namespace, members)
        visibility = self._shared(VISIBILITY_RPS, GLOBAL_VISIBILITY_RPS, namespace, members)
        execution_burst = execution * max(1.0, self._setting(NAMESPACE_BURST_RATIO, namespace))
        visibility_burst = visibility * max(1.0, self._setting(VISIBILITY_BURST_RATIO, namespace))
        return _Buckets(
            PriorityBuckets(len(_EXECUTION_LEVELS), execution, execution_burst),
            PriorityBuckets(VISIBILITY_LEVELS, visibility, visibility_burst),
            members,
        )

    def _process_buckets(self, members: int) -> _Buckets:
        shared = float(self.dynamic_config.get(GLOBAL_RPS, PROCESS_DEFAULTS[GLOBAL_RPS]))
        rate = (
            shared / members
            if shared > 0
            else float(self.dynamic_config.get(PROCESS_RPS, PROCESS_DEFAULTS[PROCESS_RPS]))
        )
        burst = rate * PROCESS_BURST_RATIO
        return _Buckets(
            PriorityBuckets(len(_EXECUTION_LEVELS), rate, burst),
            PriorityBuckets(VISIBILITY_LEVELS, rate, burst),
            members,
        )
