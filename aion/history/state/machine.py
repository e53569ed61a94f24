"""The base of the per-entity state machines."""

from __future__ import annotations

from aion.history.state.builder import HistoryBuilder
from aion.history.state.execution import ExecutionState
from aion.history.state.tasks import TaskGenerator


class StateMachine:
    """Changes its part of `state`, writing events with `history` and tasks with `tasks`."""

    def __init__(
        self, state: ExecutionState, history: HistoryBuilder, tasks: TaskGenerator
    ) -> None:
        self.s = state
        self._history = history
        self._tasks = tasks
