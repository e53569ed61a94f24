"""History replication, the receiving side: for each shard of each cluster it is connected to
(with replication enabled), this cluster pulls the replication tasks in task id order and
applies each (`HistoryEngine.apply_replicated`); the watermark commits with the applied
transition, so a restart resumes where it stopped, replaying nothing and skipping nothing.
Missing events (a gap) are fetched from the source's history first.

A source shard is pulled by the process owning the local shard of the same number modulo this
cluster's shard count (a `ShardListener`)."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from aion import metrics
from aion.history.engine import HistoryEngine
from aion.history.replication import ReplicatedTransition, ReplicationGap
from aion.persistence import RemoteClusterRecord, ReplicationAck, ReplicationTaskRecord
from aion.replication.remote import RemoteClusters

log = logging.getLogger(__name__)

PULL_INTERVAL_S = 0.2
BATCH = 100


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
                    raise
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
        for task, events in tasks:
            ack = ReplicationAck(remote.name, source_shard, task.task_id)
            await self._apply(remote, ReplicatedTransition(task, events, ack))
            self._watermarks[key] = task.task_id
        return bool(tasks)

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
