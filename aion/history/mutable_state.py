"""`MutableState`: the one owner of an execution's state and the only code that appends events.

State lives in `ExecutionState` (a serializable dataclass snapshot). Every change goes through a
method here that appends the matching history event and records the durable tasks it implies in
`Mutation`, which the engine commits in one transaction.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.deployment.v1 import message_pb2 as deployment_pb
from temporalio.api.enums.v1 import deployment_pb2 as deployment_enums
from temporalio.api.enums.v1 import event_type_pb2, task_queue_pb2, workflow_pb2
from temporalio.api.enums.v1 import failed_cause_pb2 as cause_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.protocol.v1 import message_pb2 as protocol_pb
from temporalio.api.sdk.v1 import user_metadata_pb2 as sdk_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb
from temporalio.api.update.v1 import message_pb2 as update_pb
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from aion.common import codec
from aion.common.timeutil import dur, ns_of, ts
from aion.common.versions import RAMPING_VERSION, version_key
from aion.history.updates import (
    Update,
    UpdateAborted,
    UpdateRecord,
    UpdateRegistry,
    aborted_by_close,
    workflow_closed_failure,
)
from aion.persistence import QueueTask, TimerTask
from aion.visibility.search_attributes import keyword_payload

ET = event_type_pb2.EventType
Status = workflow_pb2.WorkflowExecutionStatus
TimeoutType = workflow_pb2.TimeoutType
RetryState = workflow_pb2.RetryState

# Events that arrive from outside the workflow task while one is in flight wait in a buffer and
# are written after the task's own events, as Temporal does.
UNBUFFERED_EVENT_TYPES = {
    ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    ET.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    ET.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    ET.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
    ET.EVENT_TYPE_TIMER_STARTED,
    ET.EVENT_TYPE_TIMER_CANCELED,
    ET.EVENT_TYPE_MARKER_RECORDED,
    ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    ET.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
}

MAX_RESET_POINTS = 20
BUFFERED_EVENT_ID = -123  # stands for an event id while its event waits in the buffer
CHILD_CLOSED_EVENT_TYPES = {
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
}
PARENT_CLOSE_POLICY_ABANDON = workflow_pb2.PARENT_CLOSE_POLICY_ABANDON

# Closed unsuccessfully: what ALLOW_DUPLICATE_FAILED_ONLY lets a new run replace.
FAILED_STATUSES = {
    Status.WORKFLOW_EXECUTION_STATUS_FAILED,
    Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
    Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}


# Timer task kinds.
USER_TIMER = "user_timer"
ACTIVITY_TIMEOUT = "activity_timeout"
ACTIVITY_RETRY = "activity_retry"
WORKFLOW_TASK_TIMEOUT = "workflow_task_timeout"
WORKFLOW_RUN_TIMEOUT = "workflow_run_timeout"
WORKFLOW_EXECUTION_TIMEOUT = "workflow_execution_timeout"
WORKFLOW_BACKOFF = "workflow_backoff"
# Transfer tasks: timer tasks due at once that act on another execution after this commit.
START_CHILD = "start_child"
NOTIFY_PARENT = "notify_parent"
SIGNAL_EXTERNAL = "signal_external"
CANCEL_EXTERNAL = "cancel_external"
APPLY_PARENT_CLOSE_POLICY = "apply_parent_close_policy"
NOTIFY_SCHEDULE = "notify_schedule"
SCHEDULED_BY = "TemporalScheduledById"


VersioningBehavior = workflow_pb2.VersioningBehavior
VERSIONING_SEARCH_ATTRIBUTES = frozenset(
    {
        "TemporalWorkerDeployment",
        "TemporalWorkerDeploymentVersion",
        "TemporalWorkflowVersioningBehavior",
        "TemporalUsedWorkerDeploymentVersions",
    }
)
BEHAVIOR_NAMES: dict[int, str] = {
    VersioningBehavior.VERSIONING_BEHAVIOR_PINNED: "Pinned",
    VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE: "AutoUpgrade",
}


def _workflow_task_retry_delay(attempt: int) -> int:
    """Retried workflow tasks past the third get a longer timeout rather than a delay."""
    if attempt <= 3:
        return 0
    return min(5 * 2 ** (attempt - 4), 600) * 1_000_000_000


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
class Limits:
    """Per-server limits that shape what workflows are told (dynamic config)."""

    suggest_continue_as_new_count: int = 4 * 1024
    suggest_continue_as_new_bytes: int = 4 * 1024 * 1024


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


class _ChildEventCommon(TypedDict):
    """Fields shared by the parent's child-closed events (see `MutableState.child_closed`)."""

    namespace: str
    namespace_id: str
    workflow_execution: common_pb.WorkflowExecution
    workflow_type: common_pb.WorkflowType
    initiated_event_id: int
    started_event_id: int


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


@dataclass
class Mutation:
    """What one transition adds, gathered for the engine to commit."""

    events: list[history_pb.HistoryEvent] = field(default_factory=list)
    timer_tasks: list[TimerTask] = field(default_factory=list)
    queue_tasks: list[QueueTask] = field(default_factory=list)
    done_timer_task_ids: list[int] = field(default_factory=list)
    done_queue_task_ids: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.timer_tasks
            or self.queue_tasks
            or self.done_timer_task_ids
            or self.done_queue_task_ids
        )


class InvalidStateError(Exception):
    """A request does not fit the execution's current state (maps to NOT_FOUND or similar)."""


