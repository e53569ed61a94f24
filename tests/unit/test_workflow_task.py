"""The workflow task state machine, driven in process."""

from __future__ import annotations

from temporalio.api.enums.v1 import failed_cause_pb2, workflow_pb2

from aion.common.timeutil import SECOND
from tests.unit.harness import CT, IDENTITY, Workflow, command

TimeoutType = workflow_pb2.TimeoutType
FAILED = failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE


def test_start_writes_started_and_schedules_the_first_task() -> None:
    wf = Workflow()
    first = wf.commit()
    assert first.event_types == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    assert [e.event_id for e in first.events] == [1, 2]
    assert first.queues == [("workflow", "tq", 2)]
    assert first.timers == [("workflow_run_timeout", 3600 * SECOND, {})]
    # Task ids count up in the order events and tasks are created.
    assert [e.task_id for e in first.events] == [1, 3]
    assert first.timer_tasks[0].task_id == 2 and first.queue_tasks[0].task_id == 4


def test_started_then_completed_records_a_reset_point() -> None:
    wf = Workflow()
    wf.commit()
    wf.clock.advance(SECOND)
    started = wf.start_task()
    assert started.event_types == ["WORKFLOW_TASK_STARTED"]
    assert started.timers == [
        ("workflow_task_timeout", 11 * SECOND, {"id": 2, "stamp": 1, "type": 1})
    ]
    wf.complete_task()
    done = wf.commit()
    assert done.event_types == ["WORKFLOW_TASK_COMPLETED"]
    attrs = done.events[0].workflow_task_completed_event_attributes
    assert (attrs.scheduled_event_id, attrs.started_event_id, attrs.identity) == (2, 3, IDENTITY)
    assert wf.ms.s.workflow_task is None
    assert wf.ms.s.last_completed_wt_started_event_id == 3
    assert [p.first_workflow_task_completed_id for p in wf.ms.s.reset_points] == [4]


def test_a_failed_first_attempt_is_written_and_its_retries_are_not() -> None:
    wf = Workflow()
    wf.commit()
    wf.start_task()
    wf.ms.workflow_task.fail(FAILED, None, IDENTITY)
    assert wf.commit().event_types == ["WORKFLOW_TASK_FAILED"]
    retry = wf.ms.workflow_task.schedule()
    assert retry.attempt == 2 and retry.is_virtual
    scheduled = wf.commit()
    assert scheduled.event_types == []
    assert scheduled.queues == [("workflow", "tq", 5)]
    wf.start_task()
    transient = wf.ms.workflow_task.transient_events()
    assert [e.event_id for e in transient] == [5, 6]
    wf.ms.workflow_task.fail(FAILED, None, IDENTITY)
    assert wf.commit().event_types == []
    assert wf.ms.s.next_workflow_task_attempt == 3
    wf.ms.workflow_task.schedule()
    wf.start_task()
    wf.complete_task()
    # The attempt that completes writes its scheduled and started events first.
    assert wf.commit().event_types == [
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
    ]


def test_a_signal_during_a_retry_moves_the_transient_task_behind_it() -> None:
    wf = Workflow()
    wf.commit()
    wf.start_task()
    wf.ms.workflow_task.fail(FAILED, None, IDENTITY)
    wf.ms.workflow_task.schedule()
    wf.commit()
    wf.ms.signal("go", None, "client", None)
    assert wf.commit().event_types == ["WORKFLOW_EXECUTION_SIGNALED"]
    assert wf.ms.s.workflow_task is not None
    assert wf.ms.s.workflow_task.scheduled_event_id == 6


def test_a_timed_out_sticky_task_goes_back_to_the_normal_queue() -> None:
    wf = Workflow()
    wf.run_first_task()
    wf.ms.workflow_task.set_sticky("sticky-tq", 5 * SECOND)
    wf.ms.signal("go", None, "client", None)
    wt = wf.ms.workflow_task.schedule()
    sticky = wf.commit()
    assert sticky.queues == [("workflow", "sticky-tq", wt.scheduled_event_id)]
    assert sticky.timers == [
        ("workflow_task_timeout", 5 * SECOND, {"id": wt.scheduled_event_id, "stamp": 2, "type": 2})
    ]
    assert sticky.events[-1].workflow_task_scheduled_event_attributes.task_queue.kind == 2
    wf.ms.workflow_task.time_out(TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START)
    assert wf.commit().event_types == ["WORKFLOW_TASK_TIMED_OUT"]
    assert wf.ms.s.sticky_task_queue == ""
    assert wf.ms.s.next_workflow_task_attempt == 1  # schedule-to-start is no new attempt
    wf.ms.workflow_task.schedule()
    assert wf.commit().queues == [("workflow", "tq", 8)]


