"""History replication, the receiving side: for each shard of each cluster it is connected to
(with replication enabled), this cluster pulls the replication tasks in task id order and
applies each (`HistoryEngine.apply_replicated`); the watermark commits with the applied
transition, so a restart resumes where it stopped, replaying nothing and skipping nothing.
Missing events (a gap) are fetched from the source's history first.

A source shard is pulled by the process owning the local shard of the same number modulo this
cluster's shard count (a `ShardListener`)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time

import grpc

from aion import errors, metrics
from aion.history.engine import HistoryEngine
from aion.history.replication import ReplicatedTransition, ReplicationGap
from aion.persistence import (
    RemoteClusterRecord,
    ReplicationAck,
    ReplicationDLQRecord,
    ReplicationTaskRecord,
    StoreUnavailableError,
)
from aion.replication.remote import RemoteClusters, decode_task, encode_task

log = logging.getLogger(__name__)

PULL_INTERVAL_S = 0.2
BATCH = 200
CONCURRENCY = 32  # workflows of one pull applied at a time (their commits share a group commit)
MAX_ATTEMPTS = 3  # applies of a task before it goes to the DLQ


class HistoryReplicator:
    """The pull loops of the shards this process owns (`shard_acquired`, `shard_released`)."""

    def __init__(self, engine: HistoryEngine, remotes: RemoteClusters) -> None:
        self.engine = engine
        self.store = engine.store
        self.remotes = remotes
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._watermarks: dict[tuple[str, int], int] = {}
        self._unreachable: set[str] = set()
        self._pulling: dict[tuple[str, int], asyncio.Lock] = {}  # one pull of a shard at a time
        self._failures: dict[tuple[str, int, int], int] = {}  # failed applies of a task

    async def shard_acquired(self, shard_id: int) -> None:
        if shard_id not in self._loops:
            self._loops[shard_id] = asyncio.get_running_loop().create_task(self._run(shard_id))

    def shard_released(self, shard_id: int) -> None:
        loop = self._loops.pop(shard_id, None)
        if loop is not None:
            loop.cancel()
        self._watermarks = {k: v for k, v in self._watermarks.items() if k[1] != shard_id}

    async def stop(self) -> None:
        loops = list(self._loops.values())
        self._loops.clear()
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    def _sources(self, shard_id: int) -> list[tuple[RemoteClusterRecord, int]]:
        """The (cluster, shard) pairs this local shard pulls."""
        return [
            (remote, source_shard)
            for remote in self.remotes.clusters.remotes()
            if remote.connection_enabled and remote.replication_enabled
            for source_shard in range(remote.history_shard_count)
            if source_shard % self.engine.num_shards == shard_id
        ]

    async def _run(self, shard_id: int) -> None:
        while True:
            pulled = False
            for remote, source_shard in self._sources(shard_id):
                try:
                    pulled |= await self.pull(remote, source_shard)
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is None or current.cancelling():
                        raise  # this loop is stopped
                    # A call inside the pull was cancelled: that must not end the shard's loop.
                    log.exception(
                        "replicating shard %s of cluster %s cancelled", source_shard, remote.name
                    )
                except Exception:  # the next round tries again
                    log.exception(
                        "replicating shard %s of cluster %s failed", source_shard, remote.name
                    )
            if not pulled:
                await asyncio.sleep(PULL_INTERVAL_S)

    async def catch_up(self, cluster: str) -> None:
        """Apply what `cluster` has replicated and this one not yet (before this cluster takes
        over a namespace from it)."""
        for shard_id in list(self._loops):
            for remote, source_shard in self._sources(shard_id):
                if remote.name == cluster:
                    while await self.pull(remote, source_shard):
                        pass

    async def pull(self, remote: RemoteClusterRecord, source_shard: int) -> bool:
        """Apply the next tasks of the source shard; whether there were any."""
        key = (remote.name, source_shard)
        async with self._pulling.setdefault(key, asyncio.Lock()):
            return await self._pull(remote, key)

    async def _pull(self, remote: RemoteClusterRecord, key: tuple[str, int]) -> bool:
        source_shard = key[1]
        watermark = self._watermarks.get(key)
        if watermark is None:
            watermark = await self.store.replication_watermark(*key)
        try:
            tasks = await self.remotes.replication_tasks(
                remote.address, source_shard, watermark, BATCH
            )
        except grpc.aio.AioRpcError as e:
            if remote.name not in self._unreachable:
                self._unreachable.add(remote.name)
                log.warning("cannot reach cluster %s: %s", remote.name, e.details())
            return False
        self._unreachable.discard(remote.name)
        progress = _Progress(watermark, [task.task_id for task, _ in tasks])
        by_workflow: dict[tuple[str, str], list[tuple[ReplicationTaskRecord, list[bytes]]]] = {}
        for task, events in tasks:
            by_workflow.setdefault((task.namespace_id, task.workflow_id), []).append((task, events))
        applying = asyncio.Semaphore(CONCURRENCY)

        async def apply_in_order(workflow: list[tuple[ReplicationTaskRecord, list[bytes]]]) -> None:
            async with applying:
                for task, events in workflow:
                    ack = ReplicationAck(remote.name, source_shard, progress.ack(task.task_id))
                    transition = ReplicatedTransition(task, events, ack)
                    try:
                        await self._apply(remote, transition)
                    except (errors.ShardNotOwned, errors.Unavailable, StoreUnavailableError):
                        raise  # not the task's fault: the next round tries it again
                    except Exception as e:
                        if not await self._set_aside(transition, e):
                            raise
                    progress.done(task.task_id)

        try:
            outcomes = await asyncio.gather(
                *(apply_in_order(w) for w in by_workflow.values()), return_exceptions=True
            )
        finally:
            self._watermarks[key] = progress.watermark
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return bool(tasks)

    async def _set_aside(self, transition: ReplicatedTransition, error: Exception) -> bool:
        """Count a failure of the task; at the MAX_ATTEMPTS-th, move it to the DLQ (and the
        watermark past it) so its shard goes on. Whether it was set aside."""
        task, ack = transition.task, transition.ack
        assert ack is not None
        failure = (ack.source_cluster, ack.shard_id, task.task_id)
        self._failures[failure] = self._failures.get(failure, 0) + 1
        if self._failures[failure] < MAX_ATTEMPTS:
            return False
        del self._failures[failure]
        record = ReplicationDLQRecord(
            *failure,
            task.namespace_id,
            task.workflow_id,
            task.run_id,
            json.dumps(encode_task(task, transition.events)).encode(),
            repr(error),
            time.time_ns(),
        )
        await self.store.add_to_replication_dlq(record, ack)
        log.error(
            "replication task %s of %s (cluster %s, shard %s) moved to the DLQ: %r",
            task.task_id,
            task.workflow_id,
            ack.source_cluster,
            ack.shard_id,
            error,
        )
        return True

    async def merge_dlq(self, source_cluster: str = "") -> tuple[int, int]:
        """Apply the DLQ's tasks (of `source_cluster`, or all) again; those applied leave it.
        (merged, still failing)."""
        merged = failing = 0
        for record in await self.store.list_replication_dlq():
            if source_cluster and record.source_cluster != source_cluster:
                continue
            task, events = decode_task(json.loads(record.task))
            try:
                await self.engine.apply_replicated(ReplicatedTransition(task, events, None))
            except Exception as e:
                log.warning("DLQ task %s of %s still fails: %r", task.task_id, task.workflow_id, e)
                failing += 1
                continue
            await self.store.delete_replication_dlq(
                record.source_cluster, record.shard_id, record.task_id
            )
            merged += 1
        return merged, failing

    async def _apply(self, remote: RemoteClusterRecord, transition: ReplicatedTransition) -> None:
        task = transition.task
        await self._wait_for_namespace(task)
        try:
            await self._apply_filling_gaps(remote, transition)
        except Exception:
            metrics.replication_failed(task.namespace_id, remote.name)
            raise
        latency = max(0, time.time_ns() - task.create_time_ns) / 1e9
        metrics.replication_applied(task.namespace_id, remote.name, latency)

    async def _apply_filling_gaps(
        self, remote: RemoteClusterRecord, transition: ReplicatedTransition
    ) -> None:
        try:
            await self.engine.apply_replicated(transition)
        except ReplicationGap as gap:
            task = transition.task
            key = (task.namespace_id, task.workflow_id, task.run_id)
            limit = gap.until_event_id - gap.next_event_id
            missing = await self.remotes.history(remote.address, key, gap.next_event_id, limit)
            log.info("re-fetched %d missing events of %s", len(missing), task.workflow_id)
            events = missing + transition.events
            await self.engine.apply_replicated(ReplicatedTransition(task, events, transition.ack))

    async def _wait_for_namespace(self, task: ReplicationTaskRecord) -> None:
        """A namespace registered moments ago reaches this cluster by its own pull."""
        namespaces = self.engine.namespaces
        while not namespaces.knows(task.namespace_id):
            await namespaces.wait_for_change(1.0)


class _Progress:
    """The tasks of one pull (in task id order) and the watermark they have reached: the last
    task id up to which every task is applied (or set aside)."""

    def __init__(self, watermark: int, task_ids: list[int]) -> None:
        self.watermark = watermark
        self._pending = collections.deque(task_ids)
        self._done: set[int] = set()

    def ack(self, task_id: int) -> int:
        """The watermark the transition of `task_id` commits with: its own id when every task
        before it is applied, else the watermark reached (a transition commits no watermark
        past a task not yet committed)."""
        return task_id if self._pending and self._pending[0] == task_id else self.watermark

    def done(self, task_id: int) -> None:
        self._done.add(task_id)
        while self._pending and self._pending[0] in self._done:
            self._done.discard(self._pending[0])
            self.watermark = self._pending.popleft()
