"""The workflow task state machine: scheduled (normal, sticky, retried or speculative), started,
then completed, failed or timed out. A retried or speculative task writes no events until it
must."""

from __future__ import annotations

from collections.abc import Callable

from temporalio.api.enums.v1 import event_type_pb2, workflow_pb2
from temporalio.api.enums.v1 import failed_cause_pb2 as cause_pb
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from aion.common.timeutil import dur, ts
from aion.history.state.builder import HistoryBuilder
from aion.history.state.execution import ExecutionState, WorkflowTaskInfo
from aion.history.state.machine import StateMachine
from aion.history.state.tasks import TaskGenerator
from aion.history.state.versioning import Versioning

ET = event_type_pb2.EventType
TimeoutType = workflow_pb2.TimeoutType
MAX_RESET_POINTS = 20
# A task failed by the server for a reset or a failover is no failure of the workflow's: the
# next task starts again at attempt 1, as Temporal does.
ATTEMPT_CLEARING_CAUSES = frozenset(
    {
        cause_pb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
        cause_pb.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND,
    }
)


def _retry_delay(attempt: int) -> int:
    """Retried workflow tasks past the third get a longer timeout rather than a delay."""
    if attempt <= 3:
        return 0
    return min(5 * 2 ** (attempt - 4), 600) * 1_000_000_000


