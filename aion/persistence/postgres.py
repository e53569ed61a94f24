"""PostgreSQL backend: an asyncpg pool, group commit with a savepoint per transition.

The semantics are SQLite's (see `aion.persistence.sqlite`); only the SQL differs. Because several
processes may share one database, the checks SQLite gets for free from its single writer are made
explicit with row locks: a commit holds the shard row `FOR SHARE` (so `acquire_shard`, which
updates it, waits for commits under the old range id and every later commit sees the new one) and
the current-run pointer `FOR UPDATE`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from aion.persistence.group_commit import GroupCommit
from aion.persistence.store import (
    ConditionFailedError,
    CurrentExecution,
    DeploymentRecord,
    ExecutionRecord,
    ExecutionTransaction,
    HostRecord,
    NamespaceRecord,
    QueueTask,
    ScheduleRecord,
    SearchAttributeRecord,
    ShardOwnershipLostError,
    Store,
    StoreUnavailableError,
    TimerTask,
    VisibilityRecord,
    check_schema_version,
    check_shard_count,
)

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE shards (
        shard_id INTEGER PRIMARY KEY,
        range_id BIGINT NOT NULL,
        owner TEXT NOT NULL
    );
    CREATE TABLE namespaces (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        data BYTEA NOT NULL,
        notification_version BIGINT NOT NULL
    );
    CREATE TABLE current_executions (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        running BOOLEAN NOT NULL,
        status INTEGER NOT NULL,
        start_request_id TEXT NOT NULL,
        start_time_ns BIGINT NOT NULL,
        PRIMARY KEY (namespace_id, workflow_id)
    );
    CREATE TABLE executions (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        state BYTEA NOT NULL,
        db_version BIGINT NOT NULL,
        PRIMARY KEY (namespace_id, workflow_id, run_id)
    );
    CREATE TABLE history_events (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        event_id BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (namespace_id, workflow_id, run_id, event_id)
    );
    CREATE TABLE timer_tasks (
        shard_id INTEGER NOT NULL,
        task_id BIGINT NOT NULL,
        fire_time_ns BIGINT NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (shard_id, task_id)
    );
    CREATE INDEX timer_tasks_by_fire_time ON timer_tasks (shard_id, fire_time_ns);
    CREATE TABLE queue_tasks (
        shard_id INTEGER NOT NULL,
        task_id BIGINT NOT NULL,
        namespace_id TEXT NOT NULL,
        task_queue TEXT NOT NULL,
        kind TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        scheduled_event_id BIGINT NOT NULL,
        stamp BIGINT NOT NULL,
        create_time_ns BIGINT NOT NULL,
        PRIMARY KEY (shard_id, task_id)
    );
    CREATE TABLE visibility (
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        workflow_type TEXT NOT NULL,
        task_queue TEXT NOT NULL,
        status INTEGER NOT NULL,
        start_time_ns BIGINT NOT NULL,
        execution_time_ns BIGINT NOT NULL,
        close_time_ns BIGINT NOT NULL,
        history_length BIGINT NOT NULL,
        memo BYTEA NOT NULL,
        search_attributes BYTEA NOT NULL,
        parent_workflow_id TEXT NOT NULL,
        parent_run_id TEXT NOT NULL,
        root_workflow_id TEXT NOT NULL,
        root_run_id TEXT NOT NULL,
        PRIMARY KEY (namespace_id, run_id)
    );
    CREATE INDEX visibility_by_start ON visibility (namespace_id, start_time_ns);
    CREATE TABLE search_attributes (
        namespace_id TEXT NOT NULL,
        name TEXT NOT NULL,
        type INTEGER NOT NULL,
        field TEXT NOT NULL,
        PRIMARY KEY (namespace_id, name)
    );
    """,
    """
    CREATE TABLE cluster_metadata (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE hosts (
        host_id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        last_seen TIMESTAMPTZ NOT NULL
    );
    """,
    """
    CREATE TABLE schedules (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        schedule_id TEXT NOT NULL,
        state TEXT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (namespace_id, schedule_id)
    );
    CREATE INDEX schedules_by_shard ON schedules (shard_id);
    """,
    """
    CREATE TABLE worker_deployments (
        namespace_id TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (namespace_id, name)
    );
    ALTER TABLE queue_tasks ADD COLUMN version TEXT NOT NULL DEFAULT '';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# A transaction left open this long (its process paused or hung) is ended by the server, which
# frees the shard rows it holds for the process taking the shards over.
IDLE_IN_TRANSACTION_MS = 3000
LOCK_TIMEOUT_MS = 2000

# Key of the advisory lock that serializes migrations of processes starting together.
_MIGRATION_LOCK = 0x41494F4E  # "AION"


async def migrate(conn: asyncpg.Connection, upgrade: bool = True) -> int:
    """Bring the schema up to `SCHEMA_VERSION` in one transaction; returns the version found.
    With `upgrade` False only an empty database is set up; an older schema is refused."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        found = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        check_schema_version(found, SCHEMA_VERSION, upgrade)
        for version in range(found, SCHEMA_VERSION):
            await conn.execute(MIGRATIONS[version])
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version + 1)
    return int(found)


