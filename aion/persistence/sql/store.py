"""`SQLStore`: every store method, once, over a dialect's statements and connections."""

from __future__ import annotations

import abc
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from aion.persistence.group_commit import GroupCommit
from aion.persistence.sql.dialect import Connection, Row
from aion.persistence.sql.execution import check_range, commit_batch
from aion.persistence.sql.statements import (
    Statements,
    api_key_row,
    audit_row,
    batch_operation_row,
    deployment_row,
    namespace_row,
    nexus_endpoint_row,
    remote_cluster_row,
    replication_dlq_row,
    schedule_row,
    visibility_row,
)
from aion.persistence.sql.visibility import search_attribute_rows
from aion.persistence.store import (
    MAX_TIME_NS,
    ApiKeyRecord,
    AuditRecord,
    BatchOperationRecord,
    ConditionFailedError,
    CurrentExecution,
    DeploymentRecord,
    ExecutionRecord,
    ExecutionTransaction,
    HiddenBranch,
    NamespaceRecord,
    NexusEndpointRecord,
    QueueTask,
    RemoteClusterRecord,
    ReplicationAck,
    ReplicationDLQRecord,
    ReplicationProgress,
    ReplicationTaskRecord,
    ScheduleRecord,
    SearchAttributeRecord,
    Store,
    TimerTask,
    VisibilityFilter,
    VisibilityKey,
    VisibilityRecord,
    check_shard_count,
)

T = TypeVar("T")
Work = Callable[[Connection], Coroutine[Any, Any, T]]


