"""Back-fill: when a namespace active here starts replicating to another cluster (a local
namespace promoted and given clusters, or a global one whose clusters list grows), the
executions it already had reach that cluster too. Each run of the namespace, oldest first,
writes one replication task carrying its whole history, its state and its pending timer and
queue tasks (`HistoryEngine.replicate_whole`), pulled and applied by the other clusters like
any other (Temporal does this with its force-replication workflow)."""

from __future__ import annotations

import asyncio
import logging

from aion import errors
from aion.history.engine import HistoryEngine
from aion.namespaces import Namespace

log = logging.getLogger(__name__)


class ReplicationBackfill:
    """Starts a namespace's back-fill when its replication widens (`widened`); `stop()`."""

    def __init__(self, engine: HistoryEngine) -> None:
        self.engine = engine
        self._running: dict[str, asyncio.Task[None]] = {}

    def widened(self, ns: Namespace) -> None:
        running = self._running.get(ns.id)
        if running is not None:
            running.cancel()  # the new run covers what it had left
        self._running[ns.id] = asyncio.get_running_loop().create_task(self._backfill(ns))

    async def stop(self) -> None:
        running = list(self._running.values())
        self._running.clear()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _backfill(self, ns: Namespace) -> None:
        runs = await self.engine.store.list_visibility(ns.id)
        runs.sort(key=lambda v: v.start_time_ns)  # a workflow id's current run is applied last
        done = 0
        for run in runs:
            key = (ns.id, run.workflow_id, run.run_id)
            try:
                await self.engine.replicate_whole(key)
            except errors.NotFound:
                continue  # deleted meanwhile
            except (errors.ServiceError, OSError) as e:
                log.error("back-fill of %s in namespace %s failed: %r", key[1], ns.name, e)
                continue
            done += 1
        log.info("namespace %s: %d executions back-filled", ns.name, done)
        self._running.pop(ns.id, None)
