"""The activity state machine and its command handlers, driven in process."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.failure.v1 import message_pb2 as failure_pb

from aion.common.timeutil import SECOND, dur
from aion.history.commands import CommandError
from aion.history.state.execution import ActivityInfo
from tests.unit.harness import CT, IDENTITY, Workflow, command

TimeoutType = workflow_pb2.TimeoutType
ST2C, S2S, S2C, HB = 1, 2, 3, 4  # TimeoutType values as timer data records them


def schedule(activity_id: str = "a1", **timeouts: int) -> command_pb.Command:
    return command(
        CT.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        activity_id=activity_id,
        activity_type=common_pb.ActivityType(name="Greet"),
        **{f"{name}_timeout": dur(seconds * SECOND) for name, seconds in timeouts.items()},
    )


def scheduled(wf: Workflow, **timeouts: int) -> ActivityInfo:
    wf.run_first_task(schedule("a1", **timeouts))
    return wf.ms.s.activities[5]


def test_schedule_writes_the_event_a_task_and_the_timeouts() -> None:
    wf = Workflow()
    done = wf.run_first_task(schedule(start_to_close=30, schedule_to_close=60))
    assert done.event_types == ["WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_SCHEDULED"]
    attrs = done.events[1].activity_task_scheduled_event_attributes
    assert attrs.task_queue.name == "tq"  # the workflow's queue by default
    assert attrs.schedule_to_start_timeout.seconds == 60  # filled in from schedule-to-close
    assert done.queues == [("activity", "tq", 5)]
    assert done.timers == [
        ("activity_timeout", 60 * SECOND, {"id": 5, "stamp": 2, "type": S2S}),
        ("activity_timeout", 60 * SECOND, {"id": 5, "stamp": 0, "type": S2C}),
    ]


def test_start_arms_start_to_close_and_heartbeat() -> None:
    wf = Workflow()
    ai = scheduled(wf, start_to_close=30, heartbeat=5)
    wf.clock.advance(SECOND)
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    started = wf.commit()
    assert started.event_types == []  # written with the activity's close
    assert started.timers == [
        ("activity_timeout", 31 * SECOND, {"id": 5, "stamp": 2, "type": ST2C}),
        ("activity_timeout", 6 * SECOND, {"id": 5, "stamp": 2, "type": HB}),
    ]
    assert ai.heartbeat_timer_ns == wf.clock() + 5 * SECOND
    wf.ms.activities.complete(ai, None, IDENTITY)
    done = wf.commit()
    assert done.event_types == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED"]
    assert done.events[0].event_time.ToNanoseconds() == ai.started_time_ns
    assert not wf.ms.s.activities and not wf.ms.s.activity_ids


def test_a_close_during_a_workflow_task_is_buffered() -> None:
    wf = Workflow()
    ai = scheduled(wf, start_to_close=30)
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    wf.signal_and_start_task()
    wf.ms.activities.complete(ai, None, IDENTITY)
    assert wf.commit().event_types == []
    assert len(wf.ms.s.buffered_events) == 2


def test_a_retry_writes_no_event_until_the_last_attempt() -> None:
    wf = Workflow()
    ai = scheduled(wf, start_to_close=30)
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    wf.commit()
    wf.ms.activities.retry(ai, failure_pb.Failure(message="boom"), 2 * SECOND)
    retry = wf.commit()
    assert retry.event_types == []
    assert retry.timers == [("activity_retry", 2 * SECOND, {"id": 5, "stamp": 3})]
    wf.ms.activities.dispatch_retry(ai)
    assert wf.commit().queues == [("activity", "tq", 5)]
    wf.ms.activities.start(ai, "poll-2", IDENTITY)
    wf.ms.activities.fail(ai, failure_pb.Failure(message="boom"), 5, IDENTITY)
    done = wf.commit()
    assert done.event_types == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_FAILED"]
    assert done.events[0].activity_task_started_event_attributes.attempt == 2
    assert done.events[0].activity_task_started_event_attributes.last_failure.message == "boom"


def test_pause_stales_a_waiting_attempt_and_unpause_dispatches_it() -> None:
    wf = Workflow()
    ai = scheduled(wf, start_to_close=30, schedule_to_close=100)
    wf.ms.activities.pause(ai, "admin", "why not", "req-1")
    assert ai.paused and ai.stamp == 3
    assert wf.commit().queues == []
    wf.clock.advance(10 * SECOND)
    wf.ms.activities.unpause(ai, reset_attempts=False, reset_heartbeat=False, jitter_ns=0)
    resumed = wf.commit()
    assert resumed.timers == [
        ("activity_timeout", 100 * SECOND, {"id": 5, "stamp": 0, "type": S2C}),
        ("activity_timeout", 110 * SECOND, {"id": 5, "stamp": 4, "type": S2S}),
    ]
    assert resumed.queues == [("activity", "tq", 5)]


def test_unpausing_a_running_attempt_rearms_its_timeouts_from_when_it_started() -> None:
    wf = Workflow()
    ai = scheduled(wf, start_to_close=30, heartbeat=5)
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    wf.ms.activities.pause(ai, "admin", "", "")
    wf.commit()
    wf.clock.advance(2 * SECOND)
    wf.ms.activities.unpause(ai, reset_attempts=False, reset_heartbeat=False, jitter_ns=0)
    assert wf.commit().timers == [
        ("activity_timeout", 3600 * SECOND, {"id": 5, "stamp": 0, "type": S2C}),
        ("activity_timeout", 30 * SECOND, {"id": 5, "stamp": 2, "type": ST2C}),
        ("activity_timeout", 5 * SECOND, {"id": 5, "stamp": 2, "type": HB}),
    ]


def test_reset_of_a_waiting_attempt_dispatches_attempt_one() -> None:
    wf = Workflow()
    ai = scheduled(wf, start_to_close=30)
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    wf.ms.activities.retry(ai, failure_pb.Failure(message="boom"), 60 * SECOND)
    wf.commit()
    wf.ms.activities.reset(ai, reset_heartbeats=True, keep_paused=False, jitter_ns=0)
    assert ai.attempt == 1
    assert wf.commit().queues == [("activity", "tq", 5)]
    assert not ai.reset_requested  # applies to the attempt it was asked for only


def test_cancel_before_start_cancels_after_the_command_events() -> None:
    wf = Workflow()
    scheduled(wf, start_to_close=30)
    wf.signal_and_start_task()
    wf.complete_task(
        command(CT.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK, scheduled_event_id=5),
        command(CT.COMMAND_TYPE_START_TIMER, timer_id="t1", start_to_fire_timeout=dur(SECOND)),
    )
    assert wf.commit().event_types == [
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_CANCEL_REQUESTED",
        "TIMER_STARTED",
        "ACTIVITY_TASK_CANCELED",
    ]
    assert not wf.ms.s.activities


def test_cancel_of_an_activity_that_just_finished_records_the_request_only() -> None:
    wf = Workflow()
    ai = scheduled(wf, start_to_close=30)
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    wf.signal_and_start_task()
    wf.ms.activities.complete(ai, None, IDENTITY)  # buffered
    wf.complete_task(command(CT.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK, scheduled_event_id=5))
    assert wf.commit().event_types == [
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_CANCEL_REQUESTED",
    ]


def test_bad_schedule_commands_fail_the_task() -> None:
    wf = Workflow()
    scheduled(wf, start_to_close=30)
    wf.signal_and_start_task()
    with pytest.raises(CommandError, match="already exists"):
        wf.complete_task(schedule(start_to_close=30))
    with pytest.raises(CommandError, match="StartToCloseTimeout or ScheduleToCloseTimeout"):
        Workflow().run_first_task(schedule("a2"))
