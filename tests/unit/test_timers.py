"""The user timer state machine and its command handlers, driven in process."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import message_pb2 as command_pb

from aion.common.timeutil import SECOND, dur
from aion.history.commands import CommandError
from tests.unit.harness import CT, Workflow, command


def start_timer(timer_id: str = "t1", seconds: int = 10) -> command_pb.Command:
    return command(
        CT.COMMAND_TYPE_START_TIMER, timer_id=timer_id, start_to_fire_timeout=dur(seconds * SECOND)
    )


def test_start_then_fire() -> None:
    wf = Workflow()
    started = wf.run_first_task(start_timer())
    assert started.event_types == ["WORKFLOW_TASK_COMPLETED", "TIMER_STARTED"]
    assert started.timers == [("user_timer", 10 * SECOND, {"id": "t1", "started": 5})]
    wf.clock.advance(10 * SECOND)
    wf.ms.timers.fire(wf.ms.s.timers["t1"])
    fired = wf.commit()
    assert fired.event_types == ["TIMER_FIRED"]
    assert fired.events[0].timer_fired_event_attributes.started_event_id == 5
    assert not wf.ms.s.timers


def test_cancel() -> None:
    wf = Workflow()
    wf.run_first_task(start_timer())
    wf.signal_and_start_task()
    wf.complete_task(command(CT.COMMAND_TYPE_CANCEL_TIMER, timer_id="t1"))
    canceled = wf.commit()
    assert canceled.event_types[-1] == "TIMER_CANCELED"
    assert not wf.ms.s.timers


def test_a_cancel_wins_over_a_fire_during_the_task() -> None:
    wf = Workflow()
    wf.run_first_task(start_timer())
    wf.signal_and_start_task()
    wf.ms.timers.fire(wf.ms.s.timers["t1"])  # buffered behind the running task
    wf.complete_task(command(CT.COMMAND_TYPE_CANCEL_TIMER, timer_id="t1"))
    assert wf.commit().event_types == ["WORKFLOW_TASK_COMPLETED", "TIMER_CANCELED"]
    assert not wf.ms.s.buffered_events


def test_bad_timer_commands() -> None:
    with pytest.raises(CommandError, match="StartTimerDuplicateId"):
        Workflow().run_first_task(start_timer(), start_timer())
    with pytest.raises(CommandError, match="cancel timer nope"):
        Workflow().run_first_task(command(CT.COMMAND_TYPE_CANCEL_TIMER, timer_id="nope"))