async def migrate_dsn(dsn: str) -> tuple[int, int]:
    """Migrate the database at `dsn`; returns (version found, version now)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn), SCHEMA_VERSION
    finally:
        await conn.close()


class PostgresStore(Store):
    """PostgreSQL at `dsn` (e.g. ``postgresql://user@host:5432/aion``); sets up or (with
    `upgrade_schema`) migrates the schema on open."""

    name = "postgres"
    shared = True

    def __init__(self, dsn: str, max_connections: int = 8, upgrade_schema: bool = True) -> None:
        self.dsn = dsn
        self.upgrade_schema = upgrade_schema
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._group = GroupCommit(self._write_batch)
        self._listener: asyncpg.Connection | None = None

    def _db(self) -> asyncpg.Pool:
        assert self._pool is not None, "store is not open"
        return self._pool

    async def open(self) -> None:
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self.max_connections,
            server_settings={"idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS)},
        )
        try:
            async with pool.acquire() as conn:
                await migrate(conn, self.upgrade_schema)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        await self._group.drain()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def check_shard_count(self, num_shards: int) -> None:
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO cluster_metadata (name, value) VALUES ('num_shards', $1) "
                "ON CONFLICT DO NOTHING",
                str(num_shards),
            )
            found = await conn.fetchval(
                "SELECT value FROM cluster_metadata WHERE name = 'num_shards'"
            )
        check_shard_count(int(found), num_shards)

    async def heartbeat(self, host: HostRecord, lease_s: float) -> list[HostRecord]:
        # The database's clock, not the hosts': leases compare times from one clock only.
        async with self._db().acquire() as conn:
            await conn.execute(
                "INSERT INTO hosts (host_id, address, last_seen) VALUES ($1, $2, now()) "
                "ON CONFLICT (host_id) DO UPDATE SET address = excluded.address, "
                "last_seen = excluded.last_seen",
                host.host_id,
                host.address,
            )
            rows = await conn.fetch(
                "SELECT host_id, address FROM hosts "
                "WHERE last_seen > now() - make_interval(secs => $1) ORDER BY host_id",
                lease_s,
            )
        return [HostRecord(*row) for row in rows]

    async def shard_range_ids(self) -> dict[int, int]:
        rows = await self._db().fetch("SELECT shard_id, range_id FROM shards")
        return {r[0]: r[1] for r in rows}

    async def leave(self, host_id: str) -> None:
        await self._db().execute("DELETE FROM hosts WHERE host_id = $1", host_id)

    async def publish(self, channel: str, payload: str) -> None:
        await self._db().execute("SELECT pg_notify($1, $2)", channel, payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        if self._listener is None:
            self._listener = await asyncpg.connect(self.dsn)
        await self._listener.add_listener(channel, lambda *args: callback(args[-1]))

    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        async with self._db().acquire() as conn, conn.transaction():
            # Commits under the old lease hold the shard row; a stuck one (its process paused
            # mid-transaction) is ended by the server's idle-in-transaction timeout, so wait a
            # little and let the caller try again rather than hang.
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
            range_id = await conn.fetchval(
                "INSERT INTO shards (shard_id, range_id, owner) VALUES ($1, 1, $2) "
                "ON CONFLICT (shard_id) DO UPDATE SET range_id = shards.range_id + 1, "
                "owner = excluded.owner RETURNING range_id",
                shard_id,
                owner,
            )
        return int(range_id)

    async def list_namespaces(self) -> list[NamespaceRecord]:
        rows = await self._db().fetch(
            'SELECT id, name, data, notification_version FROM namespaces ORDER BY name COLLATE "C"'
        )
        return [NamespaceRecord(*row) for row in rows]

    async def create_namespace(self, record: NamespaceRecord) -> None:
        try:
            await self._db().execute(
                "INSERT INTO namespaces (id, name, data, notification_version) "
                "VALUES ($1, $2, $3, $4)",
                record.id,
                record.name,
                record.data,
                record.notification_version,
            )
        except asyncpg.UniqueViolationError as e:
            raise ConditionFailedError(str(e)) from e

    async def update_namespace(self, record: NamespaceRecord) -> None:
        await self._db().execute(
            "UPDATE namespaces SET data = $1, notification_version = $2 WHERE id = $3",
            record.data,
            record.notification_version,
            record.id,
        )

    async def list_search_attributes(self) -> list[SearchAttributeRecord]:
        rows = await self._db().fetch(
            "SELECT namespace_id, name, type, field FROM search_attributes "
            'ORDER BY namespace_id COLLATE "C", name COLLATE "C"'
        )
        return [SearchAttributeRecord(*row) for row in rows]

    async def update_search_attributes(
        self, namespace_id: str, upserts: list[SearchAttributeRecord], deletions: list[str]
    ) -> None:
        async with self._db().acquire() as conn, conn.transaction():
            if deletions:
                await conn.execute(
                    "DELETE FROM search_attributes WHERE namespace_id = $1 AND name = ANY($2)",
                    namespace_id,
                    deletions,
                )
            if upserts:
                await conn.executemany(
                    "INSERT INTO search_attributes (namespace_id, name, type, field) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (namespace_id, name) "
                    "DO UPDATE SET type = excluded.type, field = excluded.field",
                    [(namespace_id, r.name, r.type, r.field) for r in upserts],
                )

    async def get_current_execution(
        self, namespace_id: str, workflow_id: str
    ) -> CurrentExecution | None:
        row = await self._db().fetchrow(
            "SELECT namespace_id, workflow_id, run_id, running, status, start_request_id, "
            "start_time_ns FROM current_executions WHERE namespace_id = $1 AND workflow_id = $2",
            namespace_id,
            workflow_id,
        )
        return CurrentExecution(*row) if row else None

    async def get_execution(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None:
        row = await self._db().fetchrow(
            "SELECT shard_id, namespace_id, workflow_id, run_id, state, db_version "
            "FROM executions WHERE namespace_id = $1 AND workflow_id = $2 AND run_id = $3",
            namespace_id,
            workflow_id,
            run_id,
        )
        return ExecutionRecord(*row) if row else None

    async def read_events(
        self, namespace_id: str, workflow_id: str, run_id: str, first_event_id: int, limit: int
    ) -> list[bytes]:
        rows = await self._db().fetch(
            "SELECT data FROM history_events WHERE namespace_id = $1 AND workflow_id = $2 "
            "AND run_id = $3 AND event_id >= $4 ORDER BY event_id LIMIT $5",
            namespace_id,
            workflow_id,
            run_id,
            first_event_id,
            limit,
        )
        return [r[0] for r in rows]

    async def commit(self, tx: ExecutionTransaction) -> None:
        await self._group.commit(tx)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for a write: a lost connection or a server error (nothing was
        written) comes out as StoreUnavailableError."""
        try:
            async with self._db().acquire() as conn:
                yield conn
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StoreUnavailableError(f"{type(e).__name__}: {e}") from e

    async def _write_batch(self, batch: list[ExecutionTransaction]) -> list[Exception | None]:
        async with self._writing() as conn:
            return await _commit_batch(conn, batch)

    async def load_timer_tasks(self, shard_id: int) -> list[TimerTask]:
        rows = await self._db().fetch(
            "SELECT shard_id, task_id, fire_time_ns, namespace_id, workflow_id, run_id, kind, "
            "data FROM timer_tasks WHERE shard_id = $1 ORDER BY fire_time_ns",
            shard_id,
        )
        return [TimerTask(*row) for row in rows]

    async def load_queue_tasks(self, shard_id: int) -> list[QueueTask]:
        rows = await self._db().fetch(
            "SELECT task_id, namespace_id, task_queue, kind, workflow_id, run_id, "
            "scheduled_event_id, shard_id, stamp, create_time_ns, version FROM queue_tasks "
            "WHERE shard_id = $1 ORDER BY task_id",
            shard_id,
        )
        return [QueueTask(*row) for row in rows]

    async def delete_queue_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        await self._db().execute(
            "DELETE FROM queue_tasks WHERE shard_id = $1 AND task_id = ANY($2)", shard_id, task_ids
        )

    async def delete_timer_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        await self._db().execute(
            "DELETE FROM timer_tasks WHERE shard_id = $1 AND task_id = ANY($2)", shard_id, task_ids
        )

    async def save_schedule(
        self, record: ScheduleRecord, range_id: int, expected_version: int | None
    ) -> None:
        r = record
        async with self._writing() as conn, conn.transaction():
            await _check_range(conn, r.shard_id, range_id)
            if expected_version is None:
                status = await conn.execute(
                    "INSERT INTO schedules (shard_id, namespace_id, schedule_id, state, "
                    "version) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    *(r.shard_id, r.namespace_id, r.schedule_id, r.state, r.version),
                )
            else:
                status = await conn.execute(
                    "UPDATE schedules SET state = $1, version = $2 WHERE namespace_id = $3 "
                    "AND schedule_id = $4 AND version = $5",
                    *(r.state, r.version, r.namespace_id, r.schedule_id, expected_version),
                )
            if status not in ("INSERT 0 1", "UPDATE 1"):
                raise ConditionFailedError("schedule was changed concurrently")

    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str
    ) -> None:
        async with self._writing() as conn, conn.transaction():
            await _check_range(conn, shard_id, range_id)
            await conn.execute(
                "DELETE FROM schedules WHERE namespace_id = $1 AND schedule_id = $2",
                namespace_id,
                schedule_id,
            )

    async def get_schedule(self, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        row = await self._db().fetchrow(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules "
            "WHERE namespace_id = $1 AND schedule_id = $2",
            namespace_id,
            schedule_id,
        )
        return ScheduleRecord(*row) if row else None

    async def list_schedules(
        self, namespace_id: str | None = None, shard_id: int | None = None
    ) -> list[ScheduleRecord]:
        rows = await self._db().fetch(
            f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE ($1::text IS NULL OR "
            "namespace_id = $1) AND ($2::int IS NULL OR shard_id = $2) ORDER BY schedule_id",
            namespace_id,
            shard_id,
        )
        return [ScheduleRecord(*row) for row in rows]

    async def save_deployment(self, record: DeploymentRecord, expected_version: int | None) -> None:
        r = record
        async with self._writing() as conn:
            if expected_version is None:
                status = await conn.execute(
                    "INSERT INTO worker_deployments (namespace_id, name, state, version) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    *(r.namespace_id, r.name, r.state, r.version),
                )
            else:
                status = await conn.execute(
                    "UPDATE worker_deployments SET state = $1, version = $2 "
                    "WHERE namespace_id = $3 AND name = $4 AND version = $5",
                    *(r.state, r.version, r.namespace_id, r.name, expected_version),
                )
        if status not in ("INSERT 0 1", "UPDATE 1"):
            raise ConditionFailedError("worker deployment was changed concurrently")

    async def delete_deployment(self, namespace_id: str, name: str) -> None:
        async with self._writing() as conn:
            await conn.execute(
                "DELETE FROM worker_deployments WHERE namespace_id = $1 AND name = $2",
                namespace_id,
                name,
            )

    async def list_deployments(self, namespace_id: str | None = None) -> list[DeploymentRecord]:
        rows = await self._db().fetch(
            "SELECT namespace_id, name, state, version FROM worker_deployments "
            "WHERE ($1::text IS NULL OR namespace_id = $1) "
            'ORDER BY namespace_id COLLATE "C", name COLLATE "C"',
            namespace_id,
        )
        return [DeploymentRecord(*row) for row in rows]

    async def list_visibility(self, namespace_id: str) -> list[VisibilityRecord]:
        rows = await self._db().fetch(
            "SELECT namespace_id, workflow_id, run_id, workflow_type, task_queue, status, "
            "start_time_ns, execution_time_ns, close_time_ns, history_length, memo, "
            "search_attributes, parent_workflow_id, parent_run_id, root_workflow_id, "
            "root_run_id FROM visibility WHERE namespace_id = $1 ORDER BY start_time_ns DESC",
            namespace_id,
        )
        return [VisibilityRecord(*row) for row in rows]


async def _commit_batch(conn: asyncpg.Connection, batch: list[ExecutionTransaction]) -> list[Any]:
    errors: list[Any] = []
    async with conn.transaction():
        for tx in batch:
            try:
                async with conn.transaction():  # a savepoint: a refused transition leaves no trace
                    await _apply(conn, tx)
                    if tx.new_run is not None:
                        await _apply(conn, tx.new_run)
            except (ConditionFailedError, ShardOwnershipLostError) as e:
                errors.append(e)
            else:
                errors.append(None)
    return errors


_SCHEDULE_COLUMNS = "shard_id, namespace_id, schedule_id, state, version"


async def _check_range(conn: asyncpg.Connection, shard_id: int, range_id: int) -> None:
    # FOR SHARE: acquire_shard (an UPDATE of this row) waits until this transaction ends.
    found = await conn.fetchval(
        "SELECT range_id FROM shards WHERE shard_id = $1 FOR SHARE", shard_id
    )
    if found is None or found != range_id:
        raise ShardOwnershipLostError(f"shard {shard_id} is owned under another range id")


async def _apply(conn: asyncpg.Connection, tx: ExecutionTransaction) -> None:
    await _check_range(conn, tx.shard_id, tx.range_id)
    key = (tx.namespace_id, tx.workflow_id, tx.run_id)
    if tx.expected_db_version is None:
        status = await conn.execute(
            "INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, state, "
            "db_version) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            tx.shard_id,
            *key,
            tx.state,
            tx.db_version,
        )
        if status != "INSERT 0 1":
            raise ConditionFailedError("execution already exists")
    else:
        status = await conn.execute(
            "UPDATE executions SET state = $1, db_version = $2 WHERE namespace_id = $3 "
            "AND workflow_id = $4 AND run_id = $5 AND db_version = $6",
            tx.state,
            tx.db_version,
            *key,
            tx.expected_db_version,
        )
        if status != "UPDATE 1":
            raise ConditionFailedError("execution was changed concurrently")
    if tx.current is not None:
        await _write_current(conn, tx)
    if tx.events:
        await conn.executemany(
            "INSERT INTO history_events (shard_id, namespace_id, workflow_id, run_id, event_id, "
            "data) VALUES ($1, $2, $3, $4, $5, $6)",
            [(tx.shard_id, *key, event_id, data) for event_id, data in tx.events],
        )
    if tx.timer_tasks:
        await conn.executemany(
            "INSERT INTO timer_tasks (shard_id, task_id, fire_time_ns, namespace_id, workflow_id, "
            "run_id, kind, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (t.shard_id, t.task_id, t.fire_time_ns, t.namespace_id, t.workflow_id, t.run_id)
                + (t.kind, t.data)
                for t in tx.timer_tasks
            ],
        )
    if tx.queue_tasks:
        await conn.executemany(
            "INSERT INTO queue_tasks (shard_id, task_id, namespace_id, task_queue, kind, "
            "workflow_id, run_id, scheduled_event_id, stamp, create_time_ns, version) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [
                (t.shard_id, t.task_id, t.namespace_id, t.task_queue, t.kind, t.workflow_id)
                + (t.run_id, t.scheduled_event_id, t.stamp, t.create_time_ns, t.version)
                for t in tx.queue_tasks
            ],
        )
    if tx.done_timer_task_ids:
        await conn.execute(
            "DELETE FROM timer_tasks WHERE shard_id = $1 AND task_id = ANY($2)",
            tx.shard_id,
            tx.done_timer_task_ids,
        )
    if tx.done_queue_task_ids:
        await conn.execute(
            "DELETE FROM queue_tasks WHERE shard_id = $1 AND task_id = ANY($2)",
            tx.shard_id,
            tx.done_queue_task_ids,
        )
    if tx.visibility is not None:
        v = tx.visibility
        await conn.execute(
            "INSERT INTO visibility (namespace_id, workflow_id, run_id, workflow_type, "
            "task_queue, status, start_time_ns, execution_time_ns, close_time_ns, history_length, "
            "memo, search_attributes, parent_workflow_id, parent_run_id, root_workflow_id, "
            "root_run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
            "$15, $16) ON CONFLICT (namespace_id, run_id) DO UPDATE SET "
            "workflow_id = excluded.workflow_id, workflow_type = excluded.workflow_type, "
            "task_queue = excluded.task_queue, status = excluded.status, "
            "start_time_ns = excluded.start_time_ns, "
            "execution_time_ns = excluded.execution_time_ns, "
            "close_time_ns = excluded.close_time_ns, history_length = excluded.history_length, "
            "memo = excluded.memo, search_attributes = excluded.search_attributes, "
            "parent_workflow_id = excluded.parent_workflow_id, "
            "parent_run_id = excluded.parent_run_id, "
            "root_workflow_id = excluded.root_workflow_id, root_run_id = excluded.root_run_id",
            *(v.namespace_id, v.workflow_id, v.run_id, v.workflow_type, v.task_queue, v.status),
            *(v.start_time_ns, v.execution_time_ns, v.close_time_ns, v.history_length, v.memo),
            *(v.search_attributes, v.parent_workflow_id, v.parent_run_id, v.root_workflow_id),
            v.root_run_id,
        )


