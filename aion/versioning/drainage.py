"""Drainage: a version that stopped being current or ramping is DRAINING until no running
workflow is pinned to it, then DRAINED. Checked as Temporal does, by counting in visibility: a
grace period after the version started draining, then at every refresh interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.versions import version_key
from aion.history.engine import HistoryEngine
from aion.persistence import Store
from aion.versioning.deployment import Deployment, Status
from aion.versioning.registry import DeploymentRegistry
from aion.visibility import listing

log = logging.getLogger(__name__)

SECOND = 1_000_000_000
DEFAULT_INTERVAL_NS = 180 * SECOND  # Temporal's defaults for both settings below
REFRESH_INTERVAL = "matching.wv.VersionDrainageStatusRefreshInterval"
GRACE_PERIOD = "matching.wv.VersionDrainageStatusVisibilityGracePeriod"
TICK_S = 1.0


class DrainageMonitor:
    def __init__(
        self, engine: HistoryEngine, deployments: DeploymentRegistry, store: Store
    ) -> None:
        self.engine = engine
        self.deployments = deployments
        self.store = store
        self.refresh_interval_ns = DEFAULT_INTERVAL_NS
        self.grace_period_ns = DEFAULT_INTERVAL_NS
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.check()
            except Exception as e:  # the next tick tries again
                log.warning("drainage check failed: %s", e)

    async def check(self) -> None:
        engine = self.engine
        now = engine.clock()
        for namespace_id, deployment in self.deployments.every():
            # With several processes, the owner of the deployment's shard checks it.
            if engine.shard_id_of(namespace_id, deployment.name) not in engine.shards:
                continue
            for build_id, version in list(deployment.versions.items()):
                if version.status != Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING:
                    continue
                if now < version.drainage_changed_ns + self.grace_period_ns:
                    continue
                if (
                    version.drainage_checked_ns > version.drainage_changed_ns
                    and now < version.drainage_checked_ns + self.refresh_interval_ns
                ):
                    continue
                pinned = await self._running_pinned(namespace_id, deployment.name, build_id)

                def record(d: Deployment, b: str = build_id, drained: bool = pinned == 0) -> None:
                    d.record_drainage(b, drained, now)

                with contextlib.suppress(errors.NotFound):
                    await self.deployments.change(namespace_id, deployment.name, record)

    async def _running_pinned(self, namespace_id: str, name: str, build_id: str) -> int:
        query = (
            f"TemporalWorkerDeploymentVersion = '{version_key(name, build_id)}' AND "
            "TemporalWorkflowVersioningBehavior = 'Pinned' AND ExecutionStatus = 'Running'"
        )
        response = await listing.count_workflows(
            self.store,
            namespace_id,
            rr.CountWorkflowExecutionsRequest(query=query),
            self.engine.namespaces.search_attributes,
        )
        return response.count