class MutableState:
    """One execution's state plus the uncommitted mutation of the current transition."""

    def __init__(
        self,
        state: ExecutionState,
        shard_id: int,
        next_task_id: Callable[[], int],
        now: Callable[[], int],
        db_version: int = 0,
    ) -> None:
        self.s = state
        self.shard_id = shard_id
        self.next_task_id = next_task_id
        self.now = now
        self.db_version = db_version
        self.mutation = Mutation()
        self.dirty = False
        self.is_sticky_alive: Callable[[str], bool] = lambda name: True
        # The worker deployment version new work of this workflow on a queue goes to ("" =
        # unversioned pollers), whatever it is pinned to.
        self.routing_target: Callable[[str], str] = lambda task_queue: ""
        # A run this transition creates (continue-as-new, retry, cron); committed together.
        self.new_run: MutableState | None = None
        self.spawn: Callable[[ExecutionState], MutableState] | None = None
        self.limits = Limits()
        self.updates = UpdateRegistry()
        # Run by the engine once this transition has committed (never if it fails).
        self.effects: list[Callable[[], None]] = []

    # ---- serialization -----------------------------------------------------------------
    def snapshot(self) -> bytes:
        return codec.encode(self.s)

    @staticmethod
    def restore(data: bytes) -> ExecutionState:
        return codec.decode(ExecutionState, data)

    # ---- queries on state --------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.s.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING

    @property
    def has_started_workflow_task(self) -> bool:
        wt = self.s.workflow_task
        return wt is not None and wt.started_event_id != 0

    @property
    def has_pending_workflow_task(self) -> bool:
        return self.s.workflow_task is not None

    @property
    def suggests_continue_as_new(self) -> bool:
        return (
            self.s.next_event_id > self.limits.suggest_continue_as_new_count
            or self.s.history_size_bytes > self.limits.suggest_continue_as_new_bytes
        )

    @property
    def deployment_version(self) -> str:
        """The worker deployment version (`dep:build`) it last ran on; "" if unversioned."""
        if not self.s.deployment_name:
            return ""
        return version_key(self.s.deployment_name, self.s.deployment_build_id)

    @property
    def pinned_version(self) -> str:
        """The version all its tasks go to: its override's, or its own when its worker
        declared it PINNED."""
        override = self.s.versioning_override
        if override is not None and override.HasField("pinned"):
            version = override.pinned.version
            return version_key(version.deployment_name, version.build_id)
        if override is not None and override.auto_upgrade:
            return ""
        if self.s.use_ramping_version:
            return RAMPING_VERSION  # as a ramp at 100 % would route it
        if self.s.versioning_behavior != VersioningBehavior.VERSIONING_BEHAVIOR_PINNED:
            return ""
        return self.deployment_version

    def inheritable_search_attributes(self) -> common_pb.SearchAttributes | None:
        """Its search attributes as a next run (continue-as-new, retry, cron) starts with them:
        without those describing the worker deployment this run ran on."""
        attributes = self.s.search_attributes
        if (
            attributes is None
            or not VERSIONING_SEARCH_ATTRIBUTES & attributes.indexed_fields.keys()
        ):
            return attributes
        kept = common_pb.SearchAttributes()
        for name, payload in attributes.indexed_fields.items():
            if name not in VERSIONING_SEARCH_ATTRIBUTES:
                kept.indexed_fields[name].CopyFrom(payload)
        return kept

    def set_versioning_override(
        self, override: workflow_pb.VersioningOverride | None, identity: str
    ) -> bool:
        """UpdateWorkflowExecutionOptions: a new override (None: unset); False if unchanged."""
        if override == self.s.versioning_override:
            return False
        attrs = history_pb.WorkflowExecutionOptionsUpdatedEventAttributes(identity=identity)
        if override is None:
            attrs.unset_versioning_override = True
        else:
            attrs.versioning_override.CopyFrom(override)
        self.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
            "workflow_execution_options_updated_event_attributes",
            attrs,
            worker_may_ignore=True,  # SDKs that do not know the event skip it on replay
        )
        self.s.versioning_override = override
        return True

    def record_deployment(
        self, options: deployment_pb.WorkerDeploymentOptions, behavior: int, revision: int
    ) -> None:
        """A workflow task completed on a worker with these deployment options."""
        self.s.worker_deployment_name = options.deployment_name
        if options.worker_versioning_mode != deployment_enums.WORKER_VERSIONING_MODE_VERSIONED:
            return
        self.s.versioning_behavior = behavior
        self.s.use_ramping_version = False
        self.s.deployment_name = options.deployment_name
        self.s.deployment_build_id = options.build_id
        self.s.versioning_revision = revision
        version = self.deployment_version
        if version not in self.s.used_deployment_versions:
            self.s.used_deployment_versions.append(version)
        attributes = self.s.search_attributes or common_pb.SearchAttributes()
        fields = attributes.indexed_fields
        fields["TemporalWorkerDeployment"].CopyFrom(keyword_payload(options.deployment_name))
        fields["TemporalWorkerDeploymentVersion"].CopyFrom(keyword_payload(version))
        fields["TemporalUsedWorkerDeploymentVersions"].CopyFrom(
            keyword_payload(list(self.s.used_deployment_versions))
        )
        behavior_name = BEHAVIOR_NAMES.get(behavior)
        if behavior_name:
            fields["TemporalWorkflowVersioningBehavior"].CopyFrom(keyword_payload(behavior_name))
        else:
            fields.pop("TemporalWorkflowVersioningBehavior", None)
        self.s.search_attributes = attributes
        self.dirty = True

    def execution(self) -> common_pb.WorkflowExecution:
        return common_pb.WorkflowExecution(workflow_id=self.s.workflow_id, run_id=self.s.run_id)

    def _new_stamp(self) -> int:
        self.s.stamp_counter += 1
        return self.s.stamp_counter

    # ---- events ------------------------------------------------------------------------
    def _new_event(
        self, event_type: int, attr_field: str, attrs: object
    ) -> history_pb.HistoryEvent:
        event = history_pb.HistoryEvent(
            event_type=event_type,  # type: ignore[arg-type]
            event_time=ts(self.now()),
            version=self.s.failover_version,
            task_id=self.next_task_id(),
        )
        getattr(event, attr_field).CopyFrom(attrs)
        return event

    def append(
        self, event_type: int, attr_field: str, attrs: object, worker_may_ignore: bool = False
    ) -> history_pb.HistoryEvent:
        """Append an event (or buffer it while a workflow task is in flight); returns it."""
        event = self._new_event(event_type, attr_field, attrs)
        event.worker_may_ignore = worker_may_ignore
        if self.has_started_workflow_task and event_type not in UNBUFFERED_EVENT_TYPES:
            self.s.buffered_events.append(event)
            self.dirty = True
            return event
        wt = self.s.workflow_task
        if wt is not None and wt.is_virtual and not wt.started_event_id:
            if wt.speculative:  # something to write: the task becomes a normal one
                self._materialize_virtual_workflow_task()
            else:  # a retry's events stay virtual and move behind the new event
                wt.scheduled_event_id += 1
        self._write(event)
        return event

    def _write(self, event: history_pb.HistoryEvent) -> None:
        event.event_id = self.s.next_event_id
        self.s.next_event_id += 1
        self.s.last_event_task_id = event.task_id
        self.s.history_size_bytes += event.ByteSize()
        vh = self.s.version_history
        if vh and vh[-1].version == event.version:
            vh[-1].event_id = event.event_id
        else:
            vh.append(VersionHistoryItem(event.event_id, event.version))
        self.mutation.events.append(event)
        self.dirty = True

    def flush_buffered_events(self) -> list[history_pb.HistoryEvent]:
        """Write buffered events; ids that pointed at a buffered event get its real id."""
        child_started: dict[int, int] = {}  # initiated event id -> started event id
        for event in self.s.buffered_events:
            if event.event_type in CHILD_CLOSED_EVENT_TYPES:
                attrs = getattr(event, event.WhichOneof("attributes") or "")
                if attrs.started_event_id == BUFFERED_EVENT_ID:
                    attrs.started_event_id = child_started[attrs.initiated_event_id]
            self._write(event)
            if event.event_type == ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                initiated = (
                    event.child_workflow_execution_started_event_attributes.initiated_event_id
                )
                child_started[initiated] = event.event_id
                child = self.s.children.get(initiated)
                if child is not None:
                    child.started_event_id = event.event_id
        flushed, self.s.buffered_events = self.s.buffered_events, []
        return flushed

    # ---- durable tasks -----------------------------------------------------------------
    def add_timer_task(self, fire_time_ns: int, kind: str, **data: object) -> None:
        self.mutation.timer_tasks.append(
            TimerTask(
                shard_id=self.shard_id,
                task_id=self.next_task_id(),
                fire_time_ns=fire_time_ns,
                namespace_id=self.s.namespace_id,
                workflow_id=self.s.workflow_id,
                run_id=self.s.run_id,
                kind=kind,
                data=json.dumps(data),
            )
        )

    def copy_event(self, event: history_pb.HistoryEvent) -> None:
        """Write an event copied from another run's history (a reset), keeping its id."""
        copied = history_pb.HistoryEvent()
        copied.CopyFrom(event)
        copied.task_id = self.next_task_id()
        self.s.next_event_id = copied.event_id
        self._write(copied)

    def add_queue_task(
        self, kind: str, task_queue: str, scheduled_event_id: int, stamp: int
    ) -> None:
        self.mutation.queue_tasks.append(
            QueueTask(
                task_id=self.next_task_id(),
                namespace_id=self.s.namespace_id,
                task_queue=task_queue,
                kind=kind,
                workflow_id=self.s.workflow_id,
                run_id=self.s.run_id,
                scheduled_event_id=scheduled_event_id,
                shard_id=self.shard_id,
                stamp=stamp,
                create_time_ns=self.now(),
                version=self.pinned_version,
            )
        )

    # ---- workflow start / close --------------------------------------------------------
    def start(
        self,
        attrs: history_pb.WorkflowExecutionStartedEventAttributes,
        user_metadata: sdk_pb.UserMetadata | None = None,
    ) -> None:
        event = self.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            "workflow_execution_started_event_attributes",
            attrs,
        )
        if user_metadata is not None:
            event.user_metadata.CopyFrom(user_metadata)
        if self.s.run_timeout_ns:
            run_deadline = self.s.execution_time_ns + self.s.run_timeout_ns
            if self.s.expiration_time_ns:
                run_deadline = min(run_deadline, self.s.expiration_time_ns)
            self.add_timer_task(run_deadline, WORKFLOW_RUN_TIMEOUT)
        if self.s.expiration_time_ns:
            self.add_timer_task(self.s.expiration_time_ns, WORKFLOW_EXECUTION_TIMEOUT)

    def _close(self, status: int, event_type: int, attr_field: str, attrs: object) -> None:
        self.flush_buffered_events()
        event = self.append(event_type, attr_field, attrs)
        self.s.status = status
        self.s.close_time_ns = self.now()
        self.s.completion_event_id = event.event_id
        self.s.workflow_task = None
        self.s.activities.clear()
        self.s.activity_ids.clear()
        self.s.timers.clear()
        self._abort_updates(
            continuing=status == Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
            or self.new_run is not None
        )
        now = self.now()
        if (
            self.s.parent is not None
            and status != Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
            and self.new_run is None
        ):
            # A chain that goes on (continue-as-new, retry, cron) reports from its last run.
            self.add_timer_task(now, NOTIFY_PARENT)
        for child in self.s.children.values():
            if child.parent_close_policy != PARENT_CLOSE_POLICY_ABANDON and child.started_event_id:
                self.add_timer_task(now, APPLY_PARENT_CLOSE_POLICY, id=child.initiated_event_id)
        schedule_id = self._scheduled_by()
        if schedule_id:
            self.add_timer_task(now, NOTIFY_SCHEDULE, schedule_id=schedule_id)

    def _scheduled_by(self) -> str:
        """The id of the schedule that started this run, if one did."""
        attributes = self.s.search_attributes
        if attributes is None or SCHEDULED_BY not in attributes.indexed_fields:
            return ""
        try:
            value = json.loads(attributes.indexed_fields[SCHEDULED_BY].data)
        except ValueError:
            return ""
        return value if isinstance(value, str) else ""

    def complete(
        self, wt_completed_id: int, result: common_pb.Payloads | None, new_run_id: str = ""
    ) -> None:
        attrs = history_pb.WorkflowExecutionCompletedEventAttributes(
            workflow_task_completed_event_id=wt_completed_id, new_execution_run_id=new_run_id
        )
        if result is not None:
            attrs.result.CopyFrom(result)
        self._close(
            Status.WORKFLOW_EXECUTION_STATUS_COMPLETED,
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
            "workflow_execution_completed_event_attributes",
            attrs,
        )

    def fail(
        self,
        wt_completed_id: int,
        failure: failure_pb.Failure,
        retry_state: int = RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET,
        new_run_id: str = "",
    ) -> None:
        attrs = history_pb.WorkflowExecutionFailedEventAttributes(
            workflow_task_completed_event_id=wt_completed_id,
            failure=failure,
            retry_state=retry_state,  # type: ignore[arg-type]
            new_execution_run_id=new_run_id,
        )
        self._close(
            Status.WORKFLOW_EXECUTION_STATUS_FAILED,
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
            "workflow_execution_failed_event_attributes",
            attrs,
        )

    def cancel(self, wt_completed_id: int, details: common_pb.Payloads | None) -> None:
        attrs = history_pb.WorkflowExecutionCanceledEventAttributes(
            workflow_task_completed_event_id=wt_completed_id
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        self._close(
            Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
            "workflow_execution_canceled_event_attributes",
            attrs,
        )

    def terminate(self, reason: str, details: common_pb.Payloads | None, identity: str) -> None:
        if self.has_started_workflow_task:
            self.fail_workflow_task(
                cause_pb.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND, None, identity
            )
        attrs = history_pb.WorkflowExecutionTerminatedEventAttributes(
            reason=reason, identity=identity
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        self._close(
            Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            "workflow_execution_terminated_event_attributes",
            attrs,
        )

    def time_out(
        self, retry_state: int = RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET, new_run_id: str = ""
    ) -> None:
        if self.has_started_workflow_task:  # as Temporal's TimeoutWorkflow: fail the running task
            self.fail_workflow_task(
                cause_pb.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND, None, "history-service"
            )
        attrs = history_pb.WorkflowExecutionTimedOutEventAttributes(
            retry_state=retry_state,  # type: ignore[arg-type]
            new_execution_run_id=new_run_id,
        )
        self._close(
            Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
            "workflow_execution_timed_out_event_attributes",
            attrs,
        )

    # ---- workflow tasks ----------------------------------------------------------------
    def schedule_workflow_task(self, speculative: bool = False) -> WorkflowTaskInfo:
        """Schedule the next workflow task (on the sticky queue when the execution has one).

        A speculative task only carries updates: its events stay out of history unless it
        completes with something to record.
        """
        assert self.s.workflow_task is None
        if self.s.buffered_events:  # new events: this task cannot be a transient retry
            self.s.next_workflow_task_attempt = 1
            speculative = False
        attempt = self.s.next_workflow_task_attempt
        self.flush_buffered_events()
        if self.s.sticky_task_queue and (
            not self.is_sticky_alive(self.s.sticky_task_queue) or self._moves_to_another_version()
        ):
            self.clear_sticky()
        sticky = bool(self.s.sticky_task_queue)
        queue = self.s.sticky_task_queue if sticky else self.s.task_queue
        now = self.now()
        wt = WorkflowTaskInfo(
            scheduled_event_id=self.s.next_event_id,
            attempt=attempt,
            task_queue=queue,
            sticky=sticky,
            scheduled_time_ns=now,
            timeout_ns=self.s.task_timeout_ns + _workflow_task_retry_delay(attempt),
            stamp=self._new_stamp(),
            speculative=speculative and attempt == 1,
        )
        if not wt.is_virtual:  # later attempts are transient: no events until one completes
            attrs = history_pb.WorkflowTaskScheduledEventAttributes(
                task_queue=self._task_queue_pb(queue, sticky),
                start_to_close_timeout=dur(self.s.task_timeout_ns),
                attempt=attempt,
            )
            event = self.append(
                ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                "workflow_task_scheduled_event_attributes",
                attrs,
            )
            wt.scheduled_event_id = event.event_id
        self.s.workflow_task = wt
        self.add_queue_task("workflow", queue, wt.scheduled_event_id, wt.stamp)
        if sticky and self.s.sticky_schedule_to_start_ns:
            self.add_timer_task(
                now + self.s.sticky_schedule_to_start_ns,
                WORKFLOW_TASK_TIMEOUT,
                id=wt.scheduled_event_id,
                stamp=wt.stamp,
                type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
            )
        self.dirty = True
        return wt

    def _moves_to_another_version(self) -> bool:
        """An unpinned workflow whose queue now routes to another version: its next task goes
        there, not to the old version's sticky worker."""
        if self.pinned_version:
            return False
        return self.routing_target(self.s.task_queue) != self.deployment_version

    def clear_sticky(self) -> None:
        self.s.sticky_task_queue = ""
        self.s.sticky_schedule_to_start_ns = 0
        self.dirty = True

    def _task_queue_pb(self, name: str, sticky: bool) -> taskqueue_pb.TaskQueue:
        if sticky:
            return taskqueue_pb.TaskQueue(
                name=name,
                kind=task_queue_pb2.TASK_QUEUE_KIND_STICKY,
                normal_name=self.s.task_queue,
            )
        return taskqueue_pb.TaskQueue(name=name, kind=task_queue_pb2.TASK_QUEUE_KIND_NORMAL)

    def transient_workflow_task_events(self) -> list[history_pb.HistoryEvent]:
        """For a retried or speculative workflow task: its events not yet in history."""
        wt = self.s.workflow_task
        if wt is None or not wt.is_virtual:
            return []
        scheduled = history_pb.HistoryEvent(
            event_id=wt.scheduled_event_id,
            event_time=ts(wt.scheduled_time_ns),
            event_type=ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            version=self.s.failover_version,
            workflow_task_scheduled_event_attributes=history_pb.WorkflowTaskScheduledEventAttributes(
                task_queue=self._task_queue_pb(wt.task_queue, wt.sticky),
                start_to_close_timeout=dur(wt.timeout_ns),
                attempt=wt.attempt,
            ),
        )
        events = [scheduled]
        if wt.started_event_id:
            events.append(
                history_pb.HistoryEvent(
                    event_id=wt.started_event_id,
                    event_time=ts(wt.started_time_ns),
                    event_type=ET.EVENT_TYPE_WORKFLOW_TASK_STARTED,
                    version=self.s.failover_version,
                    workflow_task_started_event_attributes=history_pb.WorkflowTaskStartedEventAttributes(
                        scheduled_event_id=wt.scheduled_event_id,
                        identity=wt.identity,
                        request_id=wt.request_id,
                        history_size_bytes=self.s.history_size_bytes,
                        suggest_continue_as_new=self.suggests_continue_as_new,
                    ),
                )
            )
        return events

    def start_workflow_task(self, request_id: str, identity: str) -> WorkflowTaskInfo:
        wt = self.s.workflow_task
        assert wt is not None and not wt.started_event_id
        now = self.now()
        wt.started_time_ns = now
        wt.request_id = request_id
        wt.identity = identity
        if not wt.is_virtual:
            attrs = history_pb.WorkflowTaskStartedEventAttributes(
                scheduled_event_id=wt.scheduled_event_id,
                identity=identity,
                request_id=request_id,
                history_size_bytes=self.s.history_size_bytes,
                suggest_continue_as_new=self.suggests_continue_as_new,
                target_worker_deployment_version_changed=bool(self.pinned_version)
                and self.routing_target(self.s.task_queue) != self.pinned_version,
            )
            event = self._new_event(
                ET.EVENT_TYPE_WORKFLOW_TASK_STARTED, "workflow_task_started_event_attributes", attrs
            )
            self._write(event)
            wt.started_event_id = event.event_id
        else:
            wt.started_event_id = wt.scheduled_event_id + 1
        if wt.timeout_ns:
            self.add_timer_task(
                now + wt.timeout_ns,
                WORKFLOW_TASK_TIMEOUT,
                id=wt.scheduled_event_id,
                stamp=wt.stamp,
                type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
            )
        self.dirty = True
        return wt

    def _materialize_virtual_workflow_task(self) -> None:
        """A retried or speculative task that must be recorded gets its events written now."""
        wt = self.s.workflow_task
        assert wt is not None
        if not wt.is_virtual:
            return
        for event in self.transient_workflow_task_events():
            event.task_id = self.next_task_id()
            self._write(event)
        wt.speculative = False

    def complete_workflow_task(self, identity: str, **fields: object) -> history_pb.HistoryEvent:
        wt = self.s.workflow_task
        assert wt is not None
        self._materialize_virtual_workflow_task()
        attrs = history_pb.WorkflowTaskCompletedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            identity=identity,
            **fields,  # type: ignore[arg-type]
        )
        event = self._new_event(
            ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, "workflow_task_completed_event_attributes", attrs
        )
        self._write(event)
        build_id = attrs.deployment.build_id or attrs.worker_version.build_id
        self._add_reset_point(attrs.binary_checksum, build_id, event.event_id)
        self.s.last_completed_wt_started_event_id = wt.started_event_id
        self.s.workflow_task = None
        self.s.next_workflow_task_attempt = 1
        return event

    def _add_reset_point(self, binary_checksum: str, build_id: str, event_id: int) -> None:
        """The first task a build completes is a point the workflow can be reset to."""
        points = self.s.reset_points
        if any(p.binary_checksum == binary_checksum and p.build_id == build_id for p in points):
            return
        point = workflow_pb.ResetPointInfo(
            binary_checksum=binary_checksum,
            build_id=build_id,
            run_id=self.s.run_id,
            first_workflow_task_completed_id=event_id,
            create_time=ts(self.now()),
            resettable=not (self.s.children or self.s.signal_requests or self.s.cancel_requests),
        )
        self.s.reset_points = (points + [point])[-MAX_RESET_POINTS:]

    def fail_workflow_task(
        self, cause: int, failure: failure_pb.Failure | None, identity: str, **reset: object
    ) -> None:
        """Fail the started workflow task: a failed first attempt is written; retries are not.

        `reset` carries base_run_id / new_run_id / fork_event_version when a reset fails it.
        """
        wt = self.s.workflow_task
        assert wt is not None
        if wt.speculative:
            self._materialize_virtual_workflow_task()
        if wt.attempt == 1:
            attrs = history_pb.WorkflowTaskFailedEventAttributes(
                scheduled_event_id=wt.scheduled_event_id,
                started_event_id=wt.started_event_id,
                cause=cause,  # type: ignore[arg-type]
                identity=identity,
                **reset,  # type: ignore[arg-type]
            )
            if failure is not None:
                attrs.failure.CopyFrom(failure)
            self._write(
                self._new_event(
                    ET.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                    "workflow_task_failed_event_attributes",
                    attrs,
                )
            )
        self._end_failed_workflow_task(increment_attempt=True)

    def _end_failed_workflow_task(self, increment_attempt: bool) -> None:
        """A failure on a sticky queue first retries on the normal queue without a new attempt."""
        wt = self.s.workflow_task
        assert wt is not None
        if self.s.sticky_task_queue:
            increment_attempt = False
            self.clear_sticky()
        self.s.next_workflow_task_attempt = wt.attempt + 1 if increment_attempt else 1
        self.s.workflow_task = None
        self.dirty = True

    def time_out_workflow_task(self, timeout_type: int) -> None:
        wt = self.s.workflow_task
        assert wt is not None
        if wt.speculative:
            self._materialize_virtual_workflow_task()
        if wt.attempt == 1:
            attrs = history_pb.WorkflowTaskTimedOutEventAttributes(
                scheduled_event_id=wt.scheduled_event_id,
                started_event_id=wt.started_event_id,
                timeout_type=timeout_type,  # type: ignore[arg-type]
            )
            self._write(
                self._new_event(
                    ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
                    "workflow_task_timed_out_event_attributes",
                    attrs,
                )
            )
        self._end_failed_workflow_task(
            increment_attempt=timeout_type != TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
        )

    def discard_speculative_workflow_task(self) -> None:
        """The speculative task changed nothing (only rejections): it leaves no events."""
        wt = self.s.workflow_task
        assert wt is not None and wt.speculative
        self.s.workflow_task = None
        self.dirty = True

    # ---- updates -----------------------------------------------------------------------
    def find_update(self, update_id: str) -> Update | UpdateRecord | None:
        """The in-flight update, or the record of an accepted one, or None."""
        update = self.updates.in_flight.get(update_id)
        if update is not None:
            return update
        record = self.s.updates.get(update_id)
        if record is None or record.completed_event_id:
            return record
        # Accepted before this state was loaded: track it again to wait for its outcome.
        update = Update(update_id, None, accepted_event_id=record.accepted_event_id)
        update.set_accepted()
        if not self.running:  # the run closed first: it never completes
            update.set_outcome(update_pb.Outcome(failure=workflow_closed_failure()))
            return update
        self.updates.in_flight[update_id] = update
        return update

    def admit_update(self, request: update_pb.Request) -> Update:
        """Admit a new update (nothing is written) and make sure a workflow task carries it."""
        self.updates.check_limits(len(self.s.updates))
        update = Update(request.meta.update_id, request)
        self.updates.in_flight[update.update_id] = update
        if not self.has_pending_workflow_task:
            self.schedule_workflow_task(speculative=True)
        return update

    def deliver_updates(self, wt: WorkflowTaskInfo) -> list[protocol_pb.Message]:
        """The request messages a started workflow task carries: every update not yet accepted."""
        messages = []
        for update in self.updates.admitted():
            if update.request is None:
                continue
            update.sent_stamp = wt.stamp
            messages.append(update.request_message(wt.started_event_id - 1))
        return messages

    def accept_update(self, update: Update, acceptance: update_pb.Acceptance) -> None:
        request = update.request if update.request is not None else acceptance.accepted_request
        attrs = history_pb.WorkflowExecutionUpdateAcceptedEventAttributes(
            protocol_instance_id=update.update_id,
            accepted_request_message_id=f"{update.update_id}/request",
            accepted_request_sequencing_event_id=acceptance.accepted_request_sequencing_event_id,
            accepted_request=request,
        )
        event = self.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            "workflow_execution_update_accepted_event_attributes",
            attrs,
        )
        update.accepted_event_id = event.event_id
        self.s.updates[update.update_id] = UpdateRecord(event.event_id)
        self.effects.append(update.set_accepted)

    def complete_update(self, update: Update, response: update_pb.Response) -> None:
        attrs = history_pb.WorkflowExecutionUpdateCompletedEventAttributes(
            meta=response.meta, accepted_event_id=update.accepted_event_id, outcome=response.outcome
        )
        event = self.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
            "workflow_execution_update_completed_event_attributes",
            attrs,
        )
        self.s.updates[update.update_id].completed_event_id = event.event_id
        del self.updates.in_flight[update.update_id]
        self.effects.append(lambda: update.set_outcome(response.outcome))

    def reject_update(self, update: Update, failure: failure_pb.Failure) -> None:
        """A rejected update disappears: no event, no record; its callers get the failure."""
        del self.updates.in_flight[update.update_id]
        self.dirty = True
        self.effects.append(lambda: update.set_rejected(failure))

    def _abort_updates(self, continuing: bool) -> None:
        """The run closed: accepted updates fail; others are retried on the next run or end."""
        error: Exception = UpdateAborted() if continuing else aborted_by_close()
        for update in list(self.updates.in_flight.values()):
            if update.is_accepted:
                outcome = update_pb.Outcome(failure=workflow_closed_failure())
                self.effects.append(lambda u=update, o=outcome: u.set_outcome(o))  # type: ignore[misc]
            else:
                self.effects.append(lambda u=update: u.abort(error))  # type: ignore[misc]
        self.updates.in_flight.clear()

    # ---- activities --------------------------------------------------------------------
    def schedule_activity(
        self, wt_completed_id: int, attrs: command_pb.ScheduleActivityTaskCommandAttributes
    ) -> ActivityInfo:
        event_attrs = history_pb.ActivityTaskScheduledEventAttributes(
            activity_id=attrs.activity_id,
            activity_type=attrs.activity_type,
            task_queue=attrs.task_queue,
            header=attrs.header,
            input=attrs.input,
            schedule_to_close_timeout=attrs.schedule_to_close_timeout,
            schedule_to_start_timeout=attrs.schedule_to_start_timeout,
            start_to_close_timeout=attrs.start_to_close_timeout,
            heartbeat_timeout=attrs.heartbeat_timeout,
            workflow_task_completed_event_id=wt_completed_id,
            retry_policy=attrs.retry_policy,
            use_workflow_build_id=attrs.use_workflow_build_id,
            priority=attrs.priority,
        )
        event = self.append(
            ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            "activity_task_scheduled_event_attributes",
            event_attrs,
        )
        now = self.now()
        ai = ActivityInfo(
            scheduled_event_id=event.event_id,
            activity_id=attrs.activity_id,
            activity_type=attrs.activity_type.name,
            task_queue=attrs.task_queue.name,
            schedule_to_close_ns=ns_of(attrs.schedule_to_close_timeout),
            schedule_to_start_ns=ns_of(attrs.schedule_to_start_timeout),
            start_to_close_ns=ns_of(attrs.start_to_close_timeout),
            heartbeat_ns=ns_of(attrs.heartbeat_timeout),
            scheduled_time_ns=now,
            retry_policy=attrs.retry_policy,
            input=attrs.input if attrs.HasField("input") else None,
            header=attrs.header if attrs.HasField("header") else None,
        )
        self.s.activities[ai.scheduled_event_id] = ai
        self.s.activity_ids[ai.activity_id] = ai.scheduled_event_id
        self._dispatch_activity_attempt(ai, now)
        if ai.schedule_to_close_ns:
            self.add_timer_task(
                now + ai.schedule_to_close_ns,
                ACTIVITY_TIMEOUT,
                id=ai.scheduled_event_id,
                stamp=0,
                type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
            )
        return ai

    def _dispatch_activity_attempt(self, ai: ActivityInfo, now: int) -> None:
        ai.stamp = self._new_stamp()
        ai.attempt_scheduled_time_ns = now
        ai.started_time_ns = 0
        self._begin_new_attempt(ai)
        self.add_queue_task("activity", ai.task_queue, ai.scheduled_event_id, ai.stamp)
        if ai.schedule_to_start_ns:
            self.add_timer_task(
                now + ai.schedule_to_start_ns,
                ACTIVITY_TIMEOUT,
                id=ai.scheduled_event_id,
                stamp=ai.stamp,
                type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
            )

    def start_activity(self, ai: ActivityInfo, request_id: str, identity: str) -> None:
        now = self.now()
        ai.started_time_ns = now
        ai.started_request_id = request_id
        ai.started_identity = identity
        ai.last_worker_identity = identity
        ai.last_heartbeat_ns = 0
        if ai.start_to_close_ns:
            self.add_timer_task(
                now + ai.start_to_close_ns,
                ACTIVITY_TIMEOUT,
                id=ai.scheduled_event_id,
                stamp=ai.stamp,
                type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
            )
        if ai.heartbeat_ns:
            self.arm_heartbeat_timer(ai, now + ai.heartbeat_ns)
        self.dirty = True

    def arm_heartbeat_timer(self, ai: ActivityInfo, fire_time_ns: int) -> None:
        """One heartbeat timer per attempt: when it fires early it re-arms from the last beat."""
        ai.heartbeat_timer_ns = fire_time_ns
        self.add_timer_task(
            fire_time_ns,
            ACTIVITY_TIMEOUT,
            id=ai.scheduled_event_id,
            stamp=ai.stamp,
            type=TimeoutType.TIMEOUT_TYPE_HEARTBEAT,
        )

    def heartbeat_activity(self, ai: ActivityInfo, details: common_pb.Payloads | None) -> None:
        if details is not None and details.ByteSize():
            ai.heartbeat_details = details
        ai.last_heartbeat_ns = self.now()
        self.dirty = True

    def _write_activity_started(self, ai: ActivityInfo) -> history_pb.HistoryEvent:
        attrs = history_pb.ActivityTaskStartedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            identity=ai.started_identity,
            request_id=ai.started_request_id,
            attempt=ai.attempt,
        )
        if ai.last_failure is not None:
            attrs.last_failure.CopyFrom(ai.last_failure)
        event = self.append(
            ET.EVENT_TYPE_ACTIVITY_TASK_STARTED, "activity_task_started_event_attributes", attrs
        )
        event.event_time.CopyFrom(ts(ai.started_time_ns))
        return event

    def _remove_activity(self, ai: ActivityInfo) -> None:
        self.s.activities.pop(ai.scheduled_event_id, None)
        self.s.activity_ids.pop(ai.activity_id, None)

    def complete_activity(
        self, ai: ActivityInfo, result: common_pb.Payloads | None, identity: str
    ) -> None:
        started = self._write_activity_started(ai)
        attrs = history_pb.ActivityTaskCompletedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=started.event_id,
            identity=identity,
        )
        if result is not None:
            attrs.result.CopyFrom(result)
        self._append_activity_close(
            ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, "activity_task_completed_event_attributes", attrs
        )
        self._remove_activity(ai)

    def fail_activity(
        self, ai: ActivityInfo, failure: failure_pb.Failure, retry_state: int, identity: str
    ) -> None:
        started = self._write_activity_started(ai)
        attrs = history_pb.ActivityTaskFailedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=started.event_id,
            identity=identity,
            failure=failure,
            retry_state=retry_state,  # type: ignore[arg-type]
        )
        self._append_activity_close(
            ET.EVENT_TYPE_ACTIVITY_TASK_FAILED, "activity_task_failed_event_attributes", attrs
        )
        self._remove_activity(ai)

    def time_out_activity(
        self, ai: ActivityInfo, failure: failure_pb.Failure, retry_state: int
    ) -> None:
        started_event_id = 0
        if ai.started_time_ns:
            started_event_id = self._write_activity_started(ai).event_id
        attrs = history_pb.ActivityTaskTimedOutEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=started_event_id,
            failure=failure,
            retry_state=retry_state,  # type: ignore[arg-type]
        )
        self._append_activity_close(
            ET.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, "activity_task_timed_out_event_attributes", attrs
        )
        self._remove_activity(ai)

    def cancel_activity(
        self, ai: ActivityInfo, details: common_pb.Payloads | None, identity: str
    ) -> None:
        started_event_id = 0
        if ai.started_time_ns:
            started_event_id = self._write_activity_started(ai).event_id
        attrs = history_pb.ActivityTaskCanceledEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=started_event_id,
            latest_cancel_requested_event_id=ai.cancel_requested_event_id,
            identity=identity,
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        self._append_activity_close(
            ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED, "activity_task_canceled_event_attributes", attrs
        )
        self._remove_activity(ai)

    def _append_activity_close(self, event_type: int, attr_field: str, attrs: object) -> None:
        event = self._new_event(event_type, attr_field, attrs)
        if self.has_started_workflow_task:
            self.s.buffered_events.append(event)
            self.dirty = True
        else:
            self._write(event)

    def request_cancel_activity(self, wt_completed_id: int, ai: ActivityInfo) -> int:
        event = self.append(
            ET.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
            "activity_task_cancel_requested_event_attributes",
            history_pb.ActivityTaskCancelRequestedEventAttributes(
                scheduled_event_id=ai.scheduled_event_id,
                workflow_task_completed_event_id=wt_completed_id,
            ),
        )
        ai.cancel_requested = True
        ai.cancel_requested_event_id = event.event_id
        return event.event_id

    def retry_activity(
        self, ai: ActivityInfo, failure: failure_pb.Failure, backoff_ns: int
    ) -> None:
        """Schedule the next attempt after `backoff_ns`; no history event until the last one.

        A paused activity's next attempt waits for UnpauseActivity instead.
        """
        ai.attempt += 1
        ai.last_failure = failure
        ai.started_time_ns = 0
        ai.stamp = self._new_stamp()
        self._begin_new_attempt(ai)
        if not ai.paused:
            self.add_timer_task(
                self.now() + backoff_ns, ACTIVITY_RETRY, id=ai.scheduled_event_id, stamp=ai.stamp
            )
        self.dirty = True

    @staticmethod
    def _begin_new_attempt(ai: ActivityInfo) -> None:
        """A reset applies to the attempt that was running when it was asked for, not later."""
        if ai.reset_heartbeats:
            ai.heartbeat_details = None
            ai.last_heartbeat_ns = 0
        ai.reset_requested = False
        ai.reset_heartbeats = False

    def pause_activity(self, ai: ActivityInfo, identity: str, reason: str, request_id: str) -> None:
        """A running attempt may finish; a waiting one is not dispatched until unpaused."""
        if not ai.started_time_ns:
            ai.stamp = self._new_stamp()  # its queued task and retry timer become stale
        ai.paused = True
        ai.pause_time_ns = self.now()
        ai.pause_identity = identity
        ai.pause_reason = reason
        ai.pause_request_id = request_id
        self.dirty = True

    def unpause_activity(
        self, ai: ActivityInfo, reset_attempts: bool, reset_heartbeat: bool, jitter_ns: int
    ) -> None:
        if reset_attempts:
            ai.attempt = 1
        if reset_heartbeat:
            ai.heartbeat_details = None
            ai.last_heartbeat_ns = 0
        self._resume_activity(ai, jitter_ns)

    def reset_activity(
        self, ai: ActivityInfo, reset_heartbeats: bool, keep_paused: bool, jitter_ns: int
    ) -> None:
        """Back to attempt 1; a running attempt is told through its heartbeats."""
        ai.attempt = 1
        ai.reset_requested = True
        ai.reset_heartbeats = ai.reset_heartbeats or reset_heartbeats
        if ai.paused and not keep_paused:
            self._resume_activity(ai, jitter_ns)
        elif not ai.paused and not ai.started_time_ns:
            self._dispatch_after(ai, jitter_ns)  # a new stamp: the pending retry goes stale
        self.dirty = True

    def _resume_activity(self, ai: ActivityInfo, jitter_ns: int) -> None:
        """Unpause: dispatch a waiting attempt, or re-arm the timeouts of a running one."""
        ai.paused = False
        ai.pause_time_ns = 0
        ai.pause_identity = ai.pause_reason = ai.pause_request_id = ""
        now = self.now()
        if ai.schedule_to_close_ns:
            self.add_timer_task(
                max(now, ai.scheduled_time_ns + ai.schedule_to_close_ns),
                ACTIVITY_TIMEOUT,
                id=ai.scheduled_event_id,
                stamp=0,
                type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
            )
        if not ai.started_time_ns:
            self._dispatch_after(ai, jitter_ns)
        else:
            if ai.start_to_close_ns:
                self.add_timer_task(
                    max(now, ai.started_time_ns + ai.start_to_close_ns),
                    ACTIVITY_TIMEOUT,
                    id=ai.scheduled_event_id,
                    stamp=ai.stamp,
                    type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
                )
            if ai.heartbeat_ns:
                last_beat = max(ai.last_heartbeat_ns, ai.started_time_ns)
                self.arm_heartbeat_timer(ai, max(now, last_beat + ai.heartbeat_ns))
        self.dirty = True

    def _dispatch_after(self, ai: ActivityInfo, jitter_ns: int) -> None:
        if jitter_ns > 0:
            ai.stamp = self._new_stamp()
            delay = random.randrange(jitter_ns)
            self.add_timer_task(
                self.now() + delay, ACTIVITY_RETRY, id=ai.scheduled_event_id, stamp=ai.stamp
            )
        else:
            self._dispatch_activity_attempt(ai, self.now())

    def rearm_pending_work(self) -> None:
        """After a reset: dispatch pending activities afresh and re-arm timers and timeouts."""
        now = self.now()
        for ai in self.s.activities.values():
            ai.attempt = 1
            self._dispatch_activity_attempt(ai, now)
            if ai.schedule_to_close_ns:
                self.add_timer_task(
                    now + ai.schedule_to_close_ns,
                    ACTIVITY_TIMEOUT,
                    id=ai.scheduled_event_id,
                    stamp=0,
                    type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
                )
        for timer in self.s.timers.values():
            self.add_timer_task(
                timer.expiry_time_ns, USER_TIMER, id=timer.timer_id, started=timer.started_event_id
            )
        if self.s.run_timeout_ns:
            self.add_timer_task(now + self.s.run_timeout_ns, WORKFLOW_RUN_TIMEOUT)
        if self.s.expiration_time_ns:
            self.add_timer_task(self.s.expiration_time_ns, WORKFLOW_EXECUTION_TIMEOUT)

    def dispatch_retried_activity(self, ai: ActivityInfo) -> None:
        self._dispatch_activity_attempt(ai, self.now())
        self.dirty = True

    # ---- timers ------------------------------------------------------------------------
    def start_timer(
        self, wt_completed_id: int, attrs: command_pb.StartTimerCommandAttributes
    ) -> None:
        event = self.append(
            ET.EVENT_TYPE_TIMER_STARTED,
            "timer_started_event_attributes",
            history_pb.TimerStartedEventAttributes(
                timer_id=attrs.timer_id,
                start_to_fire_timeout=attrs.start_to_fire_timeout,
                workflow_task_completed_event_id=wt_completed_id,
            ),
        )
        expiry = self.now() + ns_of(attrs.start_to_fire_timeout)
        self.s.timers[attrs.timer_id] = TimerInfo(attrs.timer_id, event.event_id, expiry)
        self.add_timer_task(expiry, USER_TIMER, id=attrs.timer_id, started=event.event_id)

    def fire_timer(self, timer: TimerInfo) -> None:
        self.append(
            ET.EVENT_TYPE_TIMER_FIRED,
            "timer_fired_event_attributes",
            history_pb.TimerFiredEventAttributes(
                timer_id=timer.timer_id, started_event_id=timer.started_event_id
            ),
        )
        del self.s.timers[timer.timer_id]

    def cancel_timer(self, wt_completed_id: int, timer: TimerInfo, identity: str) -> None:
        self.append(
            ET.EVENT_TYPE_TIMER_CANCELED,
            "timer_canceled_event_attributes",
            history_pb.TimerCanceledEventAttributes(
                timer_id=timer.timer_id,
                started_event_id=timer.started_event_id,
                workflow_task_completed_event_id=wt_completed_id,
                identity=identity,
            ),
        )
        del self.s.timers[timer.timer_id]

    # ---- signals, cancellation, markers, properties ------------------------------------
    def signal(
        self,
        name: str,
        payloads: common_pb.Payloads | None,
        identity: str,
        header: common_pb.Header | None,
        request_id: str = "",
    ) -> None:
        attrs = history_pb.WorkflowExecutionSignaledEventAttributes(
            signal_name=name, identity=identity
        )
        if payloads is not None:
            attrs.input.CopyFrom(payloads)
        if header is not None:
            attrs.header.CopyFrom(header)
        if request_id:
            attrs.request_id = request_id
        self.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            "workflow_execution_signaled_event_attributes",
            attrs,
        )

    def request_cancel(self, cause: str, identity: str) -> None:
        self.s.cancel_requested = True
        self.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            "workflow_execution_cancel_requested_event_attributes",
            history_pb.WorkflowExecutionCancelRequestedEventAttributes(
                cause=cause, identity=identity
            ),
        )

    def record_marker(
        self, wt_completed_id: int, attrs: command_pb.RecordMarkerCommandAttributes
    ) -> None:
        event_attrs = history_pb.MarkerRecordedEventAttributes(
            marker_name=attrs.marker_name,
            workflow_task_completed_event_id=wt_completed_id,
        )
        for key, value in attrs.details.items():
            event_attrs.details[key].CopyFrom(value)
        if attrs.HasField("header"):
            event_attrs.header.CopyFrom(attrs.header)
        if attrs.HasField("failure"):
            event_attrs.failure.CopyFrom(attrs.failure)
        self.append(ET.EVENT_TYPE_MARKER_RECORDED, "marker_recorded_event_attributes", event_attrs)

    def upsert_search_attributes(
        self, wt_completed_id: int, attrs: common_pb.SearchAttributes
    ) -> None:
        self.append(
            ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
            "upsert_workflow_search_attributes_event_attributes",
            history_pb.UpsertWorkflowSearchAttributesEventAttributes(
                workflow_task_completed_event_id=wt_completed_id, search_attributes=attrs
            ),
        )
        merged = self.s.search_attributes or common_pb.SearchAttributes()
        for key, value in attrs.indexed_fields.items():
            if value.data in (b"", b"null"):
                merged.indexed_fields.pop(key, None)
            else:
                merged.indexed_fields[key].CopyFrom(value)
        self.s.search_attributes = merged

    def modify_properties(self, wt_completed_id: int, memo: common_pb.Memo) -> None:
        self.append(
            ET.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
            "workflow_properties_modified_event_attributes",
            history_pb.WorkflowPropertiesModifiedEventAttributes(
                workflow_task_completed_event_id=wt_completed_id, upserted_memo=memo
            ),
        )
        merged = self.s.memo or common_pb.Memo()
        for key, value in memo.fields.items():
            if value.data in (b"", b"null"):
                merged.fields.pop(key, None)
            else:
                merged.fields[key].CopyFrom(value)
        self.s.memo = merged

    # ---- continue-as-new -----------------------------------------------------------------
    def continue_as_new(
        self, wt_completed_id: int, attrs: history_pb.WorkflowExecutionContinuedAsNewEventAttributes
    ) -> None:
        attrs.workflow_task_completed_event_id = wt_completed_id
        self._close(
            Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
            "workflow_execution_continued_as_new_event_attributes",
            attrs,
        )

    # ---- child workflows ---------------------------------------------------------------
    def initiate_child(
        self,
        wt_completed_id: int,
        attrs: history_pb.StartChildWorkflowExecutionInitiatedEventAttributes,
        namespace_id: str,
    ) -> ChildInfo:
        attrs.workflow_task_completed_event_id = wt_completed_id
        event = self.append(
            ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            "start_child_workflow_execution_initiated_event_attributes",
            attrs,
        )
        child = ChildInfo(
            initiated_event_id=event.event_id,
            namespace=attrs.namespace,
            namespace_id=namespace_id,
            workflow_id=attrs.workflow_id,
            workflow_type=attrs.workflow_type.name,
            parent_close_policy=attrs.parent_close_policy,
            create_request_id=f"{self.s.run_id}:{event.event_id}",
        )
        self.s.children[child.initiated_event_id] = child
        self.add_timer_task(self.now(), START_CHILD, id=child.initiated_event_id)
        return child

    def child_started(self, child: ChildInfo, run_id: str, header: common_pb.Header | None) -> None:
        attrs = history_pb.ChildWorkflowExecutionStartedEventAttributes(
            namespace=child.namespace,
            namespace_id=child.namespace_id,
            initiated_event_id=child.initiated_event_id,
            workflow_execution=common_pb.WorkflowExecution(
                workflow_id=child.workflow_id, run_id=run_id
            ),
            workflow_type=common_pb.WorkflowType(name=child.workflow_type),
        )
        if header is not None:
            attrs.header.CopyFrom(header)
        event = self.append(
            ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
            "child_workflow_execution_started_event_attributes",
            attrs,
        )
        child.run_id = run_id
        # A buffered event has no id yet: the flush sets the real one.
        child.started_event_id = event.event_id or BUFFERED_EVENT_ID

    def child_start_failed(self, child: ChildInfo, cause: int) -> None:
        self.append(
            ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
            "start_child_workflow_execution_failed_event_attributes",
            history_pb.StartChildWorkflowExecutionFailedEventAttributes(
                namespace=child.namespace,
                namespace_id=child.namespace_id,
                workflow_id=child.workflow_id,
                workflow_type=common_pb.WorkflowType(name=child.workflow_type),
                cause=cause,  # type: ignore[arg-type]
                initiated_event_id=child.initiated_event_id,
            ),
        )
        del self.s.children[child.initiated_event_id]

    def child_closed(self, child: ChildInfo, close_event: history_pb.HistoryEvent) -> None:
        """Record how a child's run ended (its close event, translated for the parent)."""
        common: _ChildEventCommon = {
            "namespace": child.namespace,
            "namespace_id": child.namespace_id,
            "workflow_execution": common_pb.WorkflowExecution(
                workflow_id=child.workflow_id, run_id=child.run_id
            ),
            "workflow_type": common_pb.WorkflowType(name=child.workflow_type),
            "initiated_event_id": child.initiated_event_id,
            "started_event_id": child.started_event_id,
        }
        kind = close_event.WhichOneof("attributes")
        if kind == "workflow_execution_completed_event_attributes":
            completed = close_event.workflow_execution_completed_event_attributes
            self.append(
                ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
                "child_workflow_execution_completed_event_attributes",
                history_pb.ChildWorkflowExecutionCompletedEventAttributes(
                    result=completed.result, **common
                ),
            )
        elif kind == "workflow_execution_failed_event_attributes":
            failed = close_event.workflow_execution_failed_event_attributes
            self.append(
                ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
                "child_workflow_execution_failed_event_attributes",
                history_pb.ChildWorkflowExecutionFailedEventAttributes(
                    failure=failed.failure, retry_state=failed.retry_state, **common
                ),
            )
        elif kind == "workflow_execution_canceled_event_attributes":
            canceled = close_event.workflow_execution_canceled_event_attributes
            self.append(
                ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
                "child_workflow_execution_canceled_event_attributes",
                history_pb.ChildWorkflowExecutionCanceledEventAttributes(
                    details=canceled.details, **common
                ),
            )
        elif kind == "workflow_execution_terminated_event_attributes":
            self.append(
                ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
                "child_workflow_execution_terminated_event_attributes",
                history_pb.ChildWorkflowExecutionTerminatedEventAttributes(**common),
            )
        elif kind == "workflow_execution_timed_out_event_attributes":
            timed_out = close_event.workflow_execution_timed_out_event_attributes
            self.append(
                ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
                "child_workflow_execution_timed_out_event_attributes",
                history_pb.ChildWorkflowExecutionTimedOutEventAttributes(
                    retry_state=timed_out.retry_state, **common
                ),
            )
        else:
            return  # continued-as-new: the chain goes on; its last run reports
        del self.s.children[child.initiated_event_id]

    # ---- signals and cancel requests to other workflows -------------------------------
    def initiate_signal_external(
        self,
        wt_completed_id: int,
        attrs: history_pb.SignalExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> ExternalRequest:
        attrs.workflow_task_completed_event_id = wt_completed_id
        event = self.append(
            ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
            "signal_external_workflow_execution_initiated_event_attributes",
            attrs,
        )
        request = external_request(self.s.run_id, event.event_id, attrs)
        self.s.signal_requests[request.initiated_event_id] = request
        self.add_timer_task(self.now(), SIGNAL_EXTERNAL, id=request.initiated_event_id)
        return request

    def external_signaled(self, request: ExternalRequest, control: str) -> None:
        self.append(
            ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
            "external_workflow_execution_signaled_event_attributes",
            history_pb.ExternalWorkflowExecutionSignaledEventAttributes(
                initiated_event_id=request.initiated_event_id,
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
                control=control,
            ),
        )
        del self.s.signal_requests[request.initiated_event_id]

    def signal_external_failed(self, request: ExternalRequest, cause: int, control: str) -> None:
        self.append(
            ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            "signal_external_workflow_execution_failed_event_attributes",
            history_pb.SignalExternalWorkflowExecutionFailedEventAttributes(
                cause=cause,  # type: ignore[arg-type]
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
                initiated_event_id=request.initiated_event_id,
                control=control,
            ),
        )
        del self.s.signal_requests[request.initiated_event_id]

    def initiate_cancel_external(
        self,
        wt_completed_id: int,
        attrs: history_pb.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    ) -> ExternalRequest:
        attrs.workflow_task_completed_event_id = wt_completed_id
        event = self.append(
            ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
            "request_cancel_external_workflow_execution_initiated_event_attributes",
            attrs,
        )
        request = external_request(self.s.run_id, event.event_id, attrs)
        self.s.cancel_requests[request.initiated_event_id] = request
        self.add_timer_task(self.now(), CANCEL_EXTERNAL, id=request.initiated_event_id)
        return request

    def external_cancel_requested(self, request: ExternalRequest) -> None:
        self.append(
            ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            "external_workflow_execution_cancel_requested_event_attributes",
            history_pb.ExternalWorkflowExecutionCancelRequestedEventAttributes(
                initiated_event_id=request.initiated_event_id,
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
            ),
        )
        del self.s.cancel_requests[request.initiated_event_id]

    def cancel_external_failed(self, request: ExternalRequest, cause: int, control: str) -> None:
        self.append(
            ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            "request_cancel_external_workflow_execution_failed_event_attributes",
            history_pb.RequestCancelExternalWorkflowExecutionFailedEventAttributes(
                cause=cause,  # type: ignore[arg-type]
                namespace=request.namespace,
                namespace_id=request.namespace_id,
                workflow_execution=common_pb.WorkflowExecution(
                    workflow_id=request.workflow_id, run_id=request.run_id
                ),
                initiated_event_id=request.initiated_event_id,
                control=control,
            ),
        )
        del self.s.cancel_requests[request.initiated_event_id]
