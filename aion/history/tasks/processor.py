"""The processor of one engine's durable timer tasks: a timer queue of the shards this process
owns, each due task handed to its executor (`timers` or `transfer`)."""

from __future__ import annotations

import json
import logging

from aion import errors, tracing
from aion.history.engine import HistoryEngine
from aion.history.tasks import timers, transfer
from aion.history.tasks.timer_queue import TimerQueue
from aion.persistence import TimerTask

log = logging.getLogger(__name__)


class TaskProcessor:
    """Fires the engine's timer tasks at their time (the engine's `TimerTasks`)."""

    def __init__(self, engine: HistoryEngine) -> None:
        self.engine = engine
        self.queue = TimerQueue(self._fire)

    def add(self, tasks: list[TimerTask]) -> None:
        self.queue.add(tasks)

    def discard_shard(self, shard_id: int) -> None:
        self.queue.discard(lambda task: task.shard_id == shard_id)

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
        data = json.loads(task.data) if task.data else {}
        tracing.set_workflow(self._namespace(task.namespace_id), task.workflow_id, task.run_id)
        try:
            transfer_handler = transfer.HANDLERS.get(task.kind)
            if transfer_handler is not None:
                await transfer_handler(self.engine, task, data)
            else:
                await timers.fire(self.engine, task, data)
        except errors.ShardNotOwned as e:
            if e.shard_id != task.shard_id:
                raise
            log.debug("timer task %s dropped: shard %s moved", task.task_id, task.shard_id)
