"""The task generator: workflow timeouts, transfer tasks on close, re-arming after a reset."""

from __future__ import annotations

from typing import Any

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import workflow_pb2

from aion.common.timeutil import SECOND, dur
from aion.history.state.environment import DAY_NS as DAY
from aion.history.state.execution import ParentInfo
from aion.visibility.search_attributes import keyword_payload
from tests.unit.harness import CT, IDENTITY, Workflow, command

HB = workflow_pb2.TimeoutType.TIMEOUT_TYPE_HEARTBEAT


def schedule_activity(**attrs: Any) -> command_pb.Command:
    return command(
        CT.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        activity_id="a1",
        activity_type=common_pb.ActivityType(name="Greet"),
        start_to_close_timeout=dur(30 * SECOND),
        **attrs,
    )


def test_the_run_timeout_is_capped_by_the_execution_timeout() -> None:
    wf = Workflow({"execution_timeout_ns": 60 * SECOND, "run_timeout_ns": 0})
    assert wf.commit().timers == [
        ("workflow_run_timeout", 60 * SECOND, {}),
        ("workflow_execution_timeout", 60 * SECOND, {}),
    ]


def test_a_backoff_delays_the_first_workflow_task() -> None:
    first = Workflow({"backoff_ns": 30 * SECOND}).commit()
    assert first.event_types == ["WORKFLOW_EXECUTION_STARTED"]
    assert first.queues == []
    assert first.timers[-1] == ("workflow_backoff", 30 * SECOND, {})


def test_closing_tells_the_parent_and_the_schedule() -> None:
    wf = Workflow(
        {
            "parent": ParentInfo("default", "ns-id", "parent-wf", "parent-run", 7),
            "search_attributes": common_pb.SearchAttributes(
                indexed_fields={"TemporalScheduledById": keyword_payload("sched-1")}
            ),
        }
    )
    done = wf.run_first_task(command(CT.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION))
    assert done.timers == [
        ("notify_parent", 0, {}),
        ("notify_schedule", 0, {"schedule_id": "sched-1"}),
        ("delete_execution", DAY, {}),  # the namespace's retention after the close
    ]


def test_a_continuing_run_leaves_the_parent_to_its_last_run() -> None:
    wf = Workflow({"parent": ParentInfo("default", "ns-id", "parent-wf", "parent-run", 7)})
    wf.clock.advance(10 * SECOND)
    done = wf.run_first_task(command(CT.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION))
    assert done.event_types[-1] == "WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
    assert done.timers == [("delete_execution", 10 * SECOND + DAY, {})]  # only its deletion
    new_run = wf.ms.new_run
    assert new_run is not None and new_run.s.parent == wf.ms.s.parent
    first = new_run.mutation
    assert [e.event_id for e in first.events] == [1, 2]
    assert [t.kind for t in first.queue_tasks] == ["workflow"]


def test_rearm_after_a_reset() -> None:
    wf = Workflow()
    wf.run_first_task(
        schedule_activity(),
        command(CT.COMMAND_TYPE_START_TIMER, timer_id="t1", start_to_fire_timeout=dur(SECOND)),
    )
    ai = wf.ms.s.activities[5]
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    ai.attempt = 3
    wf.commit()
    wf.clock.advance(SECOND)
    wf.ms.rearm_pending_work()
    rearmed = wf.commit()
    assert ai.attempt == 1 and ai.started_time_ns == 0
    assert rearmed.queues == [("activity", "tq", 5)]
    assert rearmed.timers == [
        ("activity_timeout", 3601 * SECOND, {"id": 5, "stamp": 3, "type": 2}),
        ("activity_timeout", 3601 * SECOND, {"id": 5, "stamp": 0, "type": 3}),
        ("user_timer", SECOND, {"id": "t1", "started": 6}),
        ("workflow_run_timeout", 3601 * SECOND, {}),
    ]


def test_a_heartbeat_timeout_is_rearmed_from_the_last_beat() -> None:
    wf = Workflow()
    wf.run_first_task(schedule_activity(heartbeat_timeout=dur(5 * SECOND)))
    ai = wf.ms.s.activities[5]
    wf.ms.activities.start(ai, "poll-1", IDENTITY)
    wf.commit()
    wf.clock.advance(3 * SECOND)
    wf.ms.activities.heartbeat(ai, None)
    wf.ms.activities.rearm_heartbeat_timeout(ai, ai.last_heartbeat_ns + 5 * SECOND)
    assert wf.commit().timers == [
        ("activity_timeout", 8 * SECOND, {"id": 5, "stamp": 2, "type": HB})
    ]
    assert ai.heartbeat_timer_ns == wf.clock() + 5 * SECOND