async def _write_current(conn: asyncpg.Connection, tx: ExecutionTransaction) -> None:
    c = tx.current
    assert c is not None
    # FOR UPDATE: another process's new run of this workflow id waits for this commit.
    found = await conn.fetchval(
        "SELECT run_id FROM current_executions WHERE namespace_id = $1 AND workflow_id = $2 "
        "FOR UPDATE",
        c.namespace_id,
        c.workflow_id,
    )
    if tx.expected_db_version is None:
        # A new run may only take over the pointer from the run the caller saw.
        if found != tx.expected_current_run_id:
            raise ConditionFailedError("another run of this workflow id started concurrently")
    elif found != c.run_id:
        return  # an older run closing no longer owns the pointer
    values = (
        tx.shard_id,
        c.namespace_id,
        c.workflow_id,
        c.run_id,
        c.running,
        c.status,
        c.start_request_id,
        c.start_time_ns,
    )
    if found is None:
        # No row to lock: a concurrent first run inserts too, and only one insert may win.
        status = await conn.execute(
            "INSERT INTO current_executions (shard_id, namespace_id, workflow_id, run_id, "
            "running, status, start_request_id, start_time_ns) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            *values,
        )
        if status != "INSERT 0 1":
            raise ConditionFailedError("another run of this workflow id started concurrently")
    else:
        await conn.execute(
            "UPDATE current_executions SET shard_id = $1, run_id = $4, running = $5, "
            "status = $6, start_request_id = $7, start_time_ns = $8 "
            "WHERE namespace_id = $2 AND workflow_id = $3",
            *values,
        )
