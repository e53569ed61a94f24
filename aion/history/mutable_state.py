"""`MutableState`: the façade over one execution's state and the state machines that change it.

The state is `ExecutionState` (`aion.history.state.execution`, a serializable snapshot). Each kind
of pending work has its state machine in `aion.history.state` (`workflow_task`, `activities`,
`timers`, `children`, `external`, `updates`), all writing through one `HistoryBuilder` (events,
buffering, version history) and one `TaskGenerator` (durable tasks) into the `Mutation` the engine
commits in one transaction. Workflow-level transitions (start, close, signal, cancel request,
markers, search attributes, memo) live here. Nothing else writes the state or appends events.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2, workflow_pb2
from temporalio.api.enums.v1 import failed_cause_pb2 as cause_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.sdk.v1 import user_metadata_pb2 as sdk_pb

from aion.common.limits import Limits
from aion.history.state.activities import Activities
from aion.history.state.builder import HistoryBuilder, Mutation
from aion.history.state.children import Children
from aion.history.state.environment import Environment
from aion.history.state.execution import (
    FAILED_STATUSES,
    ActivityInfo,
    ChildInfo,
    ExecutionState,
    ExternalRequest,
    ParentInfo,
    TimerInfo,
    WorkflowTaskInfo,
    restore,
    snapshot,
)
from aion.history.state.external import ExternalRequests
from aion.history.state.tasks import (
    ACTIVITY_RETRY,
    ACTIVITY_TIMEOUT,
    APPLY_PARENT_CLOSE_POLICY,
    DELETE_EXECUTION,
    NOTIFY_PARENT,
    NOTIFY_SCHEDULE,
    USER_TIMER,
    WORKFLOW_BACKOFF,
    WORKFLOW_EXECUTION_TIMEOUT,
    WORKFLOW_RUN_TIMEOUT,
    WORKFLOW_TASK_TIMEOUT,
    TaskGenerator,
)
from aion.history.state.timers import Timers
from aion.history.state.updates import Updates
from aion.history.state.versioning import Versioning
from aion.history.state.workflow_task import WorkflowTasks

# Names callers import with `MutableState`.
__all__ = [
    "ACTIVITY_RETRY",
    "ACTIVITY_TIMEOUT",
    "DELETE_EXECUTION",
    "FAILED_STATUSES",
    "HISTORY_SERVICE",
    "USER_TIMER",
    "WORKFLOW_BACKOFF",
    "WORKFLOW_EXECUTION_TIMEOUT",
    "WORKFLOW_RUN_TIMEOUT",
    "WORKFLOW_TASK_TIMEOUT",
    "ActivityInfo",
    "ChildInfo",
    "Environment",
    "ExecutionState",
    "ExternalRequest",
    "Limits",
    "MutableState",
    "Mutation",
    "ParentInfo",
    "TimerInfo",
    "WorkflowTaskInfo",
]

ET = event_type_pb2.EventType
Status = workflow_pb2.WorkflowExecutionStatus
RetryState = workflow_pb2.RetryState
PARENT_CLOSE_POLICY_ABANDON = workflow_pb2.PARENT_CLOSE_POLICY_ABANDON
SCHEDULED_BY = "TemporalScheduledById"
HISTORY_SERVICE = "history-service"  # the identity the server acts under


class MutableState:
    """One execution's state, its state machines, and the uncommitted mutation of the current
    transition."""

    def __init__(
        self,
        state: ExecutionState,
        shard_id: int,
        next_task_id: Callable[[], int],
        env: Environment | None = None,
        db_version: int = 0,
    ) -> None:
        env = env if env is not None else Environment()
        self.s = state
        self.shard_id = shard_id
        self.next_task_id = next_task_id
        self.env = env
        self.now = env.now
        self.db_version = db_version
        # The search attributes of the visibility row last committed (None: not known here).
        self.written_search_attributes: bytes | None = None
        self.mutation = Mutation()
        # A run this transition creates (continue-as-new, retry, cron, reset); committed together.
        self.new_run: MutableState | None = None
        # Run by the engine once this transition has committed (never if it fails).
        self.effects: list[Callable[[], None]] = []
        self.history = HistoryBuilder(state, self.mutation, next_task_id, env.now, env.limits)
        self.versioning = Versioning(state, self.history, env.routing_target)
        self.tasks = TaskGenerator(
            state, self.mutation, shard_id, next_task_id, env.now, self.versioning
        )
        self.workflow_task = WorkflowTasks(
            state, self.history, self.tasks, self.versioning, env.is_sticky_alive
        )
        self.activities = Activities(state, self.history, self.tasks)
        self.timers = Timers(state, self.history, self.tasks)
        self.children = Children(state, self.history, self.tasks)
        self.external = ExternalRequests(state, self.history, self.tasks)
        self.updates = Updates(state, self.history, self.workflow_task, self.effects)

    # ---- serialization, runs and transitions -------------------------------------------
    def snapshot(self) -> bytes:
        return snapshot(self.s)

    @staticmethod
    def restore(data: bytes) -> ExecutionState:
        return restore(data)

    def spawn(self, state: ExecutionState) -> MutableState:
        """Mutable state for another run of this workflow id (same shard, same environment)."""
        return MutableState(state, self.shard_id, self.next_task_id, self.env)

    def start_next_run(self, new_run: MutableState) -> None:
        """The run `new_run` follows this one; both commit together."""
        self.new_run = new_run

    @property
    def dirty(self) -> bool:
        """The snapshot changed in this transition (with or without events)."""
        return self.mutation.dirty

    def take_effects(self) -> list[Callable[[], None]]:
        """The committed transition's effects, to run now; the list starts empty again."""
        effects = self.effects[:]
        self.effects.clear()
        return effects

    # ---- queries on state --------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Open and not a zombie (a zombie takes no requests and runs no tasks)."""
        return self.s.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING and not self.s.zombie

    def execution(self) -> common_pb.WorkflowExecution:
        return common_pb.WorkflowExecution(workflow_id=self.s.workflow_id, run_id=self.s.run_id)

    def stamp_version(self, version: int) -> None:
        """Write this transition at the namespace's current failover `version` (a global
        namespace active here). The first transition after a failover to this cluster fails a
        workflow task started under the older version (its worker answers the old cluster) and
        schedules another, and restarts the attempts of a retried one not started, as Temporal
        does."""
        before, self.s.failover_version = self.s.failover_version, version
        if before >= version or not self.running:
            return
        if self.workflow_task.started:
            self.workflow_task.fail(
                cause_pb.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND, None, HISTORY_SERVICE
            )
            self.workflow_task.schedule()
        else:
            self.workflow_task.restart_attempts_after_failover()

    # ---- workflow start / close --------------------------------------------------------
    def start(
        self,
        attrs: history_pb.WorkflowExecutionStartedEventAttributes,
        user_metadata: sdk_pb.UserMetadata | None = None,
    ) -> None:
        event = self.history.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            "workflow_execution_started_event_attributes",
            attrs,
        )
        if user_metadata is not None:
            event.user_metadata.CopyFrom(user_metadata)
        run_deadline = self.s.execution_time_ns + self.s.run_timeout_ns
        if self.s.expiration_time_ns:
            run_deadline = min(run_deadline, self.s.expiration_time_ns)
        self.tasks.workflow_timeouts(run_deadline)

    def delay_first_workflow_task(self, until_ns: int) -> None:
        """The first workflow task waits until `until_ns` (cron, retry, start delay)."""
        self.tasks.timer(until_ns, WORKFLOW_BACKOFF)

    def _close(self, status: int, event_type: int, attr_field: str, attrs: object) -> None:
        self.history.flush_buffered_events()
        event = self.history.append(event_type, attr_field, attrs)
        s = self.s
        s.status = status
        s.close_time_ns = self.now()
        s.completion_event_id = event.event_id
        s.workflow_task = None
        s.activities.clear()
        s.activity_ids.clear()
        s.timers.clear()
        self.updates.abort_on_close(
            continuing=status == Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
            or self.new_run is not None
        )
        now = self.now()
        if (
            s.parent is not None
            and status != Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
            and self.new_run is None
        ):
            # A chain that goes on (continue-as-new, retry, cron) reports from its last run.
            self.tasks.timer(now, NOTIFY_PARENT)
        for child in s.children.values():
            if child.parent_close_policy != PARENT_CLOSE_POLICY_ABANDON and child.started_event_id:
                self.tasks.timer(now, APPLY_PARENT_CLOSE_POLICY, id=child.initiated_event_id)
        schedule_id = self._scheduled_by()
        if schedule_id:
            self.tasks.timer(now, NOTIFY_SCHEDULE, schedule_id=schedule_id)
        self.tasks.timer(s.close_time_ns + self.env.retention_ns(s.namespace_id), DELETE_EXECUTION)

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

    def delete_now(self) -> None:
        """This closed run is to be deleted at once (DeleteWorkflowExecution), not at the end of
        its retention."""
        self.tasks.timer(self.now(), DELETE_EXECUTION)

    def terminate(self, reason: str, details: common_pb.Payloads | None, identity: str) -> None:
        if self.workflow_task.started:
            self.workflow_task.fail(
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
        if self.workflow_task.started:  # as Temporal's TimeoutWorkflow: fail the running task
            self.workflow_task.fail(
                cause_pb.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND, None, HISTORY_SERVICE
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

    def rearm_pending_work(self) -> None:
        """After a reset: dispatch pending activities afresh and re-arm timers and timeouts."""
        now = self.now()
        self.activities.restart_pending(now)
        self.tasks.rearm_timers(now)

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
        self.s.signal_count += 1
        self.history.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            "workflow_execution_signaled_event_attributes",
            attrs,
        )

    def request_cancel(self, cause: str, identity: str) -> None:
        self.s.cancel_requested = True
        self.history.append(
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
        self.history.append(
            ET.EVENT_TYPE_MARKER_RECORDED, "marker_recorded_event_attributes", event_attrs
        )

    def upsert_search_attributes(
        self, wt_completed_id: int, attrs: common_pb.SearchAttributes
    ) -> None:
        self.history.append(
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
        self.history.append(
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

    def remember_request_id(self, request_id: str, keep: int) -> bool:
        """Remember a request (a signal's) among the last `keep`; False if it was seen."""
        if request_id in self.s.request_ids:
            return False
        self.s.request_ids = (self.s.request_ids + [request_id])[-keep:]
        return True