def test_a_sticky_queue_without_a_worker_is_skipped() -> None:
    wf = Workflow(is_sticky_alive=lambda namespace_id, queue: False)
    wf.run_first_task()
    wf.ms.workflow_task.set_sticky("sticky-tq", 5 * SECOND)
    wf.ms.signal("go", None, "client", None)
    wf.ms.workflow_task.schedule()
    assert wf.commit().queues == [("workflow", "tq", 6)]


def test_a_speculative_task_leaves_no_events_unless_something_is_written() -> None:
    wf = Workflow()
    wf.run_first_task()
    wt = wf.ms.workflow_task.schedule(speculative=True)
    assert wt.speculative
    assert wf.commit().event_types == []
    wf.ms.workflow_task.discard_speculative()
    assert wf.ms.s.workflow_task is None
    wf.ms.workflow_task.schedule(speculative=True)
    wf.commit()
    wf.ms.signal("go", None, "client", None)  # something to write: the task becomes real
    assert wf.commit().event_types == [
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
    ]


def test_events_from_outside_wait_for_the_running_task() -> None:
    wf = Workflow()
    wf.commit()
    wf.start_task()
    wf.ms.signal("go", None, "client", None)
    buffered = wf.commit()
    assert buffered.event_types == []
    assert len(wf.ms.s.buffered_events) == 1
    ctx = wf.complete_task()
    assert ctx.had_buffered_events
    wf.ms.workflow_task.schedule()
    assert wf.commit().event_types == [
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
    ]


def test_completing_the_workflow_closes_the_run() -> None:
    wf = Workflow()
    done = wf.run_first_task(command(CT.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION))
    assert done.event_types == ["WORKFLOW_TASK_COMPLETED", "WORKFLOW_EXECUTION_COMPLETED"]
    assert not wf.ms.running
    assert wf.ms.s.completion_event_id == 5


def test_the_first_transition_after_a_failover_fails_a_task_started_before_it() -> None:
    """A task started under version 1 is failed (FAILOVER_CLOSE_COMMAND) and scheduled again,
    at attempt 1, when the execution is first written at version 2; later transitions leave
    tasks alone."""
    wf = Workflow()
    wf.ms.s.failover_version = 1
    wf.commit()
    wf.start_task()
    wf.ms.stamp_version(2)
    failed = wf.commit()
    assert failed.event_types == ["WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SCHEDULED"]
    assert failed.events[0].workflow_task_failed_event_attributes.cause == (
        failed_cause_pb2.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND
    )
    assert failed.events[1].workflow_task_scheduled_event_attributes.attempt == 1
    assert {e.version for e in failed.events} == {2}
    assert wf.ms.s.workflow_task is not None and not wf.ms.workflow_task.started
    wf.start_task()
    wf.ms.stamp_version(2)
    assert wf.commit().event_types == []


def test_a_retried_task_not_started_at_a_failover_restarts_at_attempt_1() -> None:
    """A retry (attempt 2, no events) pending when the execution is first written at version 2
    becomes a normal task: its scheduled event written at attempt 1 with the id its queued task
    holds."""
    wf = Workflow()
    wf.ms.s.failover_version = 1
    wf.commit()
    wf.start_task()
    wf.ms.workflow_task.fail(FAILED, None, IDENTITY)
    wf.commit()
    retry = wf.ms.workflow_task.schedule()
    assert retry.attempt == 2 and retry.is_virtual
    wf.commit()
    wf.ms.stamp_version(2)
    restarted = wf.commit()
    assert restarted.event_types == ["WORKFLOW_TASK_SCHEDULED"]
    scheduled = restarted.events[0]
    assert (scheduled.event_id, scheduled.version) == (retry.scheduled_event_id, 2)
    assert scheduled.workflow_task_scheduled_event_attributes.attempt == 1
    assert not wf.ms.workflow_task.transient_events()
