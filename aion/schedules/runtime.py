"""Runs the schedules of the shards this process owns.

A schedule lives on the history shard of its id, like a workflow: the process owning the shard
keeps its `Scheduler` in memory, wakes it at its next action time, starts the workflows it
decides on (on their own shards, wherever those are) and saves its state after every step.
After a restart or a shard move, the new owner loads it and catches up: actions missed inside
the catchup window still run. Starts are idempotent (fixed workflow and request ids), so a step
repeated after a crash starts nothing twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb

from aion import errors
from aion.common.codec import pack, unpack
from aion.history.engine import HistoryEngine
from aion.history.ports import Op
from aion.persistence import ConditionFailedError, ScheduleRecord, ShardOwnershipLostError, Store
from aion.schedules.scheduler import Scheduler
from aion.visibility.search_attributes import SearchAttributeRegistry

log = logging.getLogger(__name__)

Status = workflow_pb2.WorkflowExecutionStatus
RUNNING = Status.WORKFLOW_EXECUTION_STATUS_RUNNING

RETRY_S = 1.0
STANDBY_CHECK_S = 5.0  # how often a schedule of a standby namespace looks for a failover
# A schedule with nothing left to do is deleted this long after its last event (as Temporal).
DEFAULT_RETENTION = dt.timedelta(days=7)

Key = tuple[str, str]  # namespace id, schedule id
T = TypeVar("T")


@dataclass
class _Entry:
    scheduler: Scheduler
    version: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wakeup: asyncio.TimerHandle | None = None


class ScheduleRuntime:
    """The schedules of this process's shards, each woken at its next action time: a listener
    of the engine's shards, and the server of the "schedule_workflow_closed" operation."""

    def __init__(self, engine: HistoryEngine, store: Store) -> None:
        self.engine = engine
        self.store = store
        self._entries: dict[Key, _Entry] = {}
        self._steps: set[asyncio.Task[None]] = set()
        self.retention = DEFAULT_RETENTION

    @property
    def search_attributes(self) -> SearchAttributeRegistry:
        """The registry schedules' search attributes are checked and typed by."""
        return self.engine.namespaces.search_attributes

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.engine.clock() / 1e9, dt.UTC)

    def operations(self) -> dict[str, Op]:
        """The named operations this runtime serves on its shards (for `HistoryEngine.call`)."""
        return {"schedule_workflow_closed": self._workflow_closed_op}

    async def _workflow_closed_op(self, engine: Any, args: dict[str, Any]) -> dict[str, Any]:
        namespace_id, schedule_id = args["schedule"]
        self.workflow_closed(namespace_id, schedule_id)
        return {}

    # ---- shards ----------------------------------------------------------------------------
    async def shard_acquired(self, shard_id: int) -> None:
        for record in await self.store.list_schedules(shard_id=shard_id):
            key = (record.namespace_id, record.schedule_id)
            self._entries[key] = _Entry(Scheduler.from_json(record.state), record.version)
            self._wake(key, 0.0)  # catch up at once

    def shard_released(self, shard_id: int) -> None:
        for key in [k for k in self._entries if self.engine.shard_id_of(*k) == shard_id]:
            entry = self._entries.pop(key)
            if entry.wakeup is not None:
                entry.wakeup.cancel()

    async def stop(self) -> None:
        for entry in self._entries.values():
            if entry.wakeup is not None:
                entry.wakeup.cancel()
        for step in list(self._steps):
            step.cancel()
        await asyncio.gather(*self._steps, return_exceptions=True)

    # ---- operations ------------------------------------------------------------------------
    async def read(self, namespace_id: str, schedule_id: str, fn: Callable[[Scheduler], T]) -> T:
        """`fn` of the schedule between steps (this process must own its shard; NotFound when
        there is no such schedule): never a step's decisions before they are carried out."""
        entry = self._entry((namespace_id, schedule_id))
        async with entry.lock:
            return fn(entry.scheduler)

    async def saved(self, namespace_id: str) -> list[Scheduler]:
        """The namespace's schedules as last saved, whichever process runs them."""
        records = await self.store.list_schedules(namespace_id=namespace_id)
        return [Scheduler.from_json(r.state) for r in records]

    async def create(self, scheduler: Scheduler) -> None:
        key = (scheduler.namespace_id, scheduler.schedule_id)
        self.engine.shard_for(*key)
        if key in self._entries:
            raise errors.workflow_already_started(
                f'schedule "{scheduler.schedule_id}" is already registered', "", ""
            )
        entry = _Entry(scheduler, 0)
        async with entry.lock:
            await self._save(key, entry, new=True)
            self._entries[key] = entry
        self._wake(key, 0.0)

    async def change(
        self, namespace_id: str, schedule_id: str, fn: Callable[[Scheduler], None]
    ) -> None:
        """Apply `fn` (update, patch) to the schedule, save it, and let it act at once."""
        key = (namespace_id, schedule_id)
        entry = self._entry(key)
        async with entry.lock:
            fn(entry.scheduler)
            await self._step(key, entry)

    async def delete(self, namespace_id: str, schedule_id: str) -> None:
        key = (namespace_id, schedule_id)
        entry = self._entry(key)
        async with entry.lock:
            await self._delete(key)

    async def _delete(self, key: Key) -> None:
        shard = self.engine.shard_for(*key)
        await self.store.delete_schedule(shard.shard_id, shard.range_id, *key)
        entry = self._entries.pop(key, None)
        if entry is not None and entry.wakeup is not None:
            entry.wakeup.cancel()

    def _entry(self, key: Key) -> _Entry:
        self.engine.shard_for(*key)
        entry = self._entries.get(key)
        if entry is None:
            raise errors.NotFound("schedule not found")
        return entry

    def workflow_closed(self, namespace_id: str, schedule_id: str) -> None:
        """One of the schedule's workflows closed (a durable task of that run says so): overlap
        policies and pause-on-failure act on it at once."""
        self._wake((namespace_id, schedule_id), 0.0)

    # ---- time passing ----------------------------------------------------------------------
    def _wake(self, key: Key, delay_s: float) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.wakeup is not None:
            entry.wakeup.cancel()
        entry.wakeup = asyncio.get_running_loop().call_later(delay_s, self._spawn, key)

    def _spawn(self, key: Key) -> None:
        step = asyncio.get_running_loop().create_task(self._woken(key))
        self._steps.add(step)
        step.add_done_callback(self._steps.discard)

    async def _woken(self, key: Key) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        async with entry.lock:
            if self._entries.get(key) is entry:
                try:
                    await self._step(key, entry)
                except errors.ServiceError as e:
                    log.debug("schedule %s: %s", key[1], e.message)

    async def _step(self, key: Key, entry: _Entry) -> None:
        """Look at the running workflows, take what is due, act on it, save; then sleep until
        the next action time or until one of its workflows closes."""
        s = entry.scheduler
        if self.engine.namespaces.is_standby(s.namespace_id):
            # Active in another cluster: this one takes over only after a failover.
            self._wake(key, STANDBY_CHECK_S)
            return
        try:
            await self._watch_running(s)
            decision = s.process_time(self.now())
            for start in decision.starts:
                await self._start(s, start.request)
            for execution in decision.cancel + decision.terminate:
                await self._close(s, execution.workflow_id, execution in decision.terminate)
            await self._save(key, entry)
        except Exception as e:
            shard_moved = isinstance(e, errors.ShardNotOwned | ShardOwnershipLostError)
            own_shard = self.engine.shard_id_of(*key)
            if shard_moved and own_shard not in self.engine.shards:
                self.shard_released(own_shard)
                raise errors.ShardNotOwned(own_shard) from None
            # Forget what this step decided; the saved state takes it again shortly. A
            # workflow's shard not served yet (start-up, a move) is retried the same way.
            report = log.debug if shard_moved else log.warning
            report("schedule %s: step failed (%s); retrying", key[1], e)
            await self._reload(key, entry)
            self._wake(key, RETRY_S)
            if isinstance(e, errors.ServiceError) and not shard_moved:
                raise
            return
        wake_at = decision.next_wakeup
        if decision.idle_since is not None:
            expires = decision.idle_since + self.retention
            if expires <= self.now():
                await self._delete(key)
                return
            wake_at = min(wake_at, expires) if wake_at is not None else expires
        if wake_at is not None:
            self._wake(key, max((wake_at - self.now()).total_seconds(), 0.0))

    async def _start(self, s: Scheduler, request: Any) -> None:
        workflow_id = request.workflow_id
        try:
            result = await self.engine.call(
                self.engine.shard_id_of(s.namespace_id, workflow_id),
                "start_workflow",
                {"namespace_id": s.namespace_id, "request": pack(request)},
            )
        except errors.AlreadyExists:
            s.start_failed(workflow_id)
            return
        s.started(workflow_id, result["run_id"], self.now())

    async def _close(self, s: Scheduler, workflow_id: str, terminate: bool) -> None:
        await self.engine.call(
            self.engine.shard_id_of(s.namespace_id, workflow_id),
            "close_child",
            {
                "child": [s.namespace_id, workflow_id],
                "terminate": terminate,
                "identity": f"temporal-scheduler-{s.namespace}-{s.schedule_id}",
            },
        )

    async def _watch_running(self, s: Scheduler) -> None:
        """Tell the scheduler of its workflows that closed since it last looked (asking each
        run's shard, here or on its owner)."""
        for execution in list(s.info.running_workflows):
            outcome = await self.engine.call(
                self.engine.shard_id_of(s.namespace_id, execution.workflow_id),
                "run_outcome",
                {"run": [s.namespace_id, execution.workflow_id, execution.run_id]},
            )
            status = outcome["status"]
            if status is None:
                s.on_workflow_closed(
                    execution.workflow_id, Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
                )
            elif "next_run_id" in outcome:
                execution.run_id = outcome["next_run_id"]  # the chain goes on
            elif status != RUNNING:
                failure, result = _outcome(outcome["closing"])
                s.on_workflow_closed(
                    execution.workflow_id, Status.ValueType(status), failure=failure, result=result
                )

    # ---- persistence -----------------------------------------------------------------------
    async def _save(self, key: Key, entry: _Entry, new: bool = False) -> None:
        shard = self.engine.shard_for(*key)
        record = ScheduleRecord(
            shard.shard_id, key[0], key[1], entry.scheduler.to_json(), entry.version + 1
        )
        try:
            await self.store.save_schedule(record, shard.range_id, None if new else entry.version)
        except ConditionFailedError:
            if new:
                raise errors.workflow_already_started(
                    f'schedule "{key[1]}" is already registered', "", ""
                ) from None
            raise
        entry.version += 1

    async def _reload(self, key: Key, entry: _Entry) -> None:
        record = await self.store.get_schedule(*key)
        if record is None:
            self._entries.pop(key, None)
            return
        entry.scheduler = Scheduler.from_json(record.state)
        entry.version = record.version


def _outcome(closing: str | None) -> tuple[Any, Any]:
    """The failure or result a closing event carries, for the next start."""
    if closing is None:
        return None, None
    event = unpack(history_pb.HistoryEvent, closing)
    which = event.WhichOneof("attributes")
    if which is None:
        return None, None
    attrs = getattr(event, which)
    fields = attrs.DESCRIPTOR.fields_by_name
    failure = attrs.failure if "failure" in fields and attrs.HasField("failure") else None
    result = attrs.result if "result" in fields and attrs.HasField("result") else None
    return failure, result
