"""The processor of one engine's durable timer tasks: a timer queue of the shards this process
owns, each due task handed to its executor (`timers` or `transfer`).

Only the tasks due within WINDOW_NS are held in memory; later ones (a run's deletion at the end
of its retention, long timers) stay in the store until the window reaches them, so memory does
not grow with the closed runs kept. The window moves every half window: the tasks it reaches are
loaded, and a task committed meanwhile is taken in if due within the window being loaded (the
queue drops a task it holds already)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.errordetails.v1.message_pb2 import NamespaceNotActiveFailure

from aion import errors, metrics, tracing
from aion.history.engine import ExecutionKey, HistoryEngine
from aion.history.mutable_state import MutableState
from aion.history.state import tasks as kinds
from aion.history.tasks import timers, transfer
from aion.history.tasks.timer_queue import RetryLater, TimerQueue
from aion.persistence import TimerTask

log = logging.getLogger(__name__)


WINDOW_NS = 10 * 60 * 1_000_000_000
# How often the tasks of standby namespaces are checked against their replicated executions.
STANDBY_CHECK_S = 5.0


class TaskProcessor:
    """Fires the engine's timer tasks at their time (the engine's `TimerTasks`)."""

    def __init__(self, engine: HistoryEngine, window_ns: int = WINDOW_NS) -> None:
        self.engine = engine
        self.queue = TimerQueue(self._fire)
        # Tasks being retried: when their first attempt started (ns) and the next attempt's number.
        self._attempts: dict[int, tuple[int, int]] = {}
        self.window_ns = window_ns
        self._horizon_ns = time.time_ns() + window_ns  # tasks due by then are in the queue
        self._loading_until_ns = 0  # while the window moves: where it moves to
        self._mover: asyncio.Task[None] | None = None
        # Due tasks of executions in namespaces active in another cluster, held until the
        # namespace fails over to this one or their execution closes; and those of namespaces
        # in handover, held until it ends.
        self._standby: dict[tuple[int, int], TimerTask] = {}
        self._standby_watch: asyncio.Task[None] | None = None

    def _reach_ns(self) -> int:
        return max(self._horizon_ns, self._loading_until_ns)

    def add(self, tasks: list[TimerTask]) -> int:
        reach = self._reach_ns()
        return self.queue.add(
            [
                task
                for task in tasks
                if task.fire_time_ns <= reach and (task.shard_id, task.task_id) not in self._standby
            ]
        )

    async def load_shard(self, shard_id: int) -> None:
        self.queue.add(await self.engine.load_timer_tasks(shard_id, -1, self._reach_ns()))

    async def _move_window(self) -> None:
        while True:
            await asyncio.sleep(self.window_ns / 2e9)
            target = time.time_ns() + self.window_ns
            self._loading_until_ns = target
            try:
                for shard_id in list(self.engine.shards):
                    tasks = await self.engine.load_timer_tasks(shard_id, self._horizon_ns, target)
                    if shard_id in self.engine.shards:
                        self.queue.add(tasks)
                self._horizon_ns = target
            except Exception:
                log.exception("loading the timer tasks due by %s failed; retrying", target)
            finally:
                self._loading_until_ns = 0

    def discard_shard(self, shard_id: int) -> None:
        self.queue.discard(lambda task: task.shard_id == shard_id)
        for key in [key for key in self._standby if key[0] == shard_id]:
            del self._standby[key]
        self._attempts.clear()  # the few retried tasks of other shards just restart their count

    def start(self) -> None:
        self.queue.start()
        self._mover = asyncio.get_running_loop().create_task(self._move_window())
        self._standby_watch = asyncio.get_running_loop().create_task(self._watch_standby())

    async def stop(self) -> None:
        for task in (self._mover, self._standby_watch):
            if task is not None:
                task.cancel()
        await self.queue.stop()

    async def _stand_by(self, task: TimerTask) -> None:
        """A standby does not act: a task whose execution has closed (or is gone) is dropped,
        unless it is a closed child's notification its parent has not taken in yet; the others
        are held until the namespace is active here."""
        key = (task.namespace_id, task.workflow_id, task.run_id)
        try:
            ms: MutableState | None = await self.engine.get_execution(key)
        except errors.NotFound:
            ms = None
        if ms is not None and (
            ms.running
            or (task.kind == kinds.NOTIFY_PARENT and await self._parent_waits(ms))
            or (task.kind == kinds.APPLY_PARENT_CLOSE_POLICY and await self._child_waits(ms, task))
        ):
            self._standby[(task.shard_id, task.task_id)] = task
        else:
            await self.engine.drop_task(task)

    async def _parent_waits(self, child: MutableState) -> bool:
        """Whether the closed child's parent still waits for it here: the active cluster may
        have failed over before notifying it (as Temporal's standby close-execution task
        verifies the parent before discarding)."""
        parent = child.s.parent
        if parent is None:
            return False
        readable, ms = await self._copy_here(
            (parent.namespace_id, parent.workflow_id, parent.run_id)
        )
        return not readable or awaits_child(ms, parent.initiated_event_id)

    async def _child_waits(self, parent: MutableState, task: TimerTask) -> bool:
        """Whether the child a closed parent's close policy applies to has yet to be
        terminated or cancelled here: the active cluster may have failed over before applying
        it, and then this cluster does once the namespace is active here."""
        child = parent.s.children.get(int(json.loads(task.data)["id"]))
        if child is None or not child.run_id:
            return False
        readable, ms = await self._copy_here((child.namespace_id, child.workflow_id, child.run_id))
        return not readable or awaits_policy(ms, child.parent_close_policy)

    async def _copy_here(self, key: ExecutionKey) -> tuple[bool, MutableState | None]:
        """Whether the run could be read here now (if not, a held task is checked again
        later), and its replicated copy (None: not here)."""
        try:
            return True, await self.engine.get_execution(key)
        except errors.NotFound:
            return True, None
        except errors.ServiceError:
            return False, None

    async def _watch_standby(self) -> None:
        """Hand the held tasks of a namespace that became active here to the queue at once,
        and check the others against their executions every STANDBY_CHECK_S."""
        namespaces = self.engine.namespaces
        while True:
            await namespaces.wait_for_change(STANDBY_CHECK_S)
            held, self._standby = self._standby, {}
            self.queue.add(list(held.values()))

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
        if task.kind != kinds.DELETE_EXECUTION and self.engine.namespaces.is_standby(
            task.namespace_id
        ):
            await self._stand_by(task)
            return
        if self.engine.namespaces.in_handover(task.namespace_id):
            # Held as it is, until the handover ends: here (it timed out) or with a failover.
            self._standby[(task.shard_id, task.task_id)] = task
            return
        try:
            await HANDLERS[task.kind](self.engine, task, data)
        except errors.ShardNotOwned as e:
            if e.shard_id != task.shard_id:
                raise
            log.debug("timer task %s dropped: shard %s moved", task.task_id, task.shard_id)
        except errors.FailedPrecondition as e:
            if not isinstance(e.details, NamespaceNotActiveFailure):
                raise
            if self.engine.namespaces.is_standby(task.namespace_id):
                # Failed over while the task ran (its commit was refused): held as a standby's.
                await self._stand_by(task)
                return
            # The run was last written by a cluster made active since, which this cluster
            # has not heard of yet: it will, and then hold the task.
            raise RetryLater(e.message) from None


def awaits_policy(child: MutableState | None, policy: int) -> bool:
    """Whether a child run as replicated here (None: not here yet, its shard lagging
    behind its parent's) has yet to get what its parent's close `policy` asks: to be
    terminated (closed), or a cancel request (or closed)."""
    if child is None:
        return True
    if not child.running:
        return False
    return policy == workflow_pb2.PARENT_CLOSE_POLICY_TERMINATE or not child.s.cancel_requested


def awaits_child(parent: MutableState | None, initiated_event_id: int) -> bool:
    """Whether a parent run as replicated here (None: not here) may still take in the close
    of the child it initiated at `initiated_event_id`. The parent's shard is pulled apart from
    the child's and may lag behind it: a parent not replicated up to the initiation yet (or
    not at all) waits, as Temporal's verification answers "not ready" then (or fetches the
    parent); a task held so is dropped at the latest with the child's deletion at the end of
    its retention."""
    if parent is None:
        return True
    if not parent.running:
        return False
    return initiated_event_id >= parent.s.next_event_id or initiated_event_id in parent.s.children


# What each task kind does when it is due.
HANDLERS = {**transfer.HANDLERS, **timers.TASK_HANDLERS}

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
