"""Where replication stands (`aion replication status`), per shard, from the store:

- *receiving*: for each cluster this one pulls from and each of its shards, the last task id
  applied here (the watermark) and when, the tasks of it set aside in the DLQ, and, asked of the
  source, its highest task id and the tasks still to apply (the lag);
- *sending*: for each cluster this one replicates to and each local shard, what that cluster
  last acknowledged and when, this shard's highest task id and the tasks it has not applied.

The store holds all of it, so any process of a cluster answers for the whole cluster."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from aion.cluster_metadata import ClusterMetadata
from aion.persistence import Store

# The source's answer for a target: shard id -> (highest task id, tasks after the applied one).
Backlog = dict[int, tuple[int, int]]
AskSource = Callable[[str, dict[int, int]], Awaitable[Backlog]]


def _time(ns: int) -> str | None:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat() if ns else None


async def backlog(store: Store, applied: dict[int, int], namespace_id: str = "") -> Backlog:
    """Per shard of this cluster: its highest replication task id and how many tasks follow
    the one `applied` says the asking cluster has applied (of namespace `namespace_id` only,
    when given)."""
    found = {}
    for shard_id, task_id in applied.items():
        pending, highest = await store.replication_backlog(shard_id, task_id, namespace_id)
        found[shard_id] = (max(highest, task_id), pending)
    return found


async def sending(store: Store, clusters: ClusterMetadata) -> list[dict[str, Any]]:
    acks = {(a.cluster, a.shard_id): a for a in await store.replication_acks()}
    rows = []
    for remote in clusters.remotes():
        if not remote.replication_enabled:
            continue
        for shard_id in range(clusters.num_shards):
            ack = acks.get((remote.name, shard_id))
            acked = ack.task_id if ack else 0
            pending, highest = await store.replication_backlog(shard_id, acked)
            rows.append(
                {
                    "target_cluster": remote.name,
                    "shard_id": shard_id,
                    "acked_task_id": acked,
                    "acked_time": _time(ack.update_time_ns) if ack else None,
                    "max_task_id": max(highest, acked),
                    "lag": pending,
                }
            )
    return rows


async def lag(store: Store, clusters: ClusterMetadata) -> list[tuple[str, int]]:
    """Per cluster replicated to: the replication tasks of this cluster it has not applied."""
    totals: dict[str, int] = {r.name: 0 for r in clusters.remotes() if r.replication_enabled}
    for row in await sending(store, clusters):
        totals[row["target_cluster"]] += row["lag"]
    return list(totals.items())


async def receiving(
    store: Store, clusters: ClusterMetadata, ask_source: AskSource
) -> list[dict[str, Any]]:
    marks = {(w.cluster, w.shard_id): w for w in await store.replication_watermarks()}
    dlq = await store.replication_dlq_sizes()
    rows = []
    for remote in clusters.remotes():
        if not (remote.connection_enabled and remote.replication_enabled):
            continue
        shards = range(remote.history_shard_count)
        applied = {
            s: marks[(remote.name, s)].task_id if (remote.name, s) in marks else 0 for s in shards
        }
        try:
            source: Backlog | None = await ask_source(remote.address, applied)
            unreachable = None
        except grpc.aio.AioRpcError as e:
            source, unreachable = None, f"{e.code().name}: {e.details()}"
        for shard_id in shards:
            mark = marks.get((remote.name, shard_id))
            row: dict[str, Any] = {
                "source_cluster": remote.name,
                "shard_id": shard_id,
                "applied_task_id": applied[shard_id],
                "applied_time": _time(mark.update_time_ns) if mark else None,
                "dlq_size": dlq.get((remote.name, shard_id), 0),
            }
            if source is not None and shard_id in source:
                row["source_max_task_id"], row["lag"] = source[shard_id]
            else:
                row["source_error"] = unreachable or "no answer for this shard"
            rows.append(row)
    return rows