class WorkflowTasks(StateMachine):
    """The execution's one pending workflow task (`state.workflow_task`)."""

    def __init__(
        self,
        state: ExecutionState,
        history: HistoryBuilder,
        tasks: TaskGenerator,
        versioning: Versioning,
        is_sticky_alive: Callable[[str, str], bool],
    ) -> None:
        super().__init__(state, history, tasks)
        self._versioning = versioning
        self._is_sticky_alive = is_sticky_alive

    @property
    def pending(self) -> bool:
        return self.s.workflow_task is not None

    @property
    def started(self) -> bool:
        wt = self.s.workflow_task
        return wt is not None and wt.started_event_id != 0

    def schedule(self, speculative: bool = False) -> WorkflowTaskInfo:
        """Schedule the next workflow task (on the sticky queue when the execution has one).

        A speculative task only carries updates: its events stay out of history unless it
        completes with something to record.
        """
        s = self.s
        assert s.workflow_task is None
        if s.buffered_events:  # new events: this task cannot be a transient retry
            s.next_workflow_task_attempt = 1
            speculative = False
        attempt = s.next_workflow_task_attempt
        self._history.flush_buffered_events()
        if s.sticky_task_queue and (
            not self._is_sticky_alive(s.namespace_id, s.sticky_task_queue)
            or self._versioning.moves_to_another_version()
        ):
            self.clear_sticky()
        sticky = bool(s.sticky_task_queue)
        queue = s.sticky_task_queue if sticky else s.task_queue
        now = self._history.now()
        wt = WorkflowTaskInfo(
            scheduled_event_id=s.next_event_id,
            attempt=attempt,
            task_queue=queue,
            sticky=sticky,
            scheduled_time_ns=now,
            timeout_ns=s.task_timeout_ns + _retry_delay(attempt),
            stamp=s.new_stamp(),
            speculative=speculative and attempt == 1,
        )
        if not wt.is_virtual:  # later attempts are transient: no events until one completes
            self._write_scheduled(wt)
        s.workflow_task = wt
        self._tasks.queue("workflow", queue, wt.scheduled_event_id, wt.stamp)
        if sticky and s.sticky_schedule_to_start_ns:
            self._tasks.workflow_task_timeout(
                wt, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, now + s.sticky_schedule_to_start_ns
            )
        self._history.mutation.dirty = True
        return wt

    def _write_scheduled(self, wt: WorkflowTaskInfo) -> None:
        attrs = history_pb.WorkflowTaskScheduledEventAttributes(
            task_queue=self._history.task_queue_pb(wt.task_queue, wt.sticky),
            start_to_close_timeout=dur(self.s.task_timeout_ns),
            attempt=wt.attempt,
        )
        event = self._history.append(
            ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, "workflow_task_scheduled_event_attributes", attrs
        )
        wt.scheduled_event_id = event.event_id

    def restart_attempts_after_failover(self) -> None:
        """A retried task not started yet when the namespace failed over to this cluster becomes
        a normal one from attempt 1, its scheduled event written at the new version, as Temporal
        does. It keeps its id (a retry's is the next event's), so its queued task still holds."""
        wt = self.s.workflow_task
        if wt is None or wt.started_event_id or wt.speculative or wt.attempt == 1:
            return
        wt.attempt = 1
        wt.timeout_ns = self.s.task_timeout_ns
        self._write_scheduled(wt)

    def set_sticky(self, task_queue: str, schedule_to_start_ns: int) -> None:
        """The worker keeps the workflow cached: its next tasks go to its own queue."""
        self.s.sticky_task_queue = task_queue
        self.s.sticky_schedule_to_start_ns = schedule_to_start_ns

    def clear_sticky(self) -> None:
        self.s.sticky_task_queue = ""
        self.s.sticky_schedule_to_start_ns = 0
        self._history.mutation.dirty = True

    def redirect_to_normal_queue(self, stamp: int) -> None:
        """The sticky worker left: a task still waiting on its queue goes to the normal one."""
        wt = self.s.workflow_task
        self.clear_sticky()
        running = (
            self.s.status == workflow_pb2.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        )
        if running and wt is not None and wt.stamp == stamp and not wt.started_event_id:
            wt.task_queue = self.s.task_queue
            wt.sticky = False
            self._tasks.queue("workflow", self.s.task_queue, wt.scheduled_event_id, wt.stamp)

    def schedule_after_reset(self) -> WorkflowTaskInfo:
        """A reset's new run schedules its next task from attempt 1."""
        self.s.next_workflow_task_attempt = 1
        return self.schedule()

    def transient_events(self) -> list[history_pb.HistoryEvent]:
        """For a retried or speculative workflow task: its events not yet in history."""
        return self._history.transient_workflow_task_events()

    def start(self, request_id: str, identity: str) -> WorkflowTaskInfo:
        wt = self.s.workflow_task
        assert wt is not None and not wt.started_event_id
        now = self._history.now()
        wt.started_time_ns = now
        wt.request_id = request_id
        wt.identity = identity
        if not wt.is_virtual:
            attrs = self._history.started_event_attributes(
                wt.scheduled_event_id, identity, request_id
            )
            attrs.target_worker_deployment_version_changed = (
                self._versioning.pinned_target_changed()
            )
            event = self._history.new_event(
                ET.EVENT_TYPE_WORKFLOW_TASK_STARTED, "workflow_task_started_event_attributes", attrs
            )
            self._history.write(event)
            wt.started_event_id = event.event_id
        else:
            wt.started_event_id = wt.scheduled_event_id + 1
        if wt.timeout_ns:
            self._tasks.workflow_task_timeout(
                wt, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, now + wt.timeout_ns
            )
        self._history.mutation.dirty = True
        return wt

    def restart_for_reset(self, request_id: str, identity: str) -> None:
        """A reset's new run starts the task its history ends with, to fail it at once: from
        attempt 1, and without a timeout."""
        wt = self.s.workflow_task
        assert wt is not None
        wt.attempt = 1
        if not wt.started_event_id:
            self.start(wt.request_id or request_id, identity)
            self._tasks.drop_timer_tasks()

    def complete(self, identity: str, **fields: object) -> history_pb.HistoryEvent:
        wt = self.s.workflow_task
        assert wt is not None
        self._history.materialize_virtual_workflow_task()
        attrs = history_pb.WorkflowTaskCompletedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            identity=identity,
            **fields,  # type: ignore[arg-type]
        )
        event = self._history.new_event(
            ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, "workflow_task_completed_event_attributes", attrs
        )
        self._history.write(event)
        build_id = attrs.deployment.build_id or attrs.worker_version.build_id
        self._add_reset_point(attrs.binary_checksum, build_id, event.event_id)
        self.s.last_completed_wt_started_event_id = wt.started_event_id
        self.s.workflow_task = None
        self.s.next_workflow_task_attempt = 1
        return event

    def _add_reset_point(self, binary_checksum: str, build_id: str, event_id: int) -> None:
        """The first task a build completes is a point the workflow can be reset to."""
        s = self.s
        points = s.reset_points
        if any(p.binary_checksum == binary_checksum and p.build_id == build_id for p in points):
            return
        point = workflow_pb.ResetPointInfo(
            binary_checksum=binary_checksum,
            build_id=build_id,
            run_id=s.run_id,
            first_workflow_task_completed_id=event_id,
            create_time=ts(self._history.now()),
            resettable=not (s.children or s.signal_requests or s.cancel_requests),
        )
        s.reset_points = (points + [point])[-MAX_RESET_POINTS:]

    def fail(
        self, cause: int, failure: failure_pb.Failure | None, identity: str, **reset: object
    ) -> None:
        """Fail the started workflow task: a failed first attempt is written; retries are not.

        `reset` carries base_run_id / new_run_id / fork_event_version when a reset fails it.
        """
        wt = self.s.workflow_task
        assert wt is not None
        attrs = history_pb.WorkflowTaskFailedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            cause=cause,  # type: ignore[arg-type]
            identity=identity,
            **reset,  # type: ignore[arg-type]
        )
        if failure is not None:
            attrs.failure.CopyFrom(failure)
        self._end_failed(
            wt,
            ET.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            "workflow_task_failed_event_attributes",
            attrs,
            increment_attempt=cause not in ATTEMPT_CLEARING_CAUSES,
        )

    def _end_failed(
        self,
        wt: WorkflowTaskInfo,
        event_type: int,
        attr_field: str,
        attrs: object,
        increment_attempt: bool = True,
    ) -> None:
        """Only a failed first attempt is written (a speculative one is written first); the
        next is a retry. A failure on a sticky queue first retries on the normal queue without
        a new attempt."""
        if wt.speculative:
            self._history.materialize_virtual_workflow_task()
        if wt.attempt == 1:
            self._history.write(self._history.new_event(event_type, attr_field, attrs))
        if self.s.sticky_task_queue:
            increment_attempt = False
            self.clear_sticky()
        self.s.next_workflow_task_attempt = wt.attempt + 1 if increment_attempt else 1
        self.s.workflow_task = None
        self._history.mutation.dirty = True

    def time_out(self, timeout_type: int) -> None:
        wt = self.s.workflow_task
        assert wt is not None
        attrs = history_pb.WorkflowTaskTimedOutEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            timeout_type=timeout_type,  # type: ignore[arg-type]
        )
        self._end_failed(
            wt,
            ET.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            "workflow_task_timed_out_event_attributes",
            attrs,
            increment_attempt=timeout_type != TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
        )

    def discard_speculative(self) -> None:
        """The speculative task changed nothing (only rejections): it leaves no events."""
        wt = self.s.workflow_task
        assert wt is not None and wt.speculative
        self.s.workflow_task = None
        self._history.mutation.dirty = True
