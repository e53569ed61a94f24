"""The history engine: loads, locks, mutates and commits executions; one place for the flow.

Operations (in `aion/history/api/`) never touch storage: they call `update_execution` with a
function that checks the request against `MutableState` and appends events; the engine commits the
transition in one transaction and then publishes its tasks to matching and the timer tasks. What
the engine calls out to (other processes, worker deployments, the timer task processor, shard
listeners) it gets through the interfaces of `aion.history.ports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import event_type_pb2, task_queue_pb2, workflow_pb2
from temporalio.api.enums.v1 import failed_cause_pb2 as cause_pb
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion import errors, metrics, tracing
from aion.common.payloads import json_payload
from aion.common.timeutil import now_ns
from aion.history.mutable_state import (
    HISTORY_SERVICE,
    Environment,
    ExecutionState,
    Limits,
    MutableState,
    Mutation,
)
from aion.history.ports import (
    Deployments,
    LocalShards,
    NoDeployments,
    Op,
    RemoteShards,
    ShardListener,
    TimerTasks,
)
from aion.history.replication import (
    REAPPLIED,
    ReplicatedTransition,
    ReplicationGap,
    UnresolvableConflict,
    divergence,
    last_write_version,
    replicated_tasks,
    replication_task,
    whole_execution_task,
)
from aion.history.state.updates import UpdateAborted
from aion.matching import MatchingEngine, QueryTask
from aion.namespaces import NamespaceRegistry
from aion.persistence import (
    ConditionFailedError,
    CurrentExecution,
    ExecutionTransaction,
    HiddenBranch,
    HistoryRewind,
    PendingReapply,
    QueueTask,
    ShardOwnershipLostError,
    Store,
    StoreUnavailableError,
    TimerTask,
    VisibilityRecord,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
ExecutionKey = tuple[str, str, str]  # namespace id, workflow id, run id
_MAX_HIDDEN_EVENTS = 1_000_000  # more than a run may hold (limit.historyCount)

CACHE_SIZE = 4096
# Closed runs are seldom touched again (a result read, a describe): only the most recent few
# stay cached, so memory goes back down when the work does.
CLOSED_CACHE_SIZE = 256
# Temporal's reasons for terminating an execution past its history limits.
HISTORY_SIZE_EXCEEDS_LIMIT = "Workflow history size exceeds limit."
HISTORY_COUNT_EXCEEDS_LIMIT = "Workflow history count exceeds limit."
# Temporal's reason for terminating a run that lost to a replicated run of its workflow id.
VERSION_CONFLICT = "Terminate Workflow Due To Version Conflict."
CURRENT_CACHE_SIZE = 4 * CACHE_SIZE
RESYNC_RETRY_S = 0.5
# Every SWEEP_S the shards' tasks are read again, and those older than SWEEP_GRACE_NS that this
# process does not hold are handed on: whatever lost a task on its way from a commit to the
# queues, it is not lost for longer than this.
SWEEP_S = 60.0
SWEEP_GRACE_NS = 30 * 1_000_000_000
# How long a replicated transition, holding its run's lock, waits for the lock of a competing
# run of its workflow id: bounded, so that two transitions each holding one of the two runs
# cannot wait on each other for ever (the one that gives up is retried with its next pull).
RIVAL_LOCK_WAIT_S = 2.0


class HistoryLimitError(errors.InvalidArgument):
    """The change was dropped and the execution terminated: its history is past its limits."""


@dataclass
class Shard:
    """A shard this process owns: its fencing token and task id sequence."""

    shard_id: int
    range_id: int
    _seq: int = 0

    def next_task_id(self) -> int:
        self._seq += 1
        return (self.range_id << 32) | self._seq


WORKFLOW_QUEUE = task_queue_pb2.TASK_QUEUE_TYPE_WORKFLOW


class _Entry:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.ms: MutableState | None = None


class HistoryEngine:
    """The executions of the shards this process owns."""

    def __init__(
        self,
        store: Store,
        namespaces: NamespaceRegistry,
        matching: MatchingEngine,
        timer_tasks: Callable[[HistoryEngine], TimerTasks],
        operations: Mapping[str, Op],
        num_shards: int = 4,
        host_id: str | None = None,
        remote: RemoteShards | None = None,
        deployments: Deployments | None = None,
    ) -> None:
        """`timer_tasks` builds the processor that fires this engine's timer tasks;
        `operations` are what `call` runs on a shard's owner; `remote` reaches the shards of
        other processes (none by default); `deployments` routes tasks to worker deployment
        versions (unversioned by default)."""
        self.store = store
        self.namespaces = namespaces
        self.matching = matching
        self.operations = dict(operations)
        self.num_shards = num_shards
        self.host_id = host_id or str(uuid.uuid4())
        self.remote: RemoteShards = remote or LocalShards()
        self.deployments: Deployments = deployments or NoDeployments()
        self.shards: dict[int, Shard] = {}
        self.clock = now_ns
        self.limits = Limits()
        self.timers = timer_tasks(self)
        self._listeners: list[ShardListener] = []
        self._cache: OrderedDict[ExecutionKey, _Entry] = OrderedDict()
        self._closed: OrderedDict[ExecutionKey, None] = OrderedDict()  # cached closed runs
        # The current run of recently used workflow ids, least recently used first.
        self._current: OrderedDict[tuple[str, str], CurrentExecution] = OrderedDict()
        self._watchers: dict[ExecutionKey, list[asyncio.Future[None]]] = {}
        self._resyncs: dict[int, asyncio.Task[None]] = {}  # shards whose tasks load again
        self._sweeper: asyncio.Task[None] | None = None
        self.pending_queries: dict[str, QueryTask] = {}
        # Queries of other processes' workflows handed to pollers here: query task id to the
        # address of the process awaiting the answer (the oldest forgotten past a bound).
        self.peer_queries: OrderedDict[str, str] = OrderedDict()
        self._environment = Environment(
            now=self.clock,
            limits=self.limits,
            is_sticky_alive=matching.has_live_poller,
            routing_target=self._routing_target,
            retention_ns=self._retention_ns,
        )
        # Overrides every namespace's retention when set (dynamic config, for tests and benches).
        self.retention_override_ns: int | None = None

    # ---- lifecycle and shard ownership ------------------------------------------------
    def add_shard_listener(self, listener: ShardListener) -> None:
        """Tell `listener` of every shard this process starts or stops serving from now on."""
        self._listeners.append(listener)

    def add_operations(self, operations: Mapping[str, Op]) -> None:
        """Serve more named operations on this process's shards (see `call`)."""
        self.operations.update(operations)

    async def start(self) -> None:
        """Start firing timer tasks (of the shards acquired already and to come)."""
        self.timers.start()
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_every(SWEEP_S))

    async def stop(self) -> None:
        for background in [*self._resyncs.values(), self._sweeper]:
            if background is not None:
                background.cancel()
        await self.timers.stop()

    async def _sweep_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            for shard_id in list(self.shards):
                try:
                    await self.sweep_shard(shard_id)
                except StoreUnavailableError:
                    break  # the next round
                except Exception:
                    log.exception("sweeping the tasks of shard %s failed", shard_id)

    async def sweep_shard(self, shard_id: int) -> int:
        """Hand on the shard's timer tasks overdue by SWEEP_GRACE_NS and its queue tasks older
        than that which this process does not hold (none should be: a lost one is logged);
        how many."""
        shard = self.shards.get(shard_id)
        cutoff = self.clock() - SWEEP_GRACE_NS
        timers = await self.store.load_timer_tasks(shard_id, -1, cutoff)
        queued = await self.store.load_queue_tasks(shard_id)
        if shard is None or self.shards.get(shard_id) is not shard:
            return 0
        missing = [t for t in queued if t.create_time_ns < cutoff and not self.matching.holds(t)]
        for task in missing:
            self.enqueue(task)
        found = len(missing) + self.timers.add(timers)
        if found:
            log.warning("shard %s: %d tasks were not handed on; handed on now", shard_id, found)
            metrics.swept(found)
        return found

    def owned_shards(self) -> dict[int, int]:
        """The shards this process holds: shard id to range id."""
        return {s.shard_id: s.range_id for s in self.shards.values()}

    async def acquire_shard(self, shard_id: int) -> None:
        """Take the shard's lease (fencing out a previous owner) and load its pending tasks."""
        started = time.perf_counter()
        range_id = await self.store.acquire_shard(shard_id, self.host_id)
        self.shards[shard_id] = Shard(shard_id, range_id)
        await self.timers.load_shard(shard_id)
        for task in await self.store.load_queue_tasks(shard_id):
            self.enqueue(task)
        for listener in self._listeners:
            await listener.shard_acquired(shard_id)
        metrics.shard_acquired(time.perf_counter() - started)
        log.info("acquired shard %s (range id %s)", shard_id, range_id)

    def release_shard(self, shard_id: int) -> None:
        """Stop serving a shard another process owns now: forget its cached state and timers."""
        if self.shards.pop(shard_id, None) is None:
            return
        self.timers.discard_shard(shard_id)
        for listener in self._listeners:
            listener.shard_released(shard_id)
        for key in [k for k in self._cache if self.shard_id_of(k[0], k[1]) == shard_id]:
            entry = self._cache.pop(key)
            if entry.ms is not None:
                entry.ms.updates.clear(UpdateAborted())
        for pointer in [k for k in self._current if self.shard_id_of(*k) == shard_id]:
            del self._current[pointer]
        for watched in [k for k in self._watchers if self.shard_id_of(k[0], k[1]) == shard_id]:
            self._notify(watched)  # long polls look again and find the shard's new owner
        metrics.shard_released()
        log.info("released shard %s", shard_id)

    def _resync_shard(self, shard_id: int) -> None:
        """A commit to the shard failed with an unknown outcome: it may have been applied, its
        tasks durable but never handed on. Load the shard's tasks again once the database
        answers; those handed on already are dropped as stale when they come back."""
        if shard_id in self._resyncs:
            return
        task = asyncio.get_running_loop().create_task(self._resync(shard_id))
        self._resyncs[shard_id] = task
        task.add_done_callback(lambda _: self._resyncs.pop(shard_id, None))

    async def _resync(self, shard_id: int) -> None:
        shard = self.shards.get(shard_id)
        while shard is not None and self.shards.get(shard_id) is shard:
            try:
                await self.timers.load_shard(shard_id)
                tasks = await self.store.load_queue_tasks(shard_id)
            except StoreUnavailableError:
                await asyncio.sleep(RESYNC_RETRY_S)
                continue
            if self.shards.get(shard_id) is shard:
                for task in tasks:
                    self.enqueue(task)
            return

    def shard_id_of(self, namespace_id: str, workflow_id: str) -> int:
        return zlib.crc32(f"{namespace_id}/{workflow_id}".encode()) % self.num_shards

    def shard_for(self, namespace_id: str, workflow_id: str) -> Shard:
        """The owned shard of a workflow id; ShardNotOwned when another process owns it."""
        shard_id = self.shard_id_of(namespace_id, workflow_id)
        shard = self.shards.get(shard_id)
        if shard is None:
            raise errors.ShardNotOwned(shard_id)
        return shard

    async def call(self, shard_id: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a named operation (`operations`) on the shard's owner: this process or the one
        holding its lease."""
        if shard_id in self.shards:
            return await self.operations[op](self, args)
        return await self.remote.invoke(shard_id, op, args)

    def enqueue(self, task: QueueTask) -> None:
        """Hand a durable task to matching (other processes' pollers poll here for it)."""
        self.matching.add_task(task)

    # ---- finishing tasks ---------------------------------------------------------------
    async def finish_timer_task(
        self, task: TimerTask, apply: Callable[[MutableState], None] | None = None
    ) -> None:
        """Record a timer task's outcome (`apply`) on its execution and drop the task in the
        same commit; drop it alone when the execution is gone."""

        def record(ms: MutableState) -> None:
            ms.tasks.timer_task_done(task.task_id)
            if apply is not None:
                apply(ms)

        try:
            await self.update_execution((task.namespace_id, task.workflow_id, task.run_id), record)
        except (errors.NotFound, HistoryLimitError):  # gone, or terminated instead
            await self.drop_task(task)

    async def load_timer_tasks(
        self, shard_id: int, after_ns: int, until_ns: int
    ) -> list[TimerTask]:
        """A shard's timer tasks due after `after_ns` and by `until_ns` (the task processor's
        window)."""
        return await self.store.load_timer_tasks(shard_id, after_ns, until_ns)

    async def drop_task(self, task: TimerTask | QueueTask) -> None:
        """Drop a task that has nothing left to do (done elsewhere, stale, or its execution
        gone) without touching its execution."""
        if isinstance(task, TimerTask):
            await self.store.delete_timer_tasks(task.shard_id, [task.task_id])
        else:
            await self.store.delete_queue_tasks(task.shard_id, [task.task_id])

    async def delete_execution(self, key: ExecutionKey, task: TimerTask) -> None:
        """Delete a closed run (`task`, its DELETE_EXECUTION task, goes with it): its history,
        state, visibility row, and the current-run pointer if it is the current run."""
        entry = self._entry(key)
        async with entry.lock:
            try:
                ms = entry.ms or await self._load(key)
            except errors.NotFound:
                await self.drop_task(task)
                return
            if ms.running:  # a reset brought it back? it is deleted once it closes again
                await self.drop_task(task)
                return
            shard = self.shard_for(key[0], key[1])
            with self._shard_write(shard.shard_id):
                await self.store.delete_execution(
                    shard.shard_id, shard.range_id, *key, [task.task_id]
                )
            self._cache.pop(key, None)
            current = self._current.get((key[0], key[1]))
            if current is not None and current.run_id == key[2]:
                del self._current[(key[0], key[1])]
            self._notify(key)

    # ---- loading -----------------------------------------------------------------------
    def new_mutable_state(self, state: ExecutionState, db_version: int = 0) -> MutableState:
        shard = self.shard_for(state.namespace_id, state.workflow_id)
        return MutableState(
            state, shard.shard_id, shard.next_task_id, self._environment, db_version
        )

    def _retention_ns(self, namespace_id: str) -> int:
        if self.retention_override_ns is not None:
            return self.retention_override_ns
        return self.namespaces.by_id(namespace_id).retention_ns

    def _routing_target(self, namespace_id: str, task_queue: str, workflow_id: str) -> str:
        return self.deployments.route(namespace_id, task_queue, WORKFLOW_QUEUE, workflow_id, "")

    async def current_execution(self, namespace_id: str, workflow_id: str) -> CurrentExecution:
        self.shard_for(namespace_id, workflow_id)
        current = self._current.get((namespace_id, workflow_id))
        if current is None:
            current = await self.store.get_current_execution(namespace_id, workflow_id)
            if current is None:
                raise errors.workflow_not_found(workflow_id)
            self._remember_current(current)
        else:
            self._current.move_to_end((namespace_id, workflow_id))
        return current

    def _remember_current(self, current: CurrentExecution) -> None:
        """Keep the pointer to a workflow id's current run (the store has it all; this keeps
        the recently used ones, so memory does not grow with every workflow id ever run)."""
        key = (current.namespace_id, current.workflow_id)
        self._current[key] = current
        self._current.move_to_end(key)
        while len(self._current) > CURRENT_CACHE_SIZE:
            self._current.popitem(last=False)

    async def resolve(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionKey:
        if not run_id:
            run_id = (await self.current_execution(namespace_id, workflow_id)).run_id
        return (namespace_id, workflow_id, run_id)

    async def _load(self, key: ExecutionKey) -> MutableState:
        record = await self.store.get_execution(*key)
        if record is None:
            raise errors.workflow_not_found(key[1], key[2])
        ms = self.new_mutable_state(MutableState.restore(record.state), record.db_version)
        if not ms.running:
            self._cached_closed(key)
        return ms

    def _entry(self, key: ExecutionKey) -> _Entry:
        self.shard_for(key[0], key[1])
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = _Entry()
            self._evict()
        else:
            self._cache.move_to_end(key)
        return entry

    def _cached_closed(self, key: ExecutionKey) -> None:
        """Note a closed run in the cache; the least recent beyond CLOSED_CACHE_SIZE leave it."""
        self._closed[key] = None
        self._closed.move_to_end(key)
        while len(self._closed) > CLOSED_CACHE_SIZE:
            old, _ = self._closed.popitem(last=False)
            entry = self._cache.get(old)
            if entry is not None and not entry.lock.locked():
                del self._cache[old]

    def _evict(self) -> None:
        while len(self._cache) > CACHE_SIZE:
            for key, entry in self._cache.items():
                if not entry.lock.locked():
                    del self._cache[key]
                    if entry.ms is not None:
                        entry.ms.updates.clear(UpdateAborted())
                    break
            else:
                return

    async def get_execution(self, key: ExecutionKey) -> MutableState:
        """A consistent read: the execution's latest committed state (do not mutate it)."""
        entry = self._entry(key)
        async with entry.lock:  # waits out an in-flight commit so reads see committed state
            if entry.ms is None:
                entry.ms = await self._load(key)
            return entry.ms

    # ---- the one write path ------------------------------------------------------------
    async def update_execution(
        self, key: ExecutionKey, fn: Callable[[MutableState], T | Awaitable[T]]
    ) -> T:
        """Load and lock the execution, apply `fn`, commit what it changed, publish its tasks.
        An execution of a namespace standby here is changed only by replication
        (NamespaceNotActive)."""
        self.namespaces.check_active(key[0])
        entry = self._entry(key)
        measured = metrics.execution_cache(key[0])
        started = time.perf_counter()
        async with entry.lock:
            measured.lock_requests.inc()
            measured.lock_latency.observe(time.perf_counter() - started)
            measured.requests.inc()
            if entry.ms is None:
                measured.misses.inc()
                entry.ms = await self._load(key)
            measured.latency.observe(time.perf_counter() - started)
            ms = entry.ms
            status_before = ms.s.status
            size_before = ms.s.history_size_bytes
            count_before = ms.s.next_event_id - 1
            try:
                if self.namespaces.replicates(key[0]):
                    self._check_not_overtaken(ms)
                    ms.stamp_version(self.namespaces.by_id(key[0]).failover_version)
                result = fn(ms)
                if asyncio.iscoroutine(result):
                    result = await result
                past_limit = ""
                if ms.dirty or ms.mutation:
                    past_limit = self._past_history_limit(ms, size_before, count_before)
                    if not past_limit:
                        await self._commit(ms, status_changed=ms.s.status != status_before)
            except errors.ServiceError:
                ms.effects.clear()
                if ms.dirty or _changes(ms.mutation):
                    self._drop(entry, ms)
                else:  # refused before changing anything: the cached state is still good
                    ms.mutation.reset()
                raise
            except BaseException:
                ms.effects.clear()
                self._drop(entry, ms)
                raise
            if past_limit:
                await self._terminate_past_limit(key, entry, ms, past_limit)
                raise HistoryLimitError(past_limit)
            _run_effects(ms)
            if tracing.ACTIVE is not None and ms.s.status != status_before and not ms.running:
                # The run's lifetime span, from its history.
                tracing.ACTIVE.run_closed(
                    key, ms.s.next_event_id - 1, self.read_history, self.namespaces.by_id
                )
            return result  # type: ignore[return-value]

    def _past_history_limit(self, ms: MutableState, size_before: int, count_before: int) -> str:
        """Temporal's reason to terminate a running execution whose history is past its size
        limit (as last committed) or whose transition takes it past its count limit; "" if
        neither. Crossing a warn limit is logged."""
        if not ms.running:
            return ""
        limits = self.limits
        size, count = ms.s.history_size_bytes, ms.s.next_event_id - 1
        if size_before > limits.history_size_error:
            return HISTORY_SIZE_EXCEEDS_LIMIT
        if count > limits.history_count_error:
            return HISTORY_COUNT_EXCEEDS_LIMIT
        if size_before <= limits.history_size_warn < size:
            log.warning("history size exceeds warn limit: %s (%d bytes)", ms.s.workflow_id, size)
        if count_before <= limits.history_count_warn < count:
            log.warning("history count exceeds warn limit: %s (%d events)", ms.s.workflow_id, count)
        return ""

    async def _terminate_past_limit(
        self, key: ExecutionKey, entry: _Entry, ms: MutableState, reason: str
    ) -> None:
        """Discard the transition and terminate the execution instead, as Temporal does."""
        log.warning("terminating %s: %s", key[1], reason)
        ms.effects.clear()
        self._drop(entry, ms)
        fresh = entry.ms = await self._load(key)
        try:
            fresh.terminate(reason, None, HISTORY_SERVICE)
            await self._commit(fresh, status_changed=True)
        except BaseException:
            fresh.effects.clear()
            self._drop(entry, fresh)
            raise
        _run_effects(fresh)

    def _drop(self, entry: _Entry, ms: MutableState) -> None:
        """A transition failed part-way: reload from the store next time; updates retry."""
        entry.ms = None
        ms.updates.clear(UpdateAborted())

    async def create_execution(self, ms: MutableState, expected_current_run_id: str | None) -> None:
        """Commit a brand-new run and make it the workflow id's current run."""
        self.namespaces.check_active(ms.s.namespace_id)
        key = (ms.s.namespace_id, ms.s.workflow_id, ms.s.run_id)
        try:
            await self._commit(ms, new=True, expected_current_run_id=expected_current_run_id)
        except ConditionFailedError:
            self._current.pop((ms.s.namespace_id, ms.s.workflow_id), None)
            raise
        self._entry(key).ms = ms
        _run_effects(ms)

    async def _commit(
        self,
        ms: MutableState,
        new: bool = False,
        status_changed: bool = False,
        expected_current_run_id: str | None = None,
    ) -> None:
        tx = self._transaction(ms, new, status_changed, expected_current_run_id)
        new_run = ms.new_run
        if new_run is not None:
            tx.new_run = self._transaction(new_run, True, True, ms.s.run_id)
        try:
            cancelled = await self._commit_through(tx)
        except ConditionFailedError:
            if new:
                raise  # the caller decides: another run of the workflow id came first
            # Only a process that lost its shard without noticing yet gets here.
            raise errors.Unavailable("the execution was changed concurrently; retry") from None
        ms.new_run = None
        self._committed(ms, tx)
        if new_run is not None and tx.new_run is not None:
            self._committed(new_run, tx.new_run)
            key = (new_run.s.namespace_id, new_run.s.workflow_id, new_run.s.run_id)
            self._entry(key).ms = new_run
        if cancelled:
            raise asyncio.CancelledError

    async def _commit_through(self, tx: ExecutionTransaction) -> bool:
        """Commit `tx` (its errors mapped by `_shard_write`); whether the caller was cancelled
        meanwhile. A cancelled caller still waits for the commit, which lands all the same
        (group commit writes it with its batch), so that the tasks it made durable are handed
        on before the cancellation goes on: dropped, they would wait unseen until the shard
        is next loaded."""
        commit = asyncio.ensure_future(self.store.commit(tx))
        cancelled = False
        while True:
            try:
                with self._shard_write(tx.shard_id):
                    await asyncio.shield(commit)
                return cancelled
            except asyncio.CancelledError:
                if commit.cancelled():
                    raise
                cancelled = True

    @contextlib.contextmanager
    def _shard_write(self, shard_id: int) -> Iterator[None]:
        """Map a fenced-out or failed write to a shard to the errors callers answer with
        (the shard released when another process took it)."""
        try:
            yield
        except ShardOwnershipLostError:
            log.warning("lost ownership of shard %s", shard_id)
            self.release_shard(shard_id)
            raise errors.ShardNotOwned(shard_id) from None
        except StoreUnavailableError as e:
            log.warning("write to shard %s failed: %s", shard_id, e)
            if e.outcome_unknown:
                self._resync_shard(shard_id)
            raise errors.Unavailable(f"persistence unavailable: {e}") from None

    def _transaction(
        self,
        ms: MutableState,
        new: bool,
        status_changed: bool,
        expected_current_run_id: str | None,
        suppressing: bool = False,
    ) -> ExecutionTransaction:
        """`suppressing`: the run lost to a replicated one and is closed whether or not the
        namespace is active here; the transition replicates all the same (Temporal's active
        policy for it)."""
        s = ms.s
        m = ms.mutation
        current = _current(ms) if new or status_changed else None
        shard = self.shards.get(ms.shard_id)
        if shard is None or shard.next_task_id != ms.next_task_id:
            raise errors.ShardNotOwned(ms.shard_id)  # released (or re-acquired) meanwhile
        if not suppressing:  # failed over while the transition ran?
            self.namespaces.check_active(s.namespace_id)
        visibility = self._visibility(ms) if (m.events or new) else None
        tx = _transaction_of(
            ms,
            shard,
            new,
            events=[(e.event_id, e.SerializeToString()) for e in m.events],
            batch_starts=m.batch_starts,
            current=current,
            expected_current_run_id=expected_current_run_id,
            timer_tasks=m.timer_tasks,
            queue_tasks=m.queue_tasks,
            done_timer_task_ids=m.done_timer_task_ids,
            done_queue_task_ids=m.done_queue_task_ids,
            visibility=visibility,
            search_attributes_changed=visibility is not None
            and (new or visibility.search_attributes != ms.written_search_attributes),
        )
        if self.namespaces.replicates(s.namespace_id) or (
            suppressing and self.namespaces.by_id(s.namespace_id).is_global
        ):
            tx.replication_task = replication_task(
                tx, shard.next_task_id(), s.failover_version, self.clock()
            )
        return tx

    def _committed(self, ms: MutableState, tx: ExecutionTransaction) -> None:
        """After commit: the state is durable; hand its tasks on and wake waiters."""
        s = ms.s
        tracing.note_run(s.workflow_id, s.run_id)  # the run id on the log lines from here on
        ms.db_version += 1
        ms.mutation.reset()
        if tx.visibility is not None:
            ms.written_search_attributes = tx.visibility.search_attributes
        if tx.current is not None:
            self._remember_current(tx.current)
        for task in tx.queue_tasks:
            self.enqueue(task)
        self.timers.add(tx.timer_tasks)
        if tx.events or tx.current is not None:
            self._notify((s.namespace_id, s.workflow_id, s.run_id))
        if not ms.running:
            self._cached_closed((s.namespace_id, s.workflow_id, s.run_id))
        if metrics.enabled():
            _measure_transition(ms, tx)

    def _visibility(self, ms: MutableState) -> VisibilityRecord:
        s = ms.s
        return VisibilityRecord(
            namespace_id=s.namespace_id,
            workflow_id=s.workflow_id,
            run_id=s.run_id,
            workflow_type=s.workflow_type,
            task_queue=s.task_queue,
            status=s.status,
            start_time_ns=s.start_time_ns,
            execution_time_ns=s.execution_time_ns,
            close_time_ns=s.close_time_ns,
            history_length=s.next_event_id - 1,
            memo=s.memo.SerializeToString() if s.memo else b"",
            search_attributes=s.search_attributes.SerializeToString()
            if s.search_attributes
            else b"",
            parent_workflow_id=s.parent.workflow_id if s.parent else "",
            parent_run_id=s.parent.run_id if s.parent else "",
            # As the reference: a workflow without a parent is its own root.
            root_workflow_id=s.root_workflow_id or s.workflow_id,
            root_run_id=s.root_run_id or s.run_id,
            history_size_bytes=s.history_size_bytes,
            state_transition_count=ms.db_version + 1,
        )

    # ---- history replication: a transition another cluster replicated ------------------
    def _check_not_overtaken(self, ms: MutableState) -> None:
        """Refuse (NamespaceNotActive) to write an execution whose history already holds events
        of a newer failover version than this cluster's for the namespace: another cluster has
        been made active since, and this one has not heard of it yet (a split brain)."""
        history = ms.s.version_history
        ns = self.namespaces.by_id(ms.s.namespace_id)
        if history and history[-1].version > ns.failover_version:
            owner = self.namespaces.clusters.owner_of(history[-1].version)
            raise errors.namespace_not_active(ns.name, self.namespaces.clusters.current_name, owner)

    async def apply_replicated(self, t: ReplicatedTransition) -> list[HiddenBranch]:
        """Append the transition's events and take its state as this execution's, with the
        timer and queue tasks it created, in one commit with the watermark it moves. Raises
        ReplicationGap when events between this cluster's last one and the transition's are
        missing; a transition already applied commits only its watermark.

        Where the transition's history has branched from this cluster's (both clusters were
        active), the branch whose last event has the higher version wins: an older transition
        commits only its watermark; a newer one replaces this cluster's events after the common
        one, which are kept hidden, for their signals, cancel requests and terminations to be
        re-applied on the winning branch. Histories that share no event raise
        UnresolvableConflict (nothing is written).

        Where the run competes with another run of its workflow id that is current here (both
        clusters started one), the run written last wins, as Temporal's transaction manager
        decides: a winner becomes current and a running loser is suppressed with it
        (`_suppress`); a losing run is kept as a zombie and the events of the transition to
        re-apply on the current run are kept with it, as a hidden branch not yet re-applied
        (`_zombie_reapply`), in the same commit.

        Returns the branches this commit left to re-apply (`branches_to_reapply` finds them
        again after a restart)."""
        task = t.task
        key = (task.namespace_id, task.workflow_id, task.run_id)
        entry = self._entry(key)
        async with entry.lock, contextlib.AsyncExitStack() as rival_lock:
            old = entry.ms
            if old is None:
                with contextlib.suppress(errors.NotFound):
                    old = await self._load(key)
            state = MutableState.restore(task.state)
            try:
                branched = (
                    divergence(old.s.version_history, state.version_history)
                    if old is not None
                    else None
                )
            except UnresolvableConflict:
                if old is not None:
                    self._drop(entry, old)  # the next attempt reads this cluster's copy again
                raise
            next_id = old.s.next_event_id if old is not None else 1
            rewind: HistoryRewind | None = None
            if branched is not None and branched.theirs_wins:
                next_id = branched.common + 1
                rewind = HistoryRewind(branched.common, branched.branch)
            events = [(e.event_id, raw) for e, raw in zip(t.parsed, t.events, strict=True)]
            events = [(event_id, raw) for event_id, raw in events if event_id >= next_id]
            if old is not None and (
                (branched is not None and not branched.theirs_wins)
                or (branched is None and state.next_event_id < next_id)
            ):
                # Applied already (sent again), or the losing side of a conflict: only the
                # watermark moves.
                if branched is not None:
                    log.warning(
                        "replicated transition of %s at version %d lost to this cluster's "
                        "branch; skipped",
                        key[1],
                        task.version,
                    )
                ms, events = old, []
            elif [i for i, _ in events] != list(range(next_id, state.next_event_id)):
                raise ReplicationGap(next_id, events[0][0] if events else state.next_event_id)
            else:
                ms = self.new_mutable_state(state, old.db_version if old is not None else 0)
            pointer: CurrentExecution | None = None
            rival: MutableState | None = None
            if ms is not old and (old is None or old.s.zombie):
                pointer = await self.store.get_current_execution(key[0], key[1])
                if pointer is not None and pointer.run_id != key[2]:
                    rival = await self._locked(pointer, rival_lock)
            hidden: HiddenBranch | None = None
            if rewind is not None:
                hidden = HiddenBranch(
                    *key,
                    rewind.branch,
                    await self.store.read_events(*key, next_id, _MAX_HIDDEN_EVENTS),
                    False,
                )
                log.warning(
                    "history of %s branched after event %d: this cluster's branch %s lost to "
                    "version %d and is hidden",
                    key[1],
                    rewind.after_event_id,
                    rewind.branch,
                    task.version,
                )
            suppressed: ExecutionTransaction | None = None
            try:
                if rival is None:
                    current = _current(ms) if old is None or ms.s.status != old.s.status else None
                    expected = pointer.run_id if old is None and pointer is not None else None
                elif last_write_version(ms.s) >= last_write_version(rival.s):
                    ms.s.zombie = False  # revived, as Temporal does with a zombie that wins
                    current, expected = _current(ms), rival.s.run_id
                    suppressed = self._suppress(rival, last_write_version(ms.s))
                else:
                    ms.s.zombie = ms.s.status == workflow_pb2.WORKFLOW_EXECUTION_STATUS_RUNNING
                    current = expected = None
                    if old is None:
                        log.warning(
                            "replicated run %s of %s lost to the current run %s: a zombie",
                            key[2],
                            key[1],
                            rival.s.run_id,
                        )
                tx = await self._replicated_transaction(ms, old, events, t, current, expected)
                tx.rewind = rewind
                if rival is not None and current is None:
                    tx.reapply = _zombie_reapply(t, next_id)
                first = tx
                if suppressed is not None:
                    suppressed.new_run, first = tx, suppressed
                cancelled = await self._commit_through(first)
            except BaseException:
                self._drop(entry, old or ms)
                if rival is not None:
                    rival.effects.clear()
                    self._drop(self._entry(_key_of(rival)), rival)
                raise
            if suppressed is not None and rival is not None:
                self._committed(rival, suppressed)
                _run_effects(rival)
            entry.ms = ms
            self._committed(ms, tx)
            if old is not None and current is None:
                # The pointer moves only if this run still holds it: read it again when needed.
                self._current.pop((key[0], key[1]), None)
            if cancelled:
                raise asyncio.CancelledError
        branches = [hidden] if hidden is not None else []
        if tx.reapply is not None:
            events_of = [raw for _, raw in tx.reapply.events]
            branches.append(HiddenBranch(*key, tx.reapply.branch, events_of, False))
        return branches

    async def _locked(
        self, pointer: CurrentExecution, lock: contextlib.AsyncExitStack
    ) -> MutableState:
        """The run `pointer` names, locked (until `lock` closes) and loaded; Unavailable when
        its lock is not free within RIVAL_LOCK_WAIT_S."""
        key = (pointer.namespace_id, pointer.workflow_id, pointer.run_id)
        entry = self._entry(key)
        busy = f"run {pointer.run_id} of {pointer.workflow_id} is busy; retry"
        await lock.enter_async_context(locked_within(entry.lock, RIVAL_LOCK_WAIT_S, busy))
        if entry.ms is None:
            entry.ms = await self._load(key)
        return entry.ms

    def _suppress(self, rival: MutableState, winner_version: int) -> ExecutionTransaction | None:
        """The transition closing a running `rival` that lost to a replicated run of its
        workflow id, as Temporal's SuppressBy: terminated (and replicated) if this cluster
        wrote its last event, else a zombie; None if it is closed already."""
        if not rival.running:
            return None
        version = last_write_version(rival.s)
        clusters = self.namespaces.clusters
        if clusters.owner_of(version) != clusters.current_name:
            rival.s.zombie = True
            shard = self.shard_for(rival.s.namespace_id, rival.s.workflow_id)
            return _transaction_of(rival, shard, False, visibility=self._visibility(rival))
        rival.s.failover_version = version
        if rival.workflow_task.started:
            rival.workflow_task.fail(
                cause_pb.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND, None, HISTORY_SERVICE
            )
        details = common_pb.Payloads(
            payloads=[json_payload(f"terminated by version: {winner_version}")]
        )
        rival.terminate(VERSION_CONFLICT, details, HISTORY_SERVICE)
        log.warning(
            "run %s of %s lost to a replicated run at version %d and is terminated",
            rival.s.run_id,
            rival.s.workflow_id,
            winner_version,
        )
        return self._transaction(rival, False, True, None, suppressing=True)

    async def replicate_whole(self, key: ExecutionKey) -> None:
        """Write a replication task carrying the execution's whole history, its state and its
        pending timer and queue tasks: the back-fill of an execution that existed before its
        namespace replicated to a cluster. Taken under the execution's lock, so it is ordered
        with the execution's own transitions; nothing when the namespace does not replicate
        from here."""
        if not self.namespaces.replicates(key[0]):
            return
        entry = self._entry(key)
        async with entry.lock:
            if entry.ms is None:
                entry.ms = await self._load(key)
            ms = entry.ms
            shard = self.shards.get(ms.shard_id)
            if shard is None or shard.next_task_id != ms.next_task_id:
                raise errors.ShardNotOwned(ms.shard_id)

            def of_execution(t: TimerTask | QueueTask) -> bool:
                return (t.namespace_id, t.workflow_id, t.run_id) == key

            pending = (
                list(filter(of_execution, await self.store.load_timer_tasks(ms.shard_id))),
                list(filter(of_execution, await self.store.load_queue_tasks(ms.shard_id))),
            )
            tx = _transaction_of(ms, shard, False)
            tx.replication_task = whole_execution_task(
                tx,
                shard.next_task_id(),
                ms.s.next_event_id,
                ms.s.failover_version,
                self.clock(),
                pending,
            )
            try:
                cancelled = await self._commit_through(tx)
            except BaseException:
                self._drop(entry, ms)
                raise
            self._committed(ms, tx)
            if cancelled:
                raise asyncio.CancelledError

    async def _replicated_transaction(
        self,
        ms: MutableState,
        old: MutableState | None,
        events: list[tuple[int, bytes]],
        t: ReplicatedTransition,
        current: CurrentExecution | None,
        expected_current_run_id: str | None,
    ) -> ExecutionTransaction:
        """The commit of a replicated transition; `current`: the pointer it writes, taken
        over from `expected_current_run_id` (a new run, or one winning over the current)."""
        s = ms.s
        shard = self.shard_for(s.namespace_id, s.workflow_id)
        timer_tasks: list[TimerTask] = []
        queue_tasks: list[QueueTask] = []
        if ms is not old and not s.zombie:
            timer_tasks, queue_tasks = replicated_tasks(t.task)
            for timer in timer_tasks:
                timer.shard_id, timer.task_id = shard.shard_id, shard.next_task_id()
            for queued in queue_tasks:
                queued.shard_id, queued.task_id = shard.shard_id, shard.next_task_id()
        return _transaction_of(
            ms,
            shard,
            old is None,
            events=events,
            current=current,
            expected_current_run_id=expected_current_run_id,
            timer_tasks=timer_tasks,
            queue_tasks=queue_tasks,
            visibility=self._visibility(ms),
            replication_ack=t.ack,
        )

    # ---- history reads and change notification ----------------------------------------
    async def read_history(
        self, key: ExecutionKey, first_event_id: int, limit: int
    ) -> list[history_pb.HistoryEvent]:
        raw = await self.store.read_events(*key, first_event_id, limit)
        return [history_pb.HistoryEvent.FromString(b) for b in raw]

    async def read_history_batches_reverse(
        self, key: ExecutionKey, last_event_id: int, batches: int
    ) -> list[history_pb.HistoryEvent]:
        """The events of the last `batches` batches up to `last_event_id`, newest first."""
        raw = await self.store.read_event_batches_reverse(*key, last_event_id, batches)
        return [history_pb.HistoryEvent.FromString(b) for b in raw]

    def _notify(self, key: ExecutionKey) -> None:
        for future in self._watchers.pop(key, []):
            if not future.done():
                future.set_result(None)

    async def wait_for_change(self, key: ExecutionKey, timeout: float) -> None:
        """Return when the execution commits new events or changes status, or at `timeout`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(key, []).append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._watchers.get(key)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._watchers[key]


# How a run's closing status counts in the workflow outcome metrics.
_OUTCOMES: dict[int, str] = {
    workflow_pb2.WORKFLOW_EXECUTION_STATUS_COMPLETED: "workflow_success",
    workflow_pb2.WORKFLOW_EXECUTION_STATUS_FAILED: "workflow_failed",
    workflow_pb2.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "workflow_timeout",
    workflow_pb2.WORKFLOW_EXECUTION_STATUS_TERMINATED: "workflow_terminate",
    workflow_pb2.WORKFLOW_EXECUTION_STATUS_CANCELED: "workflow_cancel",
    workflow_pb2.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "workflow_continued_as_new",
}


def _measure_transition(ms: MutableState, tx: ExecutionTransaction) -> None:
    """A committed transition: its count (one per commit: the db version), the history's
    length and size, and the run's outcome when it closed."""
    s = ms.s
    namespace = metrics.namespace_name(s.namespace_id)
    measured = metrics.transition(namespace)
    measured.state_transitions.observe(ms.db_version)
    events = s.next_event_id - 1
    measured.history_count.observe(events)
    measured.history_size.observe(s.history_size_bytes)
    outcome = _OUTCOMES.get(s.status) if tx.current is not None else None
    if outcome is not None:
        metrics.workflow_closed(
            outcome, namespace, s.task_queue, s.workflow_type, events, s.history_size_bytes
        )


def _transaction_of(
    ms: MutableState, shard: Shard, new: bool, **parts: Any
) -> ExecutionTransaction:
    """The transition of `ms` to commit on `shard` (`new`: its execution row is inserted), with
    the other `parts` of an ExecutionTransaction."""
    s = ms.s
    return ExecutionTransaction(
        shard_id=shard.shard_id,
        range_id=shard.range_id,
        namespace_id=s.namespace_id,
        workflow_id=s.workflow_id,
        run_id=s.run_id,
        state=ms.snapshot(),
        db_version=ms.db_version + 1,
        expected_db_version=None if new else ms.db_version,
        **parts,
    )


@contextlib.asynccontextmanager
async def locked_within(lock: asyncio.Lock, seconds: float, busy: str) -> AsyncIterator[None]:
    """Hold `lock`, waiting at most `seconds` for it (then Unavailable with `busy`): for a
    second lock taken while holding one, so that no two holders wait on each other for ever."""
    try:
        await asyncio.wait_for(lock.acquire(), seconds)
    except TimeoutError:
        raise errors.Unavailable(busy) from None
    try:
        yield
    finally:
        lock.release()


def _current(ms: MutableState) -> CurrentExecution:
    """The current-run pointer naming `ms`'s run as it is now."""
    s = ms.s
    return CurrentExecution(
        namespace_id=s.namespace_id,
        workflow_id=s.workflow_id,
        run_id=s.run_id,
        running=ms.running,
        status=s.status,
        start_request_id=s.start_request_id,
        start_time_ns=s.start_time_ns,
    )


def _key_of(ms: MutableState) -> ExecutionKey:
    return (ms.s.namespace_id, ms.s.workflow_id, ms.s.run_id)


def _zombie_reapply(t: ReplicatedTransition, next_id: int) -> PendingReapply | None:
    """The events a losing run's transition writes (from `next_id`) to re-apply on the current
    run, kept as the hidden branch `zombie@<first event id>`: its signals and the like, not the
    termination that suppressed it on the cluster that wrote it. None when there are none."""
    events = [
        (event.event_id, raw)
        for event, raw in zip(t.parsed, t.events, strict=True)
        if event.event_id >= next_id
        and event.event_type in REAPPLIED
        and not (
            event.event_type == event_type_pb2.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
            and event.workflow_execution_terminated_event_attributes.reason == VERSION_CONFLICT
        )
    ]
    return PendingReapply(f"zombie@{events[0][0]}", events) if events else None


def _changes(m: Mutation) -> bool:
    return bool(m.events or m.timer_tasks or m.queue_tasks)


def _run_effects(ms: MutableState) -> None:
    for effect in ms.take_effects():
        effect()
