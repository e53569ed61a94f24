"""Namespace replication: this cluster pulls, from every cluster it is connected to, the global
namespaces they share, and applies what is newer there (`NamespaceRegistry.apply_replicated`).
Both sides pull, so a change made on either cluster reaches the other within a pull interval,
whichever was reachable when it was made."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.namespaces import NamespaceRegistry
from aion.persistence import NamespaceRecord
from aion.replication.remote import RemoteClusters

log = logging.getLogger(__name__)

PULL_INTERVAL_S = 1.0
HANDOVER_PULL_INTERVAL_S = 0.1  # while a namespace is in handover: its switch is awaited
CATCH_UP_TIMEOUT_S = 10.0


class NamespaceReplicator:
    """The pull loop: `start()`, then `stop()`."""

    def __init__(
        self,
        namespaces: NamespaceRegistry,
        remotes: RemoteClusters,
        catch_up: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """`catch_up(cluster)` applies the history `cluster` has replicated and this one not
        yet: it runs before a failover to this cluster is taken in (at most
        CATCH_UP_TIMEOUT_S)."""
        self.namespaces = namespaces
        self.catch_up = catch_up
        self.remotes = remotes
        self.clusters = remotes.clusters
        self._task: asyncio.Task[None] | None = None
        self._unreachable: set[str] = set()
        self._refused: set[tuple[str, str]] = set()  # (cluster, namespace id), logged once

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            for remote in self.clusters.remotes():
                if not remote.connection_enabled:
                    continue
                try:
                    await self.pull(remote.name, remote.address)
                except Exception:  # the next pull tries again
                    log.exception("pulling namespaces from cluster %s failed", remote.name)
            in_handover = any(ns.in_handover for ns in self.namespaces.all())
            await asyncio.sleep(HANDOVER_PULL_INTERVAL_S if in_handover else PULL_INTERVAL_S)

    async def _before_takeover(self, record: NamespaceRecord) -> None:
        """When `record` fails the namespace over to this cluster, first apply what the cluster
        it was active in has replicated (so the running workflows continue from their latest
        state)."""
        ours = self.namespaces.find(record.name)
        if self.catch_up is None or ours is None or not ours.is_global:
            return
        theirs = rr.DescribeNamespaceResponse.FromString(record.data)
        current = self.clusters.current_name
        if (
            theirs.failover_version > ours.failover_version
            and theirs.replication_config.active_cluster_name == current
            and ours.active_cluster != current
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.catch_up(ours.active_cluster), CATCH_UP_TIMEOUT_S)

    async def pull(self, cluster: str, address: str) -> None:
        """Take in the namespaces `cluster` has newer; an unreachable cluster is logged once
        until it answers again."""
        try:
            records = await self.remotes.namespaces(address)
        except grpc.aio.AioRpcError as e:
            if cluster not in self._unreachable:
                self._unreachable.add(cluster)
                log.warning("cannot reach cluster %s at %s: %s", cluster, address, e.details())
            return
        self._unreachable.discard(cluster)
        for record in records:
            try:
                await self._before_takeover(record)
                changed = await self.namespaces.apply_replicated(record)
            except errors.ServiceError as e:
                if (cluster, record.id) not in self._refused:
                    self._refused.add((cluster, record.id))
                    log.error("namespace %s from cluster %s: %s", record.name, cluster, e.message)
                continue
            except Exception:
                log.exception("namespace %s from cluster %s not applied", record.name, cluster)
                continue
            if changed is not None:
                log.info(
                    "namespace %s replicated from cluster %s (failover version %d)",
                    changed.name,
                    cluster,
                    changed.failover_version,
                )
