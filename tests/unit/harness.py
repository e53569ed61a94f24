"""Drives one workflow run's `MutableState` in process: a fixed clock, task ids counted from 1,
no engine and no server. Each `commit` hands back what the transition wrote, as the engine would
commit it, and starts the next transition."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.enums.v1 import command_type_pb2, event_type_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion.common.timeutil import SECOND
from aion.history.commands import CommandContext, handle_commands
from aion.history.mutable_state import ExecutionState, MutableState
from aion.history.runs import RunOptions, build_run
from aion.history.state.environment import Environment
from aion.persistence import QueueTask, TimerTask

T0 = 1_700_000_000 * SECOND
CT = command_type_pb2.CommandType
ET = event_type_pb2.EventType
IDENTITY = "worker-1"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now_ns = T0

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, ns: int) -> None:
        self.now_ns += ns


@dataclass
class Committed:
    """What one transition wrote."""

    events: list[history_pb.HistoryEvent]
    timer_tasks: list[TimerTask]
    queue_tasks: list[QueueTask]

    @property
    def event_types(self) -> list[str]:
        """Event types without the EVENT_TYPE_ prefix, in history order."""
        return [ET.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in self.events]

    @property
    def timers(self) -> list[tuple[str, int, dict[str, Any]]]:
        """(kind, fire time relative to T0, data) of each timer task."""
        return [(t.kind, t.fire_time_ns - T0, json.loads(t.data)) for t in self.timer_tasks]

    @property
    def queues(self) -> list[tuple[str, str, int]]:
        """(kind, task queue, scheduled event id) of each queue task."""
        return [(t.kind, t.task_queue, t.scheduled_event_id) for t in self.queue_tasks]


def command(command_type: int, **attrs: Any) -> command_pb.Command:
    """A command whose attributes field is named after its type."""
    cmd = command_pb.Command(command_type=command_type)  # type: ignore[arg-type]
    fields: dict[int, str] = {
        CT.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: "schedule_activity_task_command_attributes",
        CT.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK: (
            "request_cancel_activity_task_command_attributes"
        ),
        CT.COMMAND_TYPE_START_TIMER: "start_timer_command_attributes",
        CT.COMMAND_TYPE_CANCEL_TIMER: "cancel_timer_command_attributes",
        CT.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION: (
            "complete_workflow_execution_command_attributes"
        ),
        CT.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION: (
            "continue_as_new_workflow_execution_command_attributes"
        ),
        CT.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: (
            "start_child_workflow_execution_command_attributes"
        ),
        CT.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: (
            "signal_external_workflow_execution_command_attributes"
        ),
        CT.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: (
            "request_cancel_external_workflow_execution_command_attributes"
        ),
        CT.COMMAND_TYPE_PROTOCOL_MESSAGE: "protocol_message_command_attributes",
    }
    field = fields[command_type]
    getattr(cmd, field).SetInParent()
    for name, value in attrs.items():
        target = getattr(getattr(cmd, field), name)
        if hasattr(target, "CopyFrom"):
            target.CopyFrom(value)
        else:
            setattr(getattr(cmd, field), name, value)
    return cmd


class Workflow:
    """One run of a workflow, started as StartWorkflowExecution would start it."""

    def __init__(self, run: dict[str, Any] | None = None, **env: Any) -> None:
        """`run`: RunOptions fields to change; `env`: Environment fields."""
        self.clock = Clock()
        self.env = Environment(now=self.clock, **env)
        self._task_ids = itertools.count(1)
        options = RunOptions(
            namespace_id="ns-id",
            namespace="default",
            failover_version=0,
            workflow_id="wf-1",
            workflow_type="Greeter",
            task_queue="tq",
            request_id="start-1",
            run_timeout_ns=3600 * SECOND,
            task_timeout_ns=10 * SECOND,
        )
        for name, value in (run or {}).items():
            setattr(options, name, value)
        self.ms = build_run(self.spawn, options, self.clock())

    def spawn(self, state: ExecutionState) -> MutableState:
        return MutableState(state, 1, self.next_task_id, self.env)

    def next_task_id(self) -> int:
        return next(self._task_ids)

    def commit(self) -> Committed:
        """End the transition as the engine does after a successful commit."""
        m = self.ms.mutation
        committed = Committed(list(m.events), list(m.timer_tasks), list(m.queue_tasks))
        m.reset()
        for effect in self.ms.take_effects():
            effect()
        return committed

    def start_task(self) -> Committed:
        self.ms.workflow_task.start("poll-1", IDENTITY)
        return self.commit()

    def signal_and_start_task(self) -> None:
        """A signal wakes the workflow; its next workflow task starts (all committed)."""
        self.ms.signal("go", None, "client", None)
        self.ms.workflow_task.schedule()
        self.commit()
        self.start_task()

    def complete_task(self, *commands: command_pb.Command) -> CommandContext:
        """Complete the started workflow task with `commands` (not committed yet)."""
        had_buffered = bool(self.ms.s.buffered_events)
        completed = self.ms.workflow_task.complete(IDENTITY)
        ctx = CommandContext(self.ms, completed.event_id, IDENTITY, had_buffered)
        handle_commands(ctx, list(commands))
        return ctx

    def run_first_task(self, *commands: command_pb.Command) -> Committed:
        """Start the scheduled workflow task and complete it with `commands`; commit."""
        self.commit()
        self.start_task()
        self.complete_task(*commands)
        return self.commit()
