"""The user timer state machine: started, then fired or canceled."""

from __future__ import annotations

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.enums.v1 import event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.common.timeutil import ns_of
from aion.history.state.execution import TimerInfo
from aion.history.state.machine import StateMachine
from aion.history.state.tasks import USER_TIMER

ET = event_type_pb2.EventType


class Timers(StateMachine):
    """The execution's pending user timers (`state.timers`, by timer id)."""

    def start(self, wt_completed_id: int, attrs: command_pb.StartTimerCommandAttributes) -> None:
        event = self._history.append(
            ET.EVENT_TYPE_TIMER_STARTED,
            "timer_started_event_attributes",
            history_pb.TimerStartedEventAttributes(
                timer_id=attrs.timer_id,
                start_to_fire_timeout=attrs.start_to_fire_timeout,
                workflow_task_completed_event_id=wt_completed_id,
            ),
        )
        expiry = self._history.now() + ns_of(attrs.start_to_fire_timeout)
        self.s.timers[attrs.timer_id] = TimerInfo(attrs.timer_id, event.event_id, expiry)
        self._tasks.timer(expiry, USER_TIMER, id=attrs.timer_id, started=event.event_id)

    def fire(self, timer: TimerInfo) -> None:
        self._history.append(
            ET.EVENT_TYPE_TIMER_FIRED,
            "timer_fired_event_attributes",
            history_pb.TimerFiredEventAttributes(
                timer_id=timer.timer_id, started_event_id=timer.started_event_id
            ),
        )
        del self.s.timers[timer.timer_id]

    def cancelable(self, timer_id: str) -> TimerInfo | None:
        """The pending timer a CancelTimer command may cancel. One that fired while the
        workflow task ran is pending again: its buffered TimerFired is dropped so the cancel
        wins."""
        timer = self.s.timers.get(timer_id)
        if timer is not None:
            return timer
        for event in self.s.buffered_events:
            fired = event.timer_fired_event_attributes
            if event.HasField("timer_fired_event_attributes") and fired.timer_id == timer_id:
                self.s.buffered_events.remove(event)
                timer = self.s.timers[timer_id] = TimerInfo(timer_id, fired.started_event_id, 0)
                return timer
        return None

    def cancel(self, wt_completed_id: int, timer: TimerInfo, identity: str) -> None:
        self._history.append(
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
