"""The task generator: every durable task a transition creates (timer tasks, queue tasks for
matching, transfer tasks), including the re-arming of pending work after a reset."""

from __future__ import annotations

import json
from collections.abc import Callable

from temporalio.api.enums.v1 import workflow_pb2

from aion.history.state.builder import Mutation
from aion.history.state.execution import ActivityInfo, ExecutionState, WorkflowTaskInfo
from aion.history.state.versioning import Versioning
from aion.persistence import QueueTask, TimerTask

TimeoutType = workflow_pb2.TimeoutType

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
# A closed run's retention is over: delete it (history, state, visibility).
DELETE_EXECUTION = "delete_execution"


class TaskGenerator:
    """Adds the tasks of one execution to the current mutation."""

    def __init__(
        self,
        state: ExecutionState,
        mutation: Mutation,
        shard_id: int,
        next_task_id: Callable[[], int],
        now: Callable[[], int],
        versioning: Versioning,
    ) -> None:
        self.s = state
        self.mutation = mutation
        self.shard_id = shard_id
        self.next_task_id = next_task_id
        self.now = now
        self._versioning = versioning

    # ---- the two kinds of task ---------------------------------------------------------
    def timer(self, fire_time_ns: int, kind: str, **data: object) -> None:
        """A timer task of `kind`, due at `fire_time_ns`."""
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

    def queue(self, kind: str, task_queue: str, scheduled_event_id: int, stamp: int) -> None:
        """A workflow or activity task for matching (to the version the workflow is pinned to)."""
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
                version=self._versioning.pinned_version,
            )
        )

    def transfer(self, kind: str, **data: object) -> None:
        """A task due at once that acts on another execution once this transition commits."""
        self.timer(self.now(), kind, **data)

    def drop_queue_task(self, kind: str, scheduled_event_id: int) -> None:
        """Drop a task this transition created: it is handed to the worker in the response."""
        self.mutation.queue_tasks = [
            t
            for t in self.mutation.queue_tasks
            if not (t.kind == kind and t.scheduled_event_id == scheduled_event_id)
        ]

    def drop_timer_tasks(self) -> None:
        """Drop the timer tasks this transition created so far."""
        self.mutation.timer_tasks.clear()

    def timer_task_done(self, task_id: int) -> None:
        """A stored timer task is finished: it is deleted with this transition."""
        self.mutation.done_timer_task_ids.append(task_id)

    def queue_task_done(self, task_id: int) -> None:
        """A stored queue task is finished: it is deleted with this transition."""
        self.mutation.done_queue_task_ids.append(task_id)

    # ---- the workflow and its workflow tasks -------------------------------------------
    def workflow_timeouts(self, run_deadline_ns: int) -> None:
        """The run timeout (when the run has one) and the execution timeout (when set)."""
        if self.s.run_timeout_ns:
            self.timer(run_deadline_ns, WORKFLOW_RUN_TIMEOUT)
        if self.s.expiration_time_ns:
            self.timer(self.s.expiration_time_ns, WORKFLOW_EXECUTION_TIMEOUT)

    def workflow_task_timeout(
        self, wt: WorkflowTaskInfo, timeout_type: int, fire_time_ns: int
    ) -> None:
        self.timer(
            fire_time_ns,
            WORKFLOW_TASK_TIMEOUT,
            id=wt.scheduled_event_id,
            stamp=wt.stamp,
            type=timeout_type,
        )

    # ---- activities --------------------------------------------------------------------
    def activity_timeout(self, ai: ActivityInfo, timeout_type: int, fire_time_ns: int) -> None:
        """The one place an activity timeout is armed. Schedule-to-close spans every attempt
        (stamp 0); the others belong to the current attempt."""
        if timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT:
            ai.heartbeat_timer_ns = fire_time_ns  # one per attempt; re-armed from the last beat
        stamp = 0 if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE else ai.stamp
        self.timer(
            fire_time_ns,
            ACTIVITY_TIMEOUT,
            id=ai.scheduled_event_id,
            stamp=stamp,
            type=timeout_type,
        )

    def activity_scheduled(self, ai: ActivityInfo, now: int) -> None:
        if ai.schedule_to_close_ns:
            self.activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, now + ai.schedule_to_close_ns
            )

    def activity_attempt(self, ai: ActivityInfo, now: int) -> None:
        """An attempt waits for a worker: its task and its schedule-to-start timeout."""
        self.queue("activity", ai.task_queue, ai.scheduled_event_id, ai.stamp)
        if ai.schedule_to_start_ns:
            self.activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, now + ai.schedule_to_start_ns
            )

    def activity_started(self, ai: ActivityInfo, now: int) -> None:
        if ai.start_to_close_ns:
            self.activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, now + ai.start_to_close_ns
            )
        if ai.heartbeat_ns:
            self.activity_timeout(ai, TimeoutType.TIMEOUT_TYPE_HEARTBEAT, now + ai.heartbeat_ns)

    def activity_resumed(self, ai: ActivityInfo, now: int) -> None:
        """Unpaused: its timeouts again, none before now. A waiting attempt is dispatched by the
        caller; a running one gets its start-to-close and heartbeat timeouts back."""
        if ai.schedule_to_close_ns:
            self.activity_timeout(
                ai,
                TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
                max(now, ai.scheduled_time_ns + ai.schedule_to_close_ns),
            )
        if not ai.started_time_ns:
            return
        if ai.start_to_close_ns:
            self.activity_timeout(
                ai,
                TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
                max(now, ai.started_time_ns + ai.start_to_close_ns),
            )
        if ai.heartbeat_ns:
            last_beat = max(ai.last_heartbeat_ns, ai.started_time_ns)
            self.activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_HEARTBEAT, max(now, last_beat + ai.heartbeat_ns)
            )

    def activity_retry(self, ai: ActivityInfo, fire_time_ns: int) -> None:
        self.timer(fire_time_ns, ACTIVITY_RETRY, id=ai.scheduled_event_id, stamp=ai.stamp)

    # ---- after a reset -----------------------------------------------------------------
    def rearm_timers(self, now: int) -> None:
        """Pending user timers and the workflow's timeouts, re-armed after a reset (the run's
        activities are dispatched afresh by `Activities.restart_pending`)."""
        for timer in self.s.timers.values():
            self.timer(
                timer.expiry_time_ns, USER_TIMER, id=timer.timer_id, started=timer.started_event_id
            )
        self.workflow_timeouts(now + self.s.run_timeout_ns)
