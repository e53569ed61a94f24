"""A `Store` whose calls made while serving a traced RPC are persistence spans of that RPC's
trace. `server.py` wraps the store in it only when tracing is on, so while tracing is off no
store call pays anything for it."""

from __future__ import annotations

from collections.abc import Callable

from aion.persistence.store import (
    CurrentExecution,
    DeploymentRecord,
    ExecutionRecord,
    ExecutionTransaction,
    HostRecord,
    NamespaceRecord,
    QueueTask,
    ScheduleRecord,
    SearchAttributeRecord,
    Store,
    TimerTask,
    VisibilityRecord,
)
from aion.tracing.otel import Tracing


class TracedStore(Store):
    """Delegates every call to `inner`, in a span `persistence/<method>` under a recorded span."""

    def __init__(self, inner: Store, tracing: Tracing) -> None:
        self.inner = inner
        self.name = inner.name
        self.shared = inner.shared
        self._span = tracing.store_span

    # Lifecycle and the cluster's background work: never under an RPC, no spans.
    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def heartbeat(self, host: HostRecord, lease_s: float) -> list[HostRecord]:
        return await self.inner.heartbeat(host, lease_s)

    async def leave(self, host_id: str) -> None:
        await self.inner.leave(host_id)

    async def publish(self, channel: str, payload: str) -> None:
        await self.inner.publish(channel, payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        await self.inner.listen(channel, callback)

    # Shards
    async def check_shard_count(self, num_shards: int) -> None:
        with self._span("check_shard_count"):
            await self.inner.check_shard_count(num_shards)

    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        with self._span("acquire_shard"):
            return await self.inner.acquire_shard(shard_id, owner)

    async def shard_range_ids(self) -> dict[int, int]:
        with self._span("shard_range_ids"):
            return await self.inner.shard_range_ids()

    # Namespaces and search attributes
    async def list_namespaces(self) -> list[NamespaceRecord]:
        with self._span("list_namespaces"):
            return await self.inner.list_namespaces()

    async def create_namespace(self, record: NamespaceRecord) -> None:
        with self._span("create_namespace"):
            await self.inner.create_namespace(record)

    async def update_namespace(self, record: NamespaceRecord) -> None:
        with self._span("update_namespace"):
            await self.inner.update_namespace(record)

    async def list_search_attributes(self) -> list[SearchAttributeRecord]:
        with self._span("list_search_attributes"):
            return await self.inner.list_search_attributes()

    async def update_search_attributes(
        self, namespace_id: str, upserts: list[SearchAttributeRecord], deletions: list[str]
    ) -> None:
        with self._span("update_search_attributes"):
            await self.inner.update_search_attributes(namespace_id, upserts, deletions)

    # Executions
    async def get_current_execution(
        self, namespace_id: str, workflow_id: str
    ) -> CurrentExecution | None:
        with self._span("get_current_execution", workflow_id):
            return await self.inner.get_current_execution(namespace_id, workflow_id)

    async def get_execution(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None:
        with self._span("get_execution", workflow_id):
            return await self.inner.get_execution(namespace_id, workflow_id, run_id)

    async def read_events(
        self, namespace_id: str, workflow_id: str, run_id: str, first_event_id: int, limit: int
    ) -> list[bytes]:
        with self._span("read_events", workflow_id):
            return await self.inner.read_events(
                namespace_id, workflow_id, run_id, first_event_id, limit
            )

    async def commit(self, tx: ExecutionTransaction) -> None:
        with self._span("commit", tx.workflow_id):
            await self.inner.commit(tx)

    # Tasks
    async def load_timer_tasks(self, shard_id: int) -> list[TimerTask]:
        with self._span("load_timer_tasks"):
            return await self.inner.load_timer_tasks(shard_id)

    async def load_queue_tasks(self, shard_id: int) -> list[QueueTask]:
        with self._span("load_queue_tasks"):
            return await self.inner.load_queue_tasks(shard_id)

    async def delete_queue_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        with self._span("delete_queue_tasks"):
            await self.inner.delete_queue_tasks(shard_id, task_ids)

    async def delete_timer_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        with self._span("delete_timer_tasks"):
            await self.inner.delete_timer_tasks(shard_id, task_ids)

    # Schedules
    async def save_schedule(
        self, record: ScheduleRecord, range_id: int, expected_version: int | None
    ) -> None:
        with self._span("save_schedule"):
            await self.inner.save_schedule(record, range_id, expected_version)

    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str
    ) -> None:
        with self._span("delete_schedule"):
            await self.inner.delete_schedule(shard_id, range_id, namespace_id, schedule_id)

    async def get_schedule(self, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        with self._span("get_schedule"):
            return await self.inner.get_schedule(namespace_id, schedule_id)

    async def list_schedules(
        self, namespace_id: str | None = None, shard_id: int | None = None
    ) -> list[ScheduleRecord]:
        with self._span("list_schedules"):
            return await self.inner.list_schedules(namespace_id, shard_id)

    # Worker deployments
    async def save_deployment(self, record: DeploymentRecord, expected_version: int | None) -> None:
        with self._span("save_deployment"):
            await self.inner.save_deployment(record, expected_version)

    async def delete_deployment(self, namespace_id: str, name: str) -> None:
        with self._span("delete_deployment"):
            await self.inner.delete_deployment(namespace_id, name)

    async def list_deployments(self, namespace_id: str | None = None) -> list[DeploymentRecord]:
        with self._span("list_deployments"):
            return await self.inner.list_deployments(namespace_id)

    # Visibility
    async def list_visibility(self, namespace_id: str) -> list[VisibilityRecord]:
        with self._span("list_visibility"):
            return await self.inner.list_visibility(namespace_id)
