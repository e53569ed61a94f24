"""The activity state machine: scheduled, dispatched per attempt (retries write no events),
started, heartbeating, paused or reset, then completed, failed, timed out or canceled."""

from __future__ import annotations

import random

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2, workflow_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.common.timeutil import ns_of, ts
from aion.history.state.execution import ActivityInfo
from aion.history.state.machine import StateMachine

ET = event_type_pb2.EventType
TimeoutType = workflow_pb2.TimeoutType


class Activities(StateMachine):
    """The execution's pending activities (`state.activities`, by scheduled event id)."""

    def schedule(
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
        event = self._history.append(
            ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            "activity_task_scheduled_event_attributes",
            event_attrs,
        )
        now = self._history.now()
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
        self._dispatch_attempt(ai, now)
        self._tasks.activity_scheduled(ai, now)
        return ai

    def _dispatch_attempt(self, ai: ActivityInfo, now: int) -> None:
        ai.stamp = self.s.new_stamp()
        ai.attempt_scheduled_time_ns = now
        ai.started_time_ns = 0
        _begin_new_attempt(ai)
        self._tasks.activity_attempt(ai, now)

    def start(self, ai: ActivityInfo, request_id: str, identity: str) -> None:
        now = self._history.now()
        ai.started_time_ns = now
        ai.started_request_id = request_id
        ai.started_identity = identity
        ai.last_worker_identity = identity
        ai.last_heartbeat_ns = 0
        self._tasks.activity_started(ai, now)
        self._history.mutation.dirty = True

    def rearm_heartbeat_timeout(self, ai: ActivityInfo, fire_time_ns: int) -> None:
        """The heartbeat timer fired before the timeout: wait again from the last beat."""
        self._tasks.activity_timeout(ai, TimeoutType.TIMEOUT_TYPE_HEARTBEAT, fire_time_ns)

    def heartbeat(self, ai: ActivityInfo, details: common_pb.Payloads | None) -> None:
        if details is not None and details.ByteSize():
            ai.heartbeat_details = details
        ai.last_heartbeat_ns = self._history.now()
        self._history.mutation.dirty = True

    def keep_details(self, ai: ActivityInfo, details: common_pb.Payloads) -> None:
        """A failed attempt's last details, passed to the next attempt as heartbeat details."""
        ai.heartbeat_details = details

    def _write_started(self, ai: ActivityInfo) -> history_pb.HistoryEvent:
        attrs = history_pb.ActivityTaskStartedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            identity=ai.started_identity,
            request_id=ai.started_request_id,
            attempt=ai.attempt,
        )
        if ai.last_failure is not None:
            attrs.last_failure.CopyFrom(ai.last_failure)
        event = self._history.append(
            ET.EVENT_TYPE_ACTIVITY_TASK_STARTED, "activity_task_started_event_attributes", attrs
        )
        event.event_time.CopyFrom(ts(ai.started_time_ns))
        return event

    def _started_event_id(self, ai: ActivityInfo) -> int:
        """The started event of a running attempt, written now; 0 when none runs."""
        return self._write_started(ai).event_id if ai.started_time_ns else 0

    def _close(self, ai: ActivityInfo, event_type: int, attr_field: str, attrs: object) -> None:
        self._history.append_or_buffer(self._history.new_event(event_type, attr_field, attrs))
        self.s.activities.pop(ai.scheduled_event_id, None)
        self.s.activity_ids.pop(ai.activity_id, None)

    def complete(self, ai: ActivityInfo, result: common_pb.Payloads | None, identity: str) -> None:
        started = self._write_started(ai)
        attrs = history_pb.ActivityTaskCompletedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=started.event_id,
            identity=identity,
        )
        if result is not None:
            attrs.result.CopyFrom(result)
        self._close(
            ai,
            ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            "activity_task_completed_event_attributes",
            attrs,
        )

    def fail(
        self, ai: ActivityInfo, failure: failure_pb.Failure, retry_state: int, identity: str
    ) -> None:
        started = self._write_started(ai)
        attrs = history_pb.ActivityTaskFailedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=started.event_id,
            identity=identity,
            failure=failure,
            retry_state=retry_state,  # type: ignore[arg-type]
        )
        self._close(
            ai, ET.EVENT_TYPE_ACTIVITY_TASK_FAILED, "activity_task_failed_event_attributes", attrs
        )

    def time_out(self, ai: ActivityInfo, failure: failure_pb.Failure, retry_state: int) -> None:
        attrs = history_pb.ActivityTaskTimedOutEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=self._started_event_id(ai),
            failure=failure,
            retry_state=retry_state,  # type: ignore[arg-type]
        )
        self._close(
            ai,
            ET.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
            "activity_task_timed_out_event_attributes",
            attrs,
        )

    def cancel(self, ai: ActivityInfo, details: common_pb.Payloads | None, identity: str) -> None:
        attrs = history_pb.ActivityTaskCanceledEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            started_event_id=self._started_event_id(ai),
            latest_cancel_requested_event_id=ai.cancel_requested_event_id,
            identity=identity,
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        self._close(
            ai,
            ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
            "activity_task_canceled_event_attributes",
            attrs,
        )

    def request_cancel(self, wt_completed_id: int, scheduled_event_id: int) -> int:
        """Record the workflow's request to cancel an activity (also one that has just finished,
        its close event still buffered); returns the request's event id."""
        event = self._history.append(
            ET.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
            "activity_task_cancel_requested_event_attributes",
            history_pb.ActivityTaskCancelRequestedEventAttributes(
                scheduled_event_id=scheduled_event_id,
                workflow_task_completed_event_id=wt_completed_id,
            ),
        )
        ai = self.s.activities.get(scheduled_event_id)
        if ai is not None:
            ai.cancel_requested = True
            ai.cancel_requested_event_id = event.event_id
        return event.event_id

    def retry(self, ai: ActivityInfo, failure: failure_pb.Failure, backoff_ns: int) -> None:
        """Schedule the next attempt after `backoff_ns`; no history event until the last one.

        A paused activity's next attempt waits for UnpauseActivity instead.
        """
        ai.attempt += 1
        ai.last_failure = failure
        ai.started_time_ns = 0
        ai.stamp = self.s.new_stamp()
        _begin_new_attempt(ai)
        if not ai.paused:
            self._tasks.activity_retry(ai, self._history.now() + backoff_ns)
        self._history.mutation.dirty = True

    def dispatch_retry(self, ai: ActivityInfo) -> None:
        """The retry backoff is over: the next attempt waits for a worker."""
        self._dispatch_attempt(ai, self._history.now())
        self._history.mutation.dirty = True

    def pause(self, ai: ActivityInfo, identity: str, reason: str, request_id: str) -> None:
        """A running attempt may finish; a waiting one is not dispatched until unpaused."""
        if not ai.started_time_ns:
            ai.stamp = self.s.new_stamp()  # its queued task and retry timer become stale
        ai.paused = True
        ai.pause_time_ns = self._history.now()
        ai.pause_identity = identity
        ai.pause_reason = reason
        ai.pause_request_id = request_id
        self._history.mutation.dirty = True

    def unpause(
        self, ai: ActivityInfo, reset_attempts: bool, reset_heartbeat: bool, jitter_ns: int
    ) -> None:
        if reset_attempts:
            ai.attempt = 1
        if reset_heartbeat:
            ai.heartbeat_details = None
            ai.last_heartbeat_ns = 0
        self._resume(ai, jitter_ns)

    def reset(
        self, ai: ActivityInfo, reset_heartbeats: bool, keep_paused: bool, jitter_ns: int
    ) -> None:
        """Back to attempt 1; a running attempt is told through its heartbeats."""
        ai.attempt = 1
        ai.reset_requested = True
        ai.reset_heartbeats = ai.reset_heartbeats or reset_heartbeats
        if ai.paused and not keep_paused:
            self._resume(ai, jitter_ns)
        elif not ai.paused and not ai.started_time_ns:
            self._dispatch_after(ai, jitter_ns)  # a new stamp: the pending retry goes stale
        self._history.mutation.dirty = True

    def update_options(
        self,
        ai: ActivityInfo,
        task_queue: str,
        timeouts_ns: tuple[int, int, int, int],
        retry_policy: common_pb.RetryPolicy,
    ) -> None:
        """UpdateActivityOptions: new task queue, timeouts (schedule-to-close, schedule-to-start,
        start-to-close, heartbeat) and retry policy. A waiting attempt is dispatched again at
        once with them (a retry backoff under way ends early); a running one keeps running
        under the new timeouts; a paused one takes them when unpaused."""
        ai.task_queue = task_queue
        (
            ai.schedule_to_close_ns,
            ai.schedule_to_start_ns,
            ai.start_to_close_ns,
            ai.heartbeat_ns,
        ) = timeouts_ns
        ai.retry_policy = retry_policy
        if not ai.paused:
            now = self._history.now()
            if not ai.started_time_ns:
                self._dispatch_attempt(ai, now)
            self._tasks.activity_resumed(ai, now)
        self._history.mutation.dirty = True

    def _resume(self, ai: ActivityInfo, jitter_ns: int) -> None:
        """Unpause: dispatch a waiting attempt, or re-arm the timeouts of a running one."""
        ai.paused = False
        ai.pause_time_ns = 0
        ai.pause_identity = ai.pause_reason = ai.pause_request_id = ""
        self._tasks.activity_resumed(ai, self._history.now())
        if not ai.started_time_ns:
            self._dispatch_after(ai, jitter_ns)
        self._history.mutation.dirty = True

    def _dispatch_after(self, ai: ActivityInfo, jitter_ns: int) -> None:
        if jitter_ns > 0:
            ai.stamp = self.s.new_stamp()
            delay = random.randrange(jitter_ns)
            self._tasks.activity_retry(ai, self._history.now() + delay)
        else:
            self._dispatch_attempt(ai, self._history.now())

    def restart_pending(self, now: int) -> None:
        """After a reset: every pending activity starts over from attempt 1."""
        for ai in self.s.activities.values():
            ai.attempt = 1
            self._dispatch_attempt(ai, now)
            self._tasks.activity_scheduled(ai, now)


def _begin_new_attempt(ai: ActivityInfo) -> None:
    """A reset applies to the attempt that was running when it was asked for, not later."""
    if ai.reset_heartbeats:
        ai.heartbeat_details = None
        ai.last_heartbeat_ns = 0
    ai.reset_requested = False
    ai.reset_heartbeats = False
