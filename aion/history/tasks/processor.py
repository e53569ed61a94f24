"""The processor of one engine's durable timer tasks: a timer queue of the shards this process
owns, each due task handed to its executor (`timers` or `transfer`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aion import errors, metrics, tracing
from aion.history.engine import HistoryEngine
from aion.history.state import tasks as kinds
from aion.history.tasks import timers, transfer
from aion.history.tasks.timer_queue import RetryLater, TimerQueue
from aion.persistence import TimerTask

log = logging.getLogger(__name__)


class TaskProcessor:
    """Fires the engine's timer tasks at their time (the engine's `TimerTasks`)."""

    def __init__(self, engine: HistoryEngine) -> None:
        self.engine = engine
        self.queue = TimerQueue(self._fire)
        # Tasks being retried: when their first attempt started (ns) and the next attempt's number.
        self._attempts: dict[int, tuple[int, int]] = {}

    def add(self, tasks: list[TimerTask]) -> None:
        self.queue.add(tasks)

    def discard_shard(self, shard_id: int) -> None:
        self.queue.discard(lambda task: task.shard_id == shard_id)
        self._attempts.clear()  # the few retried tasks of other shards just restart their count

    def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()

    def _namespace(self, namespace_id: str) -> str:
        try:
            return self.engine.namespaces.by_id(namespace_id).name
        except KeyError:
            return namespace_id

    async def _fire(self, task: TimerTask) -> None:
        if task.shard_id not in self.engine.shards:
            return  # released: the shard's new owner loaded this task
        if not metrics.enabled():
            await self._execute(task)
            return
        measured = metrics.task(metrics.namespace_name(task.namespace_id), *TASK_TYPES[task.kind])
        started = time.time_ns()
        first_started, attempt = self._attempts.pop(task.task_id, (started, 1))
        if attempt == 1:
            measured.queue.observe(max(0, started - task.fire_time_ns) / 1e9)
        measured.requests.inc()
        try:
            await self._execute(task)
        except BaseException as e:
            self._attempts[task.task_id] = (first_started, attempt + 1)
            if not isinstance(e, RetryLater | asyncio.CancelledError):
                measured.errors.inc()
            raise
        finally:
            measured.processing.observe((time.time_ns() - started) / 1e9)
        measured.latency.observe((time.time_ns() - first_started) / 1e9)
        measured.attempts.observe(attempt)

    async def _execute(self, task: TimerTask) -> None:
        data = json.loads(task.data) if task.data else {}
        tracing.set_workflow(self._namespace(task.namespace_id), task.workflow_id, task.run_id)
        try:
            transfer_handler = transfer.HANDLERS.get(task.kind)
            if transfer_handler is not None:
                await transfer_handler(self.engine, task, data)
            elif task.kind == kinds.DELETE_EXECUTION:
                key = (task.namespace_id, task.workflow_id, task.run_id)
                await self.engine.delete_execution(key, task)
            else:
                await timers.fire(self.engine, task, data)
        except errors.ShardNotOwned as e:
            if e.shard_id != task.shard_id:
                raise
            log.debug("timer task %s dropped: shard %s moved", task.task_id, task.shard_id)


# Each task kind's name and priority in the reference's task metrics (the transfer tasks of
# Aion's own have names of their own).
TASK_TYPES = {
    kinds.USER_TIMER: ("TimerActiveTaskUserTimer", "high"),
    kinds.ACTIVITY_TIMEOUT: ("TimerActiveTaskActivityTimeout", "low"),
    kinds.ACTIVITY_RETRY: ("TimerActiveTaskActivityRetryTimer", "high"),
    kinds.WORKFLOW_TASK_TIMEOUT: ("TimerActiveTaskWorkflowTaskTimeout", "low"),
    kinds.WORKFLOW_RUN_TIMEOUT: ("TimerActiveTaskWorkflowRunTimeout", "low"),
    kinds.WORKFLOW_EXECUTION_TIMEOUT: ("TimerActiveTaskWorkflowExecutionTimeout", "low"),
    kinds.WORKFLOW_BACKOFF: ("TimerActiveTaskWorkflowBackoffTimer", "high"),
    kinds.START_CHILD: ("TransferActiveTaskStartChildExecution", "high"),
    kinds.NOTIFY_PARENT: ("TransferActiveTaskCloseExecution", "high"),
    kinds.SIGNAL_EXTERNAL: ("TransferActiveTaskSignalExecution", "high"),
    kinds.CANCEL_EXTERNAL: ("TransferActiveTaskCancelExecution", "high"),
    kinds.APPLY_PARENT_CLOSE_POLICY: ("TransferActiveTaskParentClosePolicy", "high"),
    kinds.NOTIFY_SCHEDULE: ("TransferActiveTaskNotifySchedule", "high"),
    kinds.DELETE_EXECUTION: ("TimerActiveTaskDeleteHistoryEvent", "low"),
}
