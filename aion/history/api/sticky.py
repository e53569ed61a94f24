"""ResetStickyTaskQueue and ShutdownWorker: stop routing workflow tasks to a departed worker."""

from __future__ import annotations

from aion import errors
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.mutable_state import MutableState
from aion.namespaces import Namespace
from aion.persistence import QueueTask


async def reset_sticky_task_queue(engine: HistoryEngine, key: ExecutionKey) -> None:
    def reset(ms: MutableState) -> None:
        if not ms.running:
            raise errors.workflow_completed()
        ms.workflow_task.clear_sticky()

    await engine.update_execution(key, reset)


async def shutdown_sticky_queue(engine: HistoryEngine, ns: Namespace, sticky_queue: str) -> None:
    """Move workflow tasks waiting on a departed worker's sticky queue to the normal queue."""
    for task in engine.matching.shut_down_sticky(ns.id, sticky_queue):
        await _redirect(engine, task)


async def _redirect(engine: HistoryEngine, task: QueueTask) -> None:
    key = (task.namespace_id, task.workflow_id, task.run_id)

    def redirect(ms: MutableState) -> None:
        ms.tasks.queue_task_done(task.task_id)
        ms.workflow_task.redirect_to_normal_queue(task.stamp)

    try:
        await engine.update_execution(key, redirect)
    except errors.NotFound:
        await engine.drop_task(task)
