"""History replication, the receiving side: for each shard of each cluster it is connected to
(with replication enabled), this cluster pulls the replication tasks in task id order and
applies each (`HistoryEngine.apply_replicated`); the watermark commits with the applied
transition, so a restart resumes where it stopped, replaying nothing and skipping nothing.
Missing events (a gap) are fetched from the source's history first. Where the source's history
of a run has branched from this cluster's and wins, this cluster's branch is hidden and its
signals, cancel requests and terminations are re-applied where the namespace is active (here,
or by a `Reapply` call to that cluster), as are those of a run that lost to the current run of
its workflow id (a zombie: kept as a hidden branch of its own); a branch not yet re-applied
(that cluster unreachable, this process restarted) is tried again by its shard's pull loop,
with a growing delay (`ReapplyBackoff`), and set aside after repeated failures that are not
outages (marked in the store, until `aion replication dlq merge`).

A source shard is pulled by the process owning the local shard of the same number modulo this
cluster's shard count (a `ShardListener`); each transition is applied by the process owning its
execution's shard, here or, among processes sharing the database, through a named operation
(`replication.apply`)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from temporalio.api.errordetails.v1.message_pb2 import NamespaceNotActiveFailure

from aion import errors, metrics
from aion.common.faults import fault_point
from aion.history.api.reapply_events import reapplicable, reapply_events
from aion.history.engine import HistoryEngine
from aion.history.ports import Op
from aion.history.replication import ReplicatedTransition, ReplicationGap
from aion.persistence import (
    HiddenBranch,
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
APPLY_OP = "replication.apply"
CATCH_UP_OP = "replication.catch_up"
RETRY_BRANCHES_OP = "replication.retry_branches"
REAPPLY_FIRST_DELAY_S = 1.0  # after a branch's first failed re-apply; doubling after each
REAPPLY_MAX_DELAY_S = 300.0
REAPPLY_MAX_FAILURES = 10  # failures that are not outages before a branch is set aside
# Test fault point: the process exits once a transition leaving branches to re-apply commits.
REAPPLY_PENDING_FAULT = "reapply-pending"

BranchKey = tuple[str, str, str, str]  # namespace id, workflow id, run id, branch


def reapply_delay(failures: int) -> float:
    """Seconds before a branch whose re-apply failed `failures` times in a row is tried again:
    1 s, doubling, at most 5 minutes."""
    return min(REAPPLY_FIRST_DELAY_S * 2 ** (failures - 1), REAPPLY_MAX_DELAY_S)


def is_outage(error: BaseException) -> bool:
    """Whether a failed re-apply is an outage (a cluster, shard or the database unreachable, a
    namespace moving) that says nothing of the branch itself."""
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    if isinstance(error, errors.ServiceError) and isinstance(
        error.details, NamespaceNotActiveFailure
    ):
        return True
    return isinstance(
        error,
        (errors.Unavailable, errors.DeadlineExceeded, StoreUnavailableError, OSError, TimeoutError),
    )


@dataclass
class _Retry:
    failures: int  # in a row, outages included
    permanent: int  # of them, failures that are not outages
    due: float  # monotonic time of the next attempt (inf: set aside)


class ReapplyBackoff:
    """When each hidden branch whose re-apply failed is tried again (`reapply_delay` after its
    last failure); after REAPPLY_MAX_FAILURES failures that are not outages it is set aside:
    never again until `release`. Kept in memory (a restart counts failures afresh); the
    set-aside mark is kept in the store as well (`HistoryReplicator._mark_set_aside`)."""

    def __init__(self) -> None:
        self._retries: dict[BranchKey, _Retry] = {}

    def failed(self, branch: BranchKey, outage: bool, now: float) -> float:
        """Note a failure; when the branch is due again (inf: it is set aside now)."""
        retry = self._retries.setdefault(branch, _Retry(0, 0, now))
        retry.failures += 1
        retry.permanent += not outage
        if retry.permanent >= REAPPLY_MAX_FAILURES:
            retry.due = float("inf")
        else:
            retry.due = now + reapply_delay(retry.failures)
        return retry.due

    def due(self, branch: BranchKey) -> float:
        """When the branch may be tried (0: now, never failed; inf: set aside)."""
        retry = self._retries.get(branch)
        return 0.0 if retry is None else retry.due

    def succeeded(self, branch: BranchKey) -> None:
        self._retries.pop(branch, None)

    def release(self, shard_of: Callable[[str, str], int], shard_id: int) -> None:
        """Forget the failures of the shard's branches (`shard_of(namespace id, workflow id)`
        names a branch's shard), set aside or not: they are tried at once."""
        for branch in [b for b in self._retries if shard_of(b[0], b[1]) == shard_id]:
            del self._retries[branch]


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
        # Shards that may hold branches to re-apply, and when (monotonic time).
        self._reapply_due: dict[int, float] = {}
        self._backoff = ReapplyBackoff()

    async def shard_acquired(self, shard_id: int) -> None:
        if shard_id not in self._loops:
            self._reapply_due[shard_id] = 0.0
            self._loops[shard_id] = asyncio.get_running_loop().create_task(self._run(shard_id))

    def shard_released(self, shard_id: int) -> None:
        loop = self._loops.pop(shard_id, None)
        if loop is not None:
            loop.cancel()
        self._watermarks = {k: v for k, v in self._watermarks.items() if k[1] != shard_id}
        self._reapply_due.pop(shard_id, None)
        self._backoff.release(self.engine.shard_id_of, shard_id)

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
            if self._reapply_due.get(shard_id, float("inf")) <= time.monotonic():
                await self._reapply_pending(shard_id)
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
        over a namespace from it): each of its shards on the process pulling it, here or
        another sharing the database. A shard whose puller cannot be reached is left out."""
        remote = self.remotes.clusters.remote(cluster)
        if remote is None or not (remote.connection_enabled and remote.replication_enabled):
            return
        for source_shard in range(remote.history_shard_count):
            args = {"cluster": cluster, "shard_id": source_shard}
            try:
                await self.engine.call(source_shard % self.engine.num_shards, CATCH_UP_OP, args)
            except (errors.ShardNotOwned, errors.Unavailable) as e:
                log.warning("shard %s of %s not caught up: %s", source_shard, cluster, e)

    async def _catch_up_here(self, engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
        """`CATCH_UP_OP` on the process pulling the source shard."""
        remote = self.remotes.clusters.remote(args["cluster"])
        if remote is not None:
            while await self.pull(remote, args["shard_id"]):
                pass
        return {}

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
        committed = watermark  # the highest watermark a transition committed with

        async def apply_in_order(workflow: list[tuple[ReplicationTaskRecord, list[bytes]]]) -> None:
            nonlocal committed
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
                    committed = max(committed, ack.task_id)
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
        if progress.watermark > committed:
            # The last transitions to commit did so before the ones below them were done: the
            # durable watermark catches up here, for a graceful failover waiting on it.
            await self.store.advance_replication_watermark(*key, progress.watermark)
        return bool(tasks)

    async def reapply(self, branch: HiddenBranch) -> bool:
        """Re-apply the hidden branch's signals, cancel requests and terminations where its
        namespace is active, and mark it done; whether it was (else it is tried again later,
        or set aside)."""
        key = (branch.namespace_id, branch.workflow_id, branch.run_id)
        name = (*key, branch.branch)
        try:
            active = await self._reapply_where_active(key, branch.events)
            await self.store.mark_reapplied(*key, branch.branch)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            due = self._backoff.failed(name, is_outage(e), time.monotonic())
            if due == float("inf"):
                log.error(
                    "re-applying branch %s of %s failed %d times; set aside until "
                    "`aion replication dlq merge`: %r",
                    branch.branch,
                    key[1],
                    REAPPLY_MAX_FAILURES,
                    e,
                )
                await self._mark_set_aside(branch)
            else:
                log.warning("re-applying branch %s of %s failed: %r", branch.branch, key[1], e)
                self._reapply_later(self.engine.shard_id_of(key[0], key[1]), due)
            return False
        self._backoff.succeeded(name)
        log.info("re-applied branch %s of %s on cluster %s", branch.branch, key[1], active)
        return True

    async def _reapply_where_active(self, key: tuple[str, str, str], events: list[bytes]) -> str:
        """Re-apply `events` on the run `key` (its workflow id's current run if no run id) on
        the cluster where its namespace is active, here or by a `Reapply` call; that cluster."""
        namespaces = self.engine.namespaces
        active = namespaces.by_id(key[0]).active_cluster
        remote = namespaces.clusters.remote(active)
        if active == namespaces.clusters.current_name:
            await reapply_events(self.engine, key, reapplicable(events))
        elif remote is not None:
            await self.remotes.reapply(remote.address, key, events)
        else:
            raise errors.Unavailable(f"the active cluster {active} is not connected")
        return active

    async def _mark_set_aside(self, branch: HiddenBranch) -> None:
        """Keep the set-aside mark in the store too, so a restart does not try the branch again
        (and the gauge counts it); without the store, the mark in memory holds until then."""
        key = (branch.namespace_id, branch.workflow_id, branch.run_id, branch.branch)
        try:
            await self.store.set_aside_branch(*key, time.time_ns())
        except Exception as e:  # never fails the re-apply, nor the shard's pull loop
            log.warning("branch %s of %s not marked set aside: %r", key[3], key[1], e)

    def _reapply_later(self, shard_id: int, due: float) -> None:
        self._reapply_due[shard_id] = min(due, self._reapply_due.get(shard_id, float("inf")))

    async def _reapply_pending(self, shard_id: int) -> None:
        """Re-apply the shard's branches that are due (not backing off, not set aside)."""
        del self._reapply_due[shard_id]
        now = time.monotonic()
        try:
            branches = await self.store.branches_to_reapply(shard_id)
        except StoreUnavailableError as e:
            log.warning("hidden branches of shard %s not read: %s", shard_id, e)
            self._reapply_later(shard_id, now + REAPPLY_FIRST_DELAY_S)
            return
        for branch in branches:
            due = self._backoff.due(
                (branch.namespace_id, branch.workflow_id, branch.run_id, branch.branch)
            )
            if due <= now:
                await self.reapply(branch)
            elif due != float("inf"):
                self._reapply_later(shard_id, due)

    async def _retry_branches_here(
        self, engine: HistoryEngine, args: dict[str, Any]
    ) -> dict[str, Any]:
        """`RETRY_BRANCHES_OP` on the shard's owner: its branches, set aside or backing off,
        are tried again by its pull loop at once."""
        shard_id = args["shard_id"]
        await self.store.release_set_aside_branches(shard_id)
        self._backoff.release(engine.shard_id_of, shard_id)
        self._reapply_due[shard_id] = 0.0
        return {}

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
        (merged, still failing). The hidden branches not yet re-applied (set aside or backing
        off) are tried again at once as well, by their shards' owners."""
        for shard_id in range(self.engine.num_shards):
            try:
                await self.engine.call(shard_id, RETRY_BRANCHES_OP, {"shard_id": shard_id})
            except (errors.ShardNotOwned, errors.Unavailable) as e:
                log.warning("branches of shard %s not retried: %s", shard_id, e)
        merged = failing = 0
        for record in await self.store.list_replication_dlq():
            if source_cluster and record.source_cluster != source_cluster:
                continue
            task, events = decode_task(json.loads(record.task))
            try:
                await self._apply_on_owner(ReplicatedTransition(task, events, None))
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
            await self._apply_on_owner(transition)
        except ReplicationGap as gap:
            task = transition.task
            key = (task.namespace_id, task.workflow_id, task.run_id)
            limit = gap.until_event_id - gap.next_event_id
            missing = await self.remotes.history(remote.address, key, gap.next_event_id, limit)
            log.info("re-fetched %d missing events of %s", len(missing), task.workflow_id)
            events = missing + transition.events
            await self._apply_on_owner(ReplicatedTransition(task, events, transition.ack))

    def operations(self) -> dict[str, Op]:
        """The named operations applying a transition or retrying hidden branches on the process
        owning their shard, and catching up a source shard on the process pulling it."""
        return {
            APPLY_OP: self._apply_here,
            CATCH_UP_OP: self._catch_up_here,
            RETRY_BRANCHES_OP: self._retry_branches_here,
        }

    async def _apply_on_owner(self, transition: ReplicatedTransition) -> None:
        """`HistoryEngine.apply_replicated` on the process owning the execution's shard."""
        task = transition.task
        shard_id = self.engine.shard_id_of(task.namespace_id, task.workflow_id)
        if shard_id in self.engine.shards:
            await self._apply_and_reapply(transition)
            return
        ack = transition.ack
        args = {
            "transition": encode_task(task, transition.events),
            "ack": None if ack is None else [ack.source_cluster, ack.shard_id, ack.task_id],
        }
        gap = (await self.engine.call(shard_id, APPLY_OP, args)).get("gap")
        if gap is not None:
            raise ReplicationGap(*gap)

    async def _apply_here(self, engine: HistoryEngine, args: dict[str, Any]) -> dict[str, Any]:
        """`APPLY_OP` on the shard's owner: a gap is answered, for the caller to fill."""
        task, events = decode_task(args["transition"])
        ack = None if args["ack"] is None else ReplicationAck(*args["ack"])
        try:
            await self._apply_and_reapply(ReplicatedTransition(task, events, ack))
        except ReplicationGap as gap:
            return {"gap": [gap.next_event_id, gap.until_event_id]}
        return {}

    async def _apply_and_reapply(self, transition: ReplicatedTransition) -> None:
        """Apply here, then re-apply what the commit left to re-apply: a branch of this
        cluster's that lost to it, the events of a run that lost to the current run of its
        workflow id (both kept as hidden branches, so a failure or a crash before they are
        re-applied leaves them to the shard's pull loop)."""
        branches = await self.engine.apply_replicated(transition)
        if branches:
            fault_point(REAPPLY_PENDING_FAULT)
        for branch in branches:
            await self.reapply(branch)

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
