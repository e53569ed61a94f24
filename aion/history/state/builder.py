"""The history builder: appends events, buffers those that arrive during a workflow task, and
keeps the version history.

Everything one transition writes (events, durable tasks, tasks it finished, whether the snapshot
changed) is gathered in a `Mutation` for the engine to commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import event_type_pb2, task_queue_pb2, workflow_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue_pb

from aion.common.limits import Limits
from aion.common.timeutil import dur, ts
from aion.history.state.execution import ExecutionState, VersionHistoryItem
from aion.persistence import QueueTask, TimerTask

ET = event_type_pb2.EventType
Reason = workflow_pb2.SuggestContinueAsNewReason

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

BUFFERED_EVENT_ID = -123  # stands for an event id while its event waits in the buffer
CHILD_CLOSED_EVENT_TYPES = {
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
}


@dataclass
class Mutation:
    """What one transition adds, gathered for the engine to commit."""

    events: list[history_pb.HistoryEvent] = field(default_factory=list)
    timer_tasks: list[TimerTask] = field(default_factory=list)
    queue_tasks: list[QueueTask] = field(default_factory=list)
    done_timer_task_ids: list[int] = field(default_factory=list)
    done_queue_task_ids: list[int] = field(default_factory=list)
    batch_starts: list[int] = field(default_factory=list)  # events beginning a new batch
    dirty: bool = False  # the snapshot changed (with or without events)

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.timer_tasks
            or self.queue_tasks
            or self.done_timer_task_ids
            or self.done_queue_task_ids
        )

    def reset(self) -> None:
        """Start the next transition (new lists: a transaction may still hold the old ones)."""
        self.events = []
        self.timer_tasks = []
        self.queue_tasks = []
        self.done_timer_task_ids = []
        self.done_queue_task_ids = []
        self.batch_starts = []
        self.dirty = False


class HistoryBuilder:
    """Writes one execution's events into its state and the current mutation."""

    def __init__(
        self,
        state: ExecutionState,
        mutation: Mutation,
        next_task_id: Callable[[], int],
        now: Callable[[], int],
        limits: Limits,
    ) -> None:
        self.s = state
        self.mutation = mutation
        self.next_task_id = next_task_id
        self.now = now
        self.limits = limits
        # How many updates are admitted but not accepted yet (set by the update state machine).
        self.admitted_updates: Callable[[], int] = lambda: 0

    def continue_as_new_reasons(self) -> list[Reason.ValueType]:
        """Why a workflow task started now suggests continue-as-new (none: it does not), at
        Temporal's thresholds: the started event's id, the history's size, the updates."""
        reasons: list[Reason.ValueType] = []
        limits = self.limits
        if self.s.history_size_bytes >= limits.suggest_continue_as_new_bytes:
            reasons.append(Reason.SUGGEST_CONTINUE_AS_NEW_REASON_HISTORY_SIZE_TOO_LARGE)
        if self.s.next_event_id >= limits.suggest_continue_as_new_count:
            reasons.append(Reason.SUGGEST_CONTINUE_AS_NEW_REASON_TOO_MANY_HISTORY_EVENTS)
        if limits.updates_suggest_continue_as_new(len(self.s.updates) + self.admitted_updates()):
            reasons.append(Reason.SUGGEST_CONTINUE_AS_NEW_REASON_TOO_MANY_UPDATES)
        return reasons

    def started_event_attributes(
        self, wt_scheduled_event_id: int, identity: str, request_id: str
    ) -> history_pb.WorkflowTaskStartedEventAttributes:
        """A WorkflowTaskStarted event's attributes, with the history's size so far and whether
        (and why) the workflow should continue as new."""
        reasons = self.continue_as_new_reasons()
        return history_pb.WorkflowTaskStartedEventAttributes(
            scheduled_event_id=wt_scheduled_event_id,
            identity=identity,
            request_id=request_id,
            history_size_bytes=self.s.history_size_bytes,
            suggest_continue_as_new=bool(reasons),
            suggest_continue_as_new_reasons=reasons,
        )

    @property
    def written(self) -> int:
        """How many events this transition has written so far."""
        return len(self.mutation.events)

    def first_written_since(self, written: int) -> history_pb.HistoryEvent | None:
        """The first event written after `written` events, if any."""
        events = self.mutation.events
        return events[written] if len(events) > written else None

    def new_event(self, event_type: int, attr_field: str, attrs: object) -> history_pb.HistoryEvent:
        """An event stamped with the time, version and a task id, not yet written."""
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
        event = self.new_event(event_type, attr_field, attrs)
        event.worker_may_ignore = worker_may_ignore
        wt = self.s.workflow_task
        if wt is not None and wt.started_event_id and event_type not in UNBUFFERED_EVENT_TYPES:
            self.s.buffered_events.append(event)
            self.mutation.dirty = True
            return event
        if wt is not None and wt.is_virtual and not wt.started_event_id:
            if wt.speculative:  # something to write: the task becomes a normal one
                self.materialize_virtual_workflow_task()
            else:  # a retry's events stay virtual and move behind the new event
                wt.scheduled_event_id += 1
        self.write(event)
        return event

    def append_or_buffer(self, event: history_pb.HistoryEvent) -> None:
        """Write `event`, or buffer it while a workflow task is started, whatever its type."""
        wt = self.s.workflow_task
        if wt is not None and wt.started_event_id:
            self.s.buffered_events.append(event)
            self.mutation.dirty = True
        else:
            self.write(event)

    def write(self, event: history_pb.HistoryEvent) -> None:
        """Give `event` the next id and add it to history and the version history."""
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
        self.mutation.dirty = True

    def flush_buffered_events(self) -> list[history_pb.HistoryEvent]:
        """Write buffered events; ids that pointed at a buffered event get its real id."""
        child_started: dict[int, int] = {}  # initiated event id -> started event id
        for event in self.s.buffered_events:
            # Buffered on the cluster active before a failover, flushed on the new one: written
            # at the current version, so the version history never goes back.
            event.version = max(event.version, self.s.failover_version)
            if event.event_type in CHILD_CLOSED_EVENT_TYPES:
                attrs = getattr(event, event.WhichOneof("attributes") or "")
                if attrs.started_event_id == BUFFERED_EVENT_ID:
                    attrs.started_event_id = child_started[attrs.initiated_event_id]
            self.write(event)
            if event.event_type == ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                initiated = (
                    event.child_workflow_execution_started_event_attributes.initiated_event_id
                )
                child_started[initiated] = event.event_id
                child = self.s.children.get(initiated)
                if child is not None:
                    child.started_event_id = event.event_id
            elif event.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
                meta = event.workflow_execution_update_admitted_event_attributes.request.meta
                record = self.s.updates.get(meta.update_id)
                if record is not None and record.admitted_event_id == BUFFERED_EVENT_ID:
                    record.admitted_event_id = event.event_id
        flushed, self.s.buffered_events = self.s.buffered_events, []
        return flushed

    def copy_event(self, event: history_pb.HistoryEvent) -> None:
        """Write an event copied from another run's history (a reset), keeping its id."""
        copied = history_pb.HistoryEvent()
        copied.CopyFrom(event)
        copied.task_id = self.next_task_id()
        self.s.next_event_id = copied.event_id
        self.write(copied)

    # ---- the events of a workflow task that are not in history yet -------------------
    def task_queue_pb(self, name: str, sticky: bool) -> taskqueue_pb.TaskQueue:
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
                task_queue=self.task_queue_pb(wt.task_queue, wt.sticky),
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
                    workflow_task_started_event_attributes=self.started_event_attributes(
                        wt.scheduled_event_id, wt.identity, wt.request_id
                    ),
                )
            )
        return events

    def materialize_virtual_workflow_task(self) -> None:
        """A retried or speculative task that must be recorded gets its events written now."""
        wt = self.s.workflow_task
        assert wt is not None
        if not wt.is_virtual:
            return
        # As the reference: the task's events are a batch of their own, the next ones another.
        self.mutation.batch_starts.append(self.s.next_event_id)
        for event in self.transient_workflow_task_events():
            event.task_id = self.next_task_id()
            self.write(event)
        self.mutation.batch_starts.append(self.s.next_event_id)
        wt.speculative = False
