"""The data model of one execution: `ExecutionState` and the records of its pending work.

`ExecutionState` is the persisted snapshot. `snapshot`/`restore` encode it as JSON by field name
(no module paths), so these classes may move between modules without breaking old snapshots, and
fields added later decode to their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from aion.common import codec

Status = workflow_pb2.WorkflowExecutionStatus

# Closed unsuccessfully: what ALLOW_DUPLICATE_FAILED_ONLY lets a new run replace.
FAILED_STATUSES = {
    Status.WORKFLOW_EXECUTION_STATUS_FAILED,
    Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
    Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}


@dataclass
class ActivityInfo:
    """A scheduled activity; retries happen here without history events until it closes."""

    scheduled_event_id: int
    activity_id: str
    activity_type: str
    task_queue: str
    schedule_to_close_ns: int
    schedule_to_start_ns: int
    start_to_close_ns: int
    heartbeat_ns: int
    scheduled_time_ns: int
    retry_policy: common_pb.RetryPolicy | None = None
    input: common_pb.Payloads | None = None
    header: common_pb.Header | None = None
    attempt: int = 1
    attempt_scheduled_time_ns: int = 0
    started_time_ns: int = 0
    started_identity: str = ""
    started_request_id: str = ""
    heartbeat_details: common_pb.Payloads | None = None
    last_heartbeat_ns: int = 0
    cancel_requested: bool = False
    cancel_requested_event_id: int = 0
    last_failure: failure_pb.Failure | None = None
    last_worker_identity: str = ""
    stamp: int = 0  # bumped per attempt: tasks and timers of an older attempt are stale
    heartbeat_timer_ns: int = 0
    # Paused (PauseActivity): no new attempt is dispatched and no timeout fires until unpaused.
    paused: bool = False
    pause_time_ns: int = 0
    pause_identity: str = ""
    pause_reason: str = ""
    pause_request_id: str = ""
    # ResetActivity while an attempt runs: its heartbeats answer activity_reset.
    reset_requested: bool = False
    reset_heartbeats: bool = False  # the next attempt starts without heartbeat details


@dataclass
class TimerInfo:
    timer_id: str
    started_event_id: int
    expiry_time_ns: int


@dataclass
class WorkflowTaskInfo:
    scheduled_event_id: int
    attempt: int
    task_queue: str
    sticky: bool
    scheduled_time_ns: int
    timeout_ns: int
    started_event_id: int = 0
    started_time_ns: int = 0
    request_id: str = ""
    identity: str = ""
    stamp: int = 0
    # Scheduled to deliver updates: its events are written only if it changes the workflow.
    speculative: bool = False

    @property
    def is_virtual(self) -> bool:
        """Its scheduled/started events are not in history (a retry, or speculative)."""
        return self.attempt > 1 or self.speculative


@dataclass
class ParentInfo:
    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    initiated_event_id: int


@dataclass
class ChildInfo:
    """A child workflow from its initiation until it closes (or its start fails)."""

    initiated_event_id: int
    namespace: str
    namespace_id: str
    workflow_id: str
    workflow_type: str
    parent_close_policy: int
    create_request_id: str
    run_id: str = ""
    started_event_id: int = 0


@dataclass
class ExternalRequest:
    """A signal or cancel request to another workflow, pending until it is delivered."""

    initiated_event_id: int
    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    request_id: str
    child_workflow_only: bool = False


def external_request(
    run_id: str,
    event_id: int,
    attrs: history_pb.SignalExternalWorkflowExecutionInitiatedEventAttributes
    | history_pb.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
) -> ExternalRequest:
    """The pending request an *ExternalWorkflowExecutionInitiated event stands for."""
    return ExternalRequest(
        initiated_event_id=event_id,
        namespace=attrs.namespace,
        namespace_id=attrs.namespace_id,
        workflow_id=attrs.workflow_execution.workflow_id,
        run_id=attrs.workflow_execution.run_id,
        request_id=f"{run_id}:{event_id}",
        child_workflow_only=attrs.child_workflow_only,
    )


@dataclass
class VersionHistoryItem:
    event_id: int
    version: int


@dataclass
class UpdateRecord:
    """What the execution state keeps of an update in history: pointers to its events. An
    update admitted durably (re-applied after a conflict between clusters) has its admitted
    event before it is accepted; any other is recorded once accepted."""

    accepted_event_id: int = 0
    completed_event_id: int = 0
    admitted_event_id: int = 0


@dataclass
class ExecutionState:
    """The persisted snapshot of one execution."""

    namespace_id: str
    namespace: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    start_time_ns: int
    execution_time_ns: int
    run_timeout_ns: int
    execution_timeout_ns: int
    task_timeout_ns: int
    start_request_id: str
    first_run_id: str
    status: int = Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    # A replicated run that lost to the workflow id's current run (Temporal's zombie state):
    # kept, status running, but not current and running no tasks.
    zombie: bool = False
    close_time_ns: int = 0
    next_event_id: int = 1
    last_completed_wt_started_event_id: int = 0
    last_event_task_id: int = 0
    history_size_bytes: int = 0
    failover_version: int = 0
    memo: common_pb.Memo | None = None
    search_attributes: common_pb.SearchAttributes | None = None
    sticky_task_queue: str = ""
    sticky_schedule_to_start_ns: int = 0
    cancel_requested: bool = False
    workflow_task: WorkflowTaskInfo | None = None
    activities: dict[int, ActivityInfo] = field(default_factory=dict)
    activity_ids: dict[str, int] = field(default_factory=dict)
    timers: dict[str, TimerInfo] = field(default_factory=dict)
    buffered_events: list[history_pb.HistoryEvent] = field(default_factory=list)
    version_history: list[VersionHistoryItem] = field(default_factory=list)
    completion_event_id: int = 0
    stamp_counter: int = 0
    next_workflow_task_attempt: int = 1
    attempt: int = 1
    retry_policy: common_pb.RetryPolicy | None = None
    cron_schedule: str = ""
    expiration_time_ns: int = 0
    parent: ParentInfo | None = None
    root_workflow_id: str = ""
    root_run_id: str = ""
    children: dict[int, ChildInfo] = field(default_factory=dict)
    signal_requests: dict[int, ExternalRequest] = field(default_factory=dict)
    cancel_requests: dict[int, ExternalRequest] = field(default_factory=dict)
    last_completion_result: common_pb.Payloads | None = None
    input: common_pb.Payloads | None = None
    header: common_pb.Header | None = None
    reset_points: list[workflow_pb.ResetPointInfo] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    signal_count: int = 0  # signals received (history.maximumSignalsPerExecution)
    updates: dict[str, UpdateRecord] = field(default_factory=dict)
    # Worker Versioning, from the last completed workflow task of a versioned worker.
    versioning_behavior: int = 0  # VersioningBehavior
    deployment_name: str = ""
    deployment_build_id: str = ""
    versioning_revision: int = 0
    worker_deployment_name: str = ""  # also set by workers with versioning off
    versioning_override: workflow_pb.VersioningOverride | None = None  # the v32 form only
    use_ramping_version: bool = False  # until a versioned worker completes a task
    used_deployment_versions: list[str] = field(default_factory=list)

    def new_stamp(self) -> int:
        """A fresh stamp: tasks and timers carrying an older one are stale."""
        self.stamp_counter += 1
        return self.stamp_counter


def snapshot(state: ExecutionState) -> bytes:
    """The bytes the store keeps for `state`."""
    return codec.encode(state)


def restore(data: bytes) -> ExecutionState:
    """An `ExecutionState` from `snapshot` bytes (older snapshots included)."""
    return codec.decode(ExecutionState, data)