class SQLStore(Store):
    """A store on a SQL database. A dialect sets `sql` and says how work gets a connection:
    `_read` (no transaction) and `_write` (in one transaction). Transitions go through group
    commit: those queued while a batch is written make the next batch."""

    sql: Statements

    def __init__(self) -> None:
        self._group = GroupCommit(self._write_batch)

    @abc.abstractmethod
    async def _read(self, work: Work[T]) -> T:
        """Run `work` on a connection outside a transaction."""

    @abc.abstractmethod
    async def _write(self, work: Work[T]) -> T:
        """Run `work` on a connection in one transaction."""

    async def _write_or_unavailable(self, work: Work[T]) -> T:
        """`_write`, where a failure of the database itself (nothing was written) comes out as
        StoreUnavailableError, for callers that answer it with a retryable error."""
        return await self._write(work)

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return await self._read(lambda conn: conn.fetch(sql, args))

    async def _fetchrow(self, sql: str, args: Sequence[Any]) -> Row | None:
        return await self._read(lambda conn: conn.fetchrow(sql, args))

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        return await self._write(lambda conn: conn.execute(sql, args))

    async def _write_batch(self, batch: list[ExecutionTransaction]) -> list[Exception | None]:
        return await self._write_or_unavailable(lambda conn: commit_batch(conn, self.sql, batch))

    async def commit(self, tx: ExecutionTransaction) -> None:
        await self._group.commit(tx)

    async def commits_landed(self) -> None:
        await self._group.drain()

    # Cluster
    async def _cluster_value(self, name: str, proposed: str) -> str:
        """The value of `name` in `cluster_metadata`; `proposed` when it had none."""

        async def record(conn: Connection) -> Any:
            await conn.execute(self.sql.record_cluster_value, (name, proposed))
            return await conn.fetchval(self.sql.cluster_value, (name,))

        return str(await self._write(record))

    async def check_shard_count(self, num_shards: int) -> None:
        found = await self._cluster_value("num_shards", str(num_shards))
        check_shard_count(int(found), num_shards)

    async def cluster_secret(self) -> str:
        return await self._cluster_value("peer_secret", secrets.token_hex(32))

    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        async def take(conn: Connection) -> int:
            await self._before_shard_takeover(conn)
            await conn.execute(self.sql.take_shard, (shard_id, owner))
            return int(await conn.fetchval(self.sql.shard_range_id, (shard_id,)))

        return await self._write(take)

    async def _before_shard_takeover(self, conn: Connection) -> None:
        """Prepare `acquire_shard`'s transaction (a dialect that may wait on the shard row
        bounds the wait)."""

    async def shard_range_ids(self) -> dict[int, int]:
        return {r[0]: r[1] for r in await self._fetch(self.sql.shard_range_ids)}

    async def leave(self, host_id: str) -> None:
        await self._execute(self.sql.delete_host, (host_id,))

    # Connected clusters
    async def cluster_id(self, new_id: str) -> str:
        return await self._cluster_value("cluster_id", new_id)

    async def list_remote_clusters(self) -> list[RemoteClusterRecord]:
        rows = await self._fetch(self.sql.list_remote_clusters)
        return [
            RemoteClusterRecord(
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], *map(bool, row[7:])
            )
            for row in rows
        ]

    async def save_remote_cluster(self, record: RemoteClusterRecord) -> None:
        await self._execute(self.sql.upsert_remote_cluster, remote_cluster_row(record))

    async def delete_remote_cluster(self, name: str) -> None:
        await self._execute(self.sql.delete_remote_cluster, (name,))

    # Namespaces
    async def list_namespaces(self) -> list[NamespaceRecord]:
        return [NamespaceRecord(*row) for row in await self._fetch(self.sql.list_namespaces)]

    async def create_namespace(self, record: NamespaceRecord) -> None:
        if await self._execute(self.sql.insert_namespace, namespace_row(record)) != 1:
            raise ConditionFailedError(
                f"namespace {record.name!r} or id {record.id!r} exists already"
            )

    async def update_namespace(self, record: NamespaceRecord) -> None:
        r = record
        args = (r.name, r.data, r.notification_version, r.config_version, r.id)
        await self._execute(self.sql.update_namespace, args)

    async def delete_namespace(self, namespace_id: str) -> None:
        async def delete(conn: Connection) -> None:
            for statement in self.sql.delete_namespace_rows:
                await conn.execute(statement, (namespace_id,))
            await conn.execute(self.sql.delete_namespace, (namespace_id,))

        await self._write(delete)

    async def list_search_attributes(self) -> list[SearchAttributeRecord]:
        rows = await self._fetch(self.sql.list_search_attributes)
        return [SearchAttributeRecord(*row) for row in rows]

    async def update_search_attributes(
        self, namespace_id: str, upserts: list[SearchAttributeRecord], deletions: list[str]
    ) -> None:
        async def update(conn: Connection) -> None:
            if deletions:
                await conn.execute_in(self.sql.delete_search_attributes, (namespace_id,), deletions)
            if upserts:
                await conn.executemany(
                    self.sql.upsert_search_attribute,
                    [(namespace_id, r.name, r.type, r.field) for r in upserts],
                )

        await self._write(update)

    # Executions
    async def get_current_execution(
        self, namespace_id: str, workflow_id: str
    ) -> CurrentExecution | None:
        row = await self._fetchrow(self.sql.get_current_execution, (namespace_id, workflow_id))
        if row is None:
            return None
        return CurrentExecution(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])

    async def get_execution(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None:
        row = await self._fetchrow(self.sql.get_execution, (namespace_id, workflow_id, run_id))
        return ExecutionRecord(*row) if row else None

    async def read_events(
        self, namespace_id: str, workflow_id: str, run_id: str, first_event_id: int, limit: int
    ) -> list[bytes]:
        args = (namespace_id, workflow_id, run_id, first_event_id, limit)
        return [r[0] for r in await self._fetch(self.sql.read_events, args)]

    async def read_event_batches_reverse(
        self, namespace_id: str, workflow_id: str, run_id: str, last_event_id: int, batches: int
    ) -> list[bytes]:
        run = (namespace_id, workflow_id, run_id)
        args = (*run, last_event_id, *run, last_event_id, batches)
        return [r[0] for r in await self._fetch(self.sql.read_event_batches_reverse, args)]

    # Tasks
    async def load_timer_tasks(
        self, shard_id: int, after_ns: int = -1, until_ns: int = MAX_TIME_NS
    ) -> list[TimerTask]:
        args = (shard_id, after_ns, until_ns)
        return [TimerTask(*row) for row in await self._fetch(self.sql.load_timer_tasks, args)]

    async def load_queue_tasks(self, shard_id: int) -> list[QueueTask]:
        return [
            QueueTask(*row) for row in await self._fetch(self.sql.load_queue_tasks, (shard_id,))
        ]

    async def delete_queue_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        await self._delete_tasks(self.sql.delete_queue_tasks, shard_id, task_ids)

    async def delete_timer_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        await self._delete_tasks(self.sql.delete_timer_tasks, shard_id, task_ids)

    async def delete_execution(
        self,
        shard_id: int,
        range_id: int,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        timer_task_ids: list[int],
    ) -> None:
        key = (namespace_id, workflow_id, run_id)

        async def delete(conn: Connection) -> None:
            await check_range(conn, self.sql, shard_id, range_id)
            for statement in (
                self.sql.delete_run_events,
                self.sql.delete_run_hidden_events,
                self.sql.delete_run_execution,
                self.sql.delete_run_current,
            ):
                await conn.execute(statement, key)
            await conn.execute(self.sql.delete_run_visibility, (namespace_id, run_id, workflow_id))
            await conn.execute(self.sql.delete_search_attributes_of_run, (namespace_id, run_id))
            if timer_task_ids:
                await conn.execute_in(self.sql.delete_timer_tasks, (shard_id,), timer_task_ids)

        await self._write(delete)

    async def _delete_tasks(self, sql: str, shard_id: int, task_ids: list[int]) -> None:
        if task_ids:
            await self._write(lambda conn: conn.execute_in(sql, (shard_id,), task_ids))

    # Replication between clusters
    async def read_replication_tasks(
        self, shard_id: int, after_task_id: int, limit: int
    ) -> list[ReplicationTaskRecord]:
        rows = await self._fetch(self.sql.read_replication_tasks, (shard_id, after_task_id, limit))
        return [_replication_task(row) for row in rows]

    async def delete_replication_tasks(self, shard_id: int, up_to_task_id: int) -> None:
        await self._execute(self.sql.delete_replication_tasks, (shard_id, up_to_task_id))

    async def last_replication_task_ids(self) -> dict[int, int]:
        return {int(r[0]): int(r[1]) for r in await self._fetch(self.sql.last_replication_task_ids)}

    async def replication_watermark(self, source_cluster: str, shard_id: int) -> int:
        row = await self._fetchrow(self.sql.replication_watermark, (source_cluster, shard_id))
        return int(row[0]) if row else 0

    async def advance_replication_watermark(
        self, source_cluster: str, shard_id: int, task_id: int
    ) -> None:
        args = (source_cluster, shard_id, task_id, time.time_ns())
        await self._execute(self.sql.upsert_replication_watermark, args)

    async def replication_watermarks(self) -> list[ReplicationProgress]:
        rows = await self._fetch(self.sql.replication_watermarks)
        return [ReplicationProgress(*row) for row in rows]

    async def acknowledge_replication(
        self, target_cluster: str, shard_id: int, task_id: int
    ) -> None:
        ack = (target_cluster, shard_id, task_id, time.time_ns())
        await self._execute(self.sql.upsert_replication_ack, ack)

    async def replication_acks(self) -> list[ReplicationProgress]:
        rows = await self._fetch(self.sql.replication_acks)
        return [ReplicationProgress(*row) for row in rows]

    async def replication_backlog(
        self, shard_id: int, after_task_id: int, namespace_id: str = ""
    ) -> tuple[int, int]:
        if namespace_id:
            args: tuple[object, ...] = (shard_id, after_task_id, namespace_id)
            row = await self._fetchrow(self.sql.replication_backlog_of_namespace, args)
        else:
            row = await self._fetchrow(self.sql.replication_backlog, (shard_id, after_task_id))
        return (int(row[0]), int(row[1] or 0)) if row else (0, 0)

    async def add_to_replication_dlq(
        self, record: ReplicationDLQRecord, watermark: ReplicationAck
    ) -> None:
        r, w = record, watermark

        async def add(conn: Connection) -> None:
            await conn.execute(self.sql.insert_replication_dlq, replication_dlq_row(r))
            moved = (w.source_cluster, w.shard_id, w.task_id, time.time_ns())
            await conn.execute(self.sql.upsert_replication_watermark, moved)

        await self._write(add)

    async def list_replication_dlq(self) -> list[ReplicationDLQRecord]:
        rows = await self._fetch(self.sql.list_replication_dlq)
        records = [ReplicationDLQRecord(*row) for row in rows]
        for r in records:
            r.task = bytes(r.task)
        return records

    async def hidden_branches(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> list[HiddenBranch]:
        rows = await self._fetch(self.sql.hidden_branches, (namespace_id, workflow_id, run_id))
        return _branches(rows)

    async def branches_to_reapply(self, shard_id: int) -> list[HiddenBranch]:
        return _branches(await self._fetch(self.sql.branches_to_reapply, (shard_id, False)))

    async def mark_reapplied(
        self, namespace_id: str, workflow_id: str, run_id: str, branch: str
    ) -> None:
        args = (True, namespace_id, workflow_id, run_id, branch)
        await self._write(lambda conn: conn.execute(self.sql.mark_reapplied, args))

    async def set_aside_branch(
        self, namespace_id: str, workflow_id: str, run_id: str, branch: str, time_ns: int
    ) -> None:
        args = (time_ns, namespace_id, workflow_id, run_id, branch)
        await self._write(lambda conn: conn.execute(self.sql.set_aside_branch, args))

    async def release_set_aside_branches(self, shard_id: int) -> None:
        statement = self.sql.release_set_aside_branches
        await self._write(lambda conn: conn.execute(statement, (shard_id,)))

    async def set_aside_branch_counts(self) -> dict[str, int]:
        rows = await self._fetch(self.sql.set_aside_branch_counts)
        return {row[0]: int(row[1]) for row in rows}

    async def replication_dlq_sizes(self) -> dict[tuple[str, int], int]:
        rows = await self._fetch(self.sql.replication_dlq_sizes)
        return {(row[0], int(row[1])): int(row[2]) for row in rows}

    async def delete_replication_dlq(
        self, source_cluster: str, shard_id: int, task_id: int
    ) -> None:
        await self._execute(self.sql.delete_replication_dlq, (source_cluster, shard_id, task_id))

    # Schedules
    async def save_schedule(
        self, record: ScheduleRecord, range_id: int, expected_version: int | None
    ) -> None:
        r = record
        changes = (r.state, r.version, r.namespace_id, r.schedule_id)

        async def save(conn: Connection) -> int:
            await check_range(conn, self.sql, r.shard_id, range_id)
            insert = (self.sql.insert_schedule, schedule_row(r))
            return await _save(conn, insert, self.sql.update_schedule, changes, expected_version)

        if await self._write_or_unavailable(save) != 1:
            raise ConditionFailedError("schedule was changed concurrently")

    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str
    ) -> None:
        async def delete(conn: Connection) -> None:
            await check_range(conn, self.sql, shard_id, range_id)
            await conn.execute(self.sql.delete_schedule, (namespace_id, schedule_id))

        await self._write_or_unavailable(delete)

    async def get_schedule(self, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        row = await self._fetchrow(self.sql.get_schedule, (namespace_id, schedule_id))
        return ScheduleRecord(*row) if row else None

    async def list_schedules(
        self, namespace_id: str | None = None, shard_id: int | None = None
    ) -> list[ScheduleRecord]:
        args = (namespace_id, namespace_id, shard_id, shard_id)
        return [ScheduleRecord(*row) for row in await self._fetch(self.sql.list_schedules, args)]

    # Batch operations
    async def save_batch_operation(
        self, record: BatchOperationRecord, range_id: int, expected_version: int | None
    ) -> None:
        r = record
        changes = (
            r.state,
            r.close_time_ns,
            r.targets,
            r.total,
            r.position,
            r.succeeded,
            r.failed,
            r.version,
            r.namespace_id,
            r.job_id,
        )

        async def save(conn: Connection) -> int:
            await check_range(conn, self.sql, r.shard_id, range_id)
            insert = (self.sql.insert_batch_operation, batch_operation_row(r))
            update = self.sql.update_batch_operation
            return await _save(conn, insert, update, changes, expected_version)

        if await self._write_or_unavailable(save) != 1:
            raise ConditionFailedError("batch operation exists or was changed concurrently")

    async def get_batch_operation(
        self, namespace_id: str, job_id: str
    ) -> BatchOperationRecord | None:
        row = await self._fetchrow(self.sql.get_batch_operation, (namespace_id, job_id))
        return _batch_operation(row) if row else None

    async def list_batch_operations(
        self, namespace_id: str | None = None, shard_id: int | None = None, running: bool = False
    ) -> list[BatchOperationRecord]:
        if shard_id is not None:
            rows = await self._fetch(self.sql.running_batch_operations, (shard_id,))
        else:
            rows = await self._fetch(self.sql.list_batch_operations, (namespace_id,))
        records = [_batch_operation(row) for row in rows]
        return [r for r in records if r.state == 1] if running else records

    # Worker deployments
    async def save_deployment(self, record: DeploymentRecord, expected_version: int | None) -> None:
        r = record
        insert = (self.sql.insert_deployment, deployment_row(r))
        changes = (r.state, r.version, r.namespace_id, r.name)
        saved = await self._write_or_unavailable(
            lambda conn: _save(conn, insert, self.sql.update_deployment, changes, expected_version)
        )
        if saved != 1:
            raise ConditionFailedError("worker deployment was changed concurrently")

    async def delete_deployment(self, namespace_id: str, name: str) -> None:
        await self._write_or_unavailable(
            lambda conn: conn.execute(self.sql.delete_deployment, (namespace_id, name))
        )

    async def list_deployments(self, namespace_id: str | None = None) -> list[DeploymentRecord]:
        rows = await self._fetch(self.sql.list_deployments, (namespace_id, namespace_id))
        return [DeploymentRecord(*row) for row in rows]

    # Visibility
    async def list_visibility(self, namespace_id: str) -> list[VisibilityRecord]:
        rows = await self._fetch(self.sql.list_visibility, (namespace_id,))
        return [VisibilityRecord(*row) for row in rows]

    async def query_visibility(
        self,
        namespace_id: str,
        where: VisibilityFilter,
        after: VisibilityKey | None,
        limit: int,
    ) -> list[VisibilityRecord]:
        sql, args = self.sql.visibility.select(namespace_id, where, after, limit)
        return [VisibilityRecord(*row) for row in await self._fetch(sql, args)]

    async def count_visibility(
        self, namespace_id: str, where: VisibilityFilter, group_by: str | None
    ) -> list[tuple[Any, int]]:
        sql, args = self.sql.visibility.count(namespace_id, where, group_by)
        return [(value, count) for value, count in await self._fetch(sql, args)]

    async def upsert_visibility(self, records: Sequence[VisibilityRecord]) -> None:
        rows = [visibility_row(r) for r in records]

        runs = [(r.namespace_id, r.run_id) for r in records]
        indexed = [
            row
            for r in records
            for row in search_attribute_rows(r.namespace_id, r.run_id, r.search_attributes)
        ]

        async def upsert(conn: Connection) -> None:
            await conn.executemany(self.sql.upsert_visibility, rows)
            await conn.executemany(self.sql.delete_search_attributes_of_run, runs)
            if indexed:
                await conn.executemany(self.sql.insert_search_attribute, indexed)

        await self._write(upsert)

    async def count_open_executions(self) -> dict[str, int]:
        rows = await self._fetch(self.sql.count_open_executions)
        return {namespace_id: count for namespace_id, count in rows}

    # Nexus endpoints
    async def save_nexus_endpoint(
        self, record: NexusEndpointRecord, expected_version: int | None
    ) -> None:
        r = record
        changes = (r.name, r.version, r.data, r.id, expected_version, r.name, r.id)
        if expected_version is None:
            saved = await self._execute(self.sql.insert_nexus_endpoint, nexus_endpoint_row(r))
        else:
            saved = await self._execute(self.sql.update_nexus_endpoint, changes)
        if saved != 1:
            raise ConditionFailedError("Nexus endpoint was changed concurrently")

    async def get_nexus_endpoint(self, endpoint_id: str) -> NexusEndpointRecord | None:
        row = await self._fetchrow(self.sql.get_nexus_endpoint, (endpoint_id,))
        return None if row is None else NexusEndpointRecord(*row)

    async def find_nexus_endpoint(self, name: str) -> NexusEndpointRecord | None:
        row = await self._fetchrow(self.sql.find_nexus_endpoint, (name,))
        return None if row is None else NexusEndpointRecord(*row)

    async def list_nexus_endpoints(self, after_id: str, limit: int) -> list[NexusEndpointRecord]:
        rows = await self._fetch(self.sql.list_nexus_endpoints, (after_id, limit))
        return [NexusEndpointRecord(*row) for row in rows]

    async def delete_nexus_endpoint(self, endpoint_id: str) -> bool:
        return await self._execute(self.sql.delete_nexus_endpoint, (endpoint_id,)) == 1

    # API keys and the audit log
    async def create_api_key(self, record: ApiKeyRecord) -> None:
        await self._execute(self.sql.insert_api_key, api_key_row(record))

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._fetchrow(self.sql.get_api_key, (key_id,))
        return None if row is None else _api_key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return [_api_key(row) for row in await self._fetch(self.sql.list_api_keys)]

    async def disable_api_key(self, key_id: str) -> bool:
        return await self._execute(self.sql.disable_api_key, (True, key_id)) == 1

    async def delete_api_key(self, key_id: str) -> bool:
        return await self._execute(self.sql.delete_api_key, (key_id,)) == 1

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        rows = [audit_row(r) for r in records]
        await self._write(lambda conn: conn.executemany(self.sql.insert_audit, rows))

    async def list_audit(
        self, since_ns: int, namespace: str | None, limit: int
    ) -> list[AuditRecord]:
        if namespace is None:
            rows = await self._fetch(self.sql.list_audit, (since_ns, limit))
        else:
            rows = await self._fetch(self.sql.list_audit_of_namespace, (since_ns, namespace, limit))
        return [AuditRecord(*row) for row in rows]

    async def delete_audit_before(self, time_ns: int) -> int:
        return await self._execute(self.sql.delete_audit_before, (time_ns,))


def _api_key(row: Row) -> ApiKeyRecord:
    r = ApiKeyRecord(*row)
    r.disabled = bool(r.disabled)
    return r


def _replication_task(row: Row) -> ReplicationTaskRecord:
    r = ReplicationTaskRecord(*row)
    r.state = bytes(r.state)
    return r


def _batch_operation(row: Row) -> BatchOperationRecord:
    r = BatchOperationRecord(*row)
    r.request = bytes(r.request)
    return r


async def _save(
    conn: Connection,
    insert: tuple[str, Row],
    update: str,
    changes: Row,
    expected_version: int | None,
) -> int:
    """Insert a versioned row (`expected_version` None: it must not exist yet) or update it at
    `expected_version` (the last parameter of `update`); returns the rows changed (1: saved)."""
    if expected_version is None:
        return await conn.execute(*insert)
    return await conn.execute(update, (*changes, expected_version))


def _branches(rows: Sequence[Sequence[Any]]) -> list[HiddenBranch]:
    """Hidden branches from their event rows (namespace id, workflow id, run id, branch, data,
    re-applied, set-aside time), ordered by branch."""
    branches: dict[tuple[str, str, str, str], HiddenBranch] = {}
    for namespace_id, workflow_id, run_id, branch, data, reapplied, set_aside in rows:
        key = (namespace_id, workflow_id, run_id, branch)
        if key not in branches:
            branches[key] = HiddenBranch(*key, [], bool(reapplied), bool(set_aside))
        branches[key].events.append(bytes(data))
    return list(branches.values())
