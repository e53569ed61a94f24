"""SQLite backend: one connection on one thread, WAL, group commit with a savepoint per transition."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

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
    TimerTask,
    VisibilityRecord,
    check_schema_version,
    check_shard_count,
)

T = TypeVar("T")

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE shards (
        shard_id INTEGER PRIMARY KEY,
        range_id INTEGER NOT NULL,
        owner TEXT NOT NULL
    );
    CREATE TABLE namespaces (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        data BLOB NOT NULL,
        notification_version INTEGER NOT NULL
    );
    CREATE TABLE current_executions (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        running INTEGER NOT NULL,
        status INTEGER NOT NULL,
        start_request_id TEXT NOT NULL,
        start_time_ns INTEGER NOT NULL,
        PRIMARY KEY (namespace_id, workflow_id)
    );
    CREATE TABLE executions (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        state BLOB NOT NULL,
        db_version INTEGER NOT NULL,
        PRIMARY KEY (namespace_id, workflow_id, run_id)
    );
    CREATE TABLE history_events (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        event_id INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (namespace_id, workflow_id, run_id, event_id)
    );
    CREATE TABLE timer_tasks (
        shard_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        fire_time_ns INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (shard_id, task_id)
    );
    CREATE TABLE queue_tasks (
        shard_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        task_queue TEXT NOT NULL,
        kind TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        scheduled_event_id INTEGER NOT NULL,
        stamp INTEGER NOT NULL,
        create_time_ns INTEGER NOT NULL,
        PRIMARY KEY (shard_id, task_id)
    );
    CREATE TABLE visibility (
        namespace_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        workflow_type TEXT NOT NULL,
        task_queue TEXT NOT NULL,
        status INTEGER NOT NULL,
        start_time_ns INTEGER NOT NULL,
        execution_time_ns INTEGER NOT NULL,
        close_time_ns INTEGER NOT NULL,
        history_length INTEGER NOT NULL,
        memo BLOB NOT NULL,
        search_attributes BLOB NOT NULL,
        parent_workflow_id TEXT NOT NULL,
        parent_run_id TEXT NOT NULL,
        root_workflow_id TEXT NOT NULL,
        root_run_id TEXT NOT NULL,
        PRIMARY KEY (namespace_id, run_id)
    );
    CREATE INDEX visibility_by_start ON visibility (namespace_id, start_time_ns);
    """,
    """
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
        last_seen_ns INTEGER NOT NULL
    );
    """,
    """
    CREATE TABLE schedules (
        shard_id INTEGER NOT NULL,
        namespace_id TEXT NOT NULL,
        schedule_id TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (namespace_id, schedule_id)
    );
    CREATE INDEX schedules_by_shard ON schedules (shard_id);
    """,
    """
    CREATE TABLE worker_deployments (
        namespace_id TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (namespace_id, name)
    );
    ALTER TABLE queue_tasks ADD COLUMN version TEXT NOT NULL DEFAULT '';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to `SCHEMA_VERSION`; returns the version found before."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    check_schema_version(found, SCHEMA_VERSION)
    for version in range(found, SCHEMA_VERSION):
        with conn:
            conn.executescript(
                "BEGIN;" + MIGRATIONS[version] + f"PRAGMA user_version={version + 1};"
            )
    return found


class SQLiteStore(Store):
    """Embedded SQLite; `path` ":memory:" keeps everything in memory (the dev default)."""

    name = "sqlite"

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aion-sqlite")
        self._conn: sqlite3.Connection | None = None
        # Every transition queued during a write goes into the next SQLite transaction.
        self._group = GroupCommit(lambda batch: self._run(lambda db: _commit_batch(db, batch)))

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._db()))

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "store is not open"
        return self._conn

    async def open(self) -> None:
        def connect() -> None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            migrate(conn)
            self._conn = conn

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        await self._group.drain()

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    async def check_shard_count(self, num_shards: int) -> None:
        def check(db: sqlite3.Connection) -> str:
            with db:
                db.execute(
                    "INSERT INTO cluster_metadata (name, value) VALUES ('num_shards', ?) "
                    "ON CONFLICT DO NOTHING",
                    (str(num_shards),),
                )
            return str(
                db.execute(
                    "SELECT value FROM cluster_metadata WHERE name = 'num_shards'"
                ).fetchone()[0]
            )

        check_shard_count(int(await self._run(check)), num_shards)

    async def heartbeat(self, host: HostRecord, lease_s: float) -> list[HostRecord]:
        def renew(db: sqlite3.Connection) -> list[Any]:
            now = time.time_ns()
            with db:
                db.execute(
                    "INSERT INTO hosts (host_id, address, last_seen_ns) VALUES (?, ?, ?) "
                    "ON CONFLICT (host_id) DO UPDATE SET address = excluded.address, "
                    "last_seen_ns = excluded.last_seen_ns",
                    (host.host_id, host.address, now),
                )
            return db.execute(
                "SELECT host_id, address FROM hosts WHERE last_seen_ns > ? ORDER BY host_id",
                (now - int(lease_s * 1e9),),
            ).fetchall()

        return [HostRecord(*row) for row in await self._run(renew)]

    async def shard_range_ids(self) -> dict[int, int]:
        rows = await self._run(
            lambda db: db.execute("SELECT shard_id, range_id FROM shards").fetchall()
        )
        return {r[0]: r[1] for r in rows}

    async def leave(self, host_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM hosts WHERE host_id = ?", (host_id,))

        await self._run(delete)

    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        def acquire(db: sqlite3.Connection) -> int:
            with db:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute(
                    "SELECT range_id FROM shards WHERE shard_id = ?", (shard_id,)
                ).fetchone()
                range_id = (row[0] if row else 0) + 1
                db.execute(
                    "INSERT INTO shards (shard_id, range_id, owner) VALUES (?, ?, ?) "
                    "ON CONFLICT (shard_id) DO UPDATE SET range_id = excluded.range_id, "
                    "owner = excluded.owner",
                    (shard_id, range_id, owner),
                )
            return range_id

        return await self._run(acquire)

    async def list_namespaces(self) -> list[NamespaceRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT id, name, data, notification_version FROM namespaces ORDER BY name"
            ).fetchall()
        )
        return [NamespaceRecord(*row) for row in rows]

    async def create_namespace(self, record: NamespaceRecord) -> None:
        def insert(db: sqlite3.Connection) -> None:
            try:
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute(
                        "INSERT INTO namespaces (id, name, data, notification_version) "
                        "VALUES (?, ?, ?, ?)",
                        (record.id, record.name, record.data, record.notification_version),
                    )
            except sqlite3.IntegrityError as e:
                raise ConditionFailedError(str(e)) from e

        await self._run(insert)

    async def update_namespace(self, record: NamespaceRecord) -> None:
        def update(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "UPDATE namespaces SET data = ?, notification_version = ? WHERE id = ?",
                    (record.data, record.notification_version, record.id),
                )

        await self._run(update)

    async def list_search_attributes(self) -> list[SearchAttributeRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT namespace_id, name, type, field FROM search_attributes "
                "ORDER BY namespace_id, name"
            ).fetchall()
        )
        return [SearchAttributeRecord(*row) for row in rows]

    async def update_search_attributes(
        self, namespace_id: str, upserts: list[SearchAttributeRecord], deletions: list[str]
    ) -> None:
        def update(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "DELETE FROM search_attributes WHERE namespace_id = ? AND name = ?",
                    [(namespace_id, name) for name in deletions],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO search_attributes (namespace_id, name, type, field) "
                    "VALUES (?, ?, ?, ?)",
                    [(namespace_id, r.name, r.type, r.field) for r in upserts],
                )

        await self._run(update)

    async def get_current_execution(
        self, namespace_id: str, workflow_id: str
    ) -> CurrentExecution | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT namespace_id, workflow_id, run_id, running, status, start_request_id, "
                "start_time_ns FROM current_executions WHERE namespace_id = ? AND workflow_id = ?",
                (namespace_id, workflow_id),
            ).fetchone()
        )
        if row is None:
            return None
        return CurrentExecution(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])

    async def get_execution(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRecord | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT shard_id, namespace_id, workflow_id, run_id, state, db_version "
                "FROM executions WHERE namespace_id = ? AND workflow_id = ? AND run_id = ?",
                (namespace_id, workflow_id, run_id),
            ).fetchone()
        )
        return ExecutionRecord(*row) if row else None

    async def read_events(
        self, namespace_id: str, workflow_id: str, run_id: str, first_event_id: int, limit: int
    ) -> list[bytes]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT data FROM history_events WHERE namespace_id = ? AND workflow_id = ? "
                "AND run_id = ? AND event_id >= ? ORDER BY event_id LIMIT ?",
                (namespace_id, workflow_id, run_id, first_event_id, limit),
            ).fetchall()
        )
        return [r[0] for r in rows]

    async def commit(self, tx: ExecutionTransaction) -> None:
        await self._group.commit(tx)

    async def load_timer_tasks(self, shard_id: int) -> list[TimerTask]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT shard_id, task_id, fire_time_ns, namespace_id, workflow_id, run_id, kind, "
                "data FROM timer_tasks WHERE shard_id = ? ORDER BY fire_time_ns",
                (shard_id,),
            ).fetchall()
        )
        return [TimerTask(*row) for row in rows]

    async def load_queue_tasks(self, shard_id: int) -> list[QueueTask]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT task_id, namespace_id, task_queue, kind, workflow_id, run_id, "
                "scheduled_event_id, shard_id, stamp, create_time_ns, version FROM queue_tasks "
                "WHERE shard_id = ? ORDER BY task_id",
                (shard_id,),
            ).fetchall()
        )
        return [QueueTask(*row) for row in rows]

    async def delete_queue_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "DELETE FROM queue_tasks WHERE shard_id = ? AND task_id = ?",
                    [(shard_id, t) for t in task_ids],
                )

        await self._run(delete)

    async def delete_timer_tasks(self, shard_id: int, task_ids: list[int]) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "DELETE FROM timer_tasks WHERE shard_id = ? AND task_id = ?",
                    [(shard_id, t) for t in task_ids],
                )

        await self._run(delete)

    async def save_schedule(
        self, record: ScheduleRecord, range_id: int, expected_version: int | None
    ) -> None:
        def save(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                _check_range(db, record.shard_id, range_id)
                r = record
                if expected_version is None:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO schedules (shard_id, namespace_id, schedule_id, "
                        "state, version) VALUES (?, ?, ?, ?, ?)",
                        (r.shard_id, r.namespace_id, r.schedule_id, r.state, r.version),
                    )
                else:
                    cursor = db.execute(
                        "UPDATE schedules SET state = ?, version = ? WHERE namespace_id = ? "
                        "AND schedule_id = ? AND version = ?",
                        (r.state, r.version, r.namespace_id, r.schedule_id, expected_version),
                    )
                if cursor.rowcount != 1:
                    raise ConditionFailedError("schedule was changed concurrently")

        await self._run(save)

    async def delete_schedule(
        self, shard_id: int, range_id: int, namespace_id: str, schedule_id: str
    ) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                _check_range(db, shard_id, range_id)
                db.execute(
                    "DELETE FROM schedules WHERE namespace_id = ? AND schedule_id = ?",
                    (namespace_id, schedule_id),
                )

        await self._run(delete)

    async def get_schedule(self, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_SCHEDULE_COLUMNS} FROM schedules "
                "WHERE namespace_id = ? AND schedule_id = ?",
                (namespace_id, schedule_id),
            ).fetchone()
        )
        return ScheduleRecord(*row) if row else None

    async def list_schedules(
        self, namespace_id: str | None = None, shard_id: int | None = None
    ) -> list[ScheduleRecord]:
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE (? IS NULL OR namespace_id = ?) "
                "AND (? IS NULL OR shard_id = ?) ORDER BY schedule_id",
                (namespace_id, namespace_id, shard_id, shard_id),
            ).fetchall()
        )
        return [ScheduleRecord(*row) for row in rows]

    async def save_deployment(self, record: DeploymentRecord, expected_version: int | None) -> None:
        def save(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                r = record
                if expected_version is None:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO worker_deployments (namespace_id, name, state, "
                        "version) VALUES (?, ?, ?, ?)",
                        (r.namespace_id, r.name, r.state, r.version),
                    )
                else:
                    cursor = db.execute(
                        "UPDATE worker_deployments SET state = ?, version = ? "
                        "WHERE namespace_id = ? AND name = ? AND version = ?",
                        (r.state, r.version, r.namespace_id, r.name, expected_version),
                    )
                if cursor.rowcount != 1:
                    raise ConditionFailedError("worker deployment was changed concurrently")

        await self._run(save)

    async def delete_deployment(self, namespace_id: str, name: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "DELETE FROM worker_deployments WHERE namespace_id = ? AND name = ?",
                    (namespace_id, name),
                )

        await self._run(delete)

    async def list_deployments(self, namespace_id: str | None = None) -> list[DeploymentRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT namespace_id, name, state, version FROM worker_deployments "
                "WHERE (? IS NULL OR namespace_id = ?) ORDER BY namespace_id, name",
                (namespace_id, namespace_id),
            ).fetchall()
        )
        return [DeploymentRecord(*row) for row in rows]

    async def list_visibility(self, namespace_id: str) -> list[VisibilityRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT namespace_id, workflow_id, run_id, workflow_type, task_queue, status, "
                "start_time_ns, execution_time_ns, close_time_ns, history_length, memo, "
                "search_attributes, parent_workflow_id, parent_run_id, root_workflow_id, "
                "root_run_id FROM visibility WHERE namespace_id = ? ORDER BY start_time_ns DESC",
                (namespace_id,),
            ).fetchall()
        )
        return [VisibilityRecord(*row) for row in rows]


def _commit_batch(db: sqlite3.Connection, batch: list[ExecutionTransaction]) -> list[Any]:
    errors: list[Any] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for tx in batch:
            db.execute("SAVEPOINT tx")
            try:
                _apply(db, tx)
                if tx.new_run is not None:
                    _apply(db, tx.new_run)
            except (ConditionFailedError, ShardOwnershipLostError) as e:
                db.execute("ROLLBACK TO tx")
                errors.append(e)
            else:
                errors.append(None)
            db.execute("RELEASE tx")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return errors


def _apply(db: sqlite3.Connection, tx: ExecutionTransaction) -> None:
    _check_range(db, tx.shard_id, tx.range_id)
    key = (tx.namespace_id, tx.workflow_id, tx.run_id)
    if tx.expected_db_version is None:
        try:
            db.execute(
                "INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, state, "
                "db_version) VALUES (?, ?, ?, ?, ?, ?)",
                (tx.shard_id, *key, tx.state, tx.db_version),
            )
        except sqlite3.IntegrityError as e:
            raise ConditionFailedError("execution already exists") from e
    else:
        cur = db.execute(
            "UPDATE executions SET state = ?, db_version = ? WHERE namespace_id = ? "
            "AND workflow_id = ? AND run_id = ? AND db_version = ?",
            (tx.state, tx.db_version, *key, tx.expected_db_version),
        )
        if cur.rowcount != 1:
            raise ConditionFailedError("execution was changed concurrently")
    if tx.current is not None:
        _write_current(db, tx)
    if tx.events:
        db.executemany(
            "INSERT INTO history_events (shard_id, namespace_id, workflow_id, run_id, event_id, "
            "data) VALUES (?, ?, ?, ?, ?, ?)",
            [(tx.shard_id, *key, event_id, data) for event_id, data in tx.events],
        )
    if tx.timer_tasks:
        db.executemany(
            "INSERT INTO timer_tasks (shard_id, task_id, fire_time_ns, namespace_id, workflow_id, "
            "run_id, kind, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (t.shard_id, t.task_id, t.fire_time_ns, t.namespace_id, t.workflow_id, t.run_id)
                + (t.kind, t.data)
                for t in tx.timer_tasks
            ],
        )
    if tx.queue_tasks:
        db.executemany(
            "INSERT INTO queue_tasks (shard_id, task_id, namespace_id, task_queue, kind, "
            "workflow_id, run_id, scheduled_event_id, stamp, create_time_ns, version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (t.shard_id, t.task_id, t.namespace_id, t.task_queue, t.kind, t.workflow_id)
                + (t.run_id, t.scheduled_event_id, t.stamp, t.create_time_ns, t.version)
                for t in tx.queue_tasks
            ],
        )
    if tx.done_timer_task_ids:
        db.executemany(
            "DELETE FROM timer_tasks WHERE shard_id = ? AND task_id = ?",
            [(tx.shard_id, task_id) for task_id in tx.done_timer_task_ids],
        )
    if tx.done_queue_task_ids:
        db.executemany(
            "DELETE FROM queue_tasks WHERE shard_id = ? AND task_id = ?",
            [(tx.shard_id, task_id) for task_id in tx.done_queue_task_ids],
        )
    if tx.visibility is not None:
        v = tx.visibility
        db.execute(
            "INSERT OR REPLACE INTO visibility (namespace_id, workflow_id, run_id, workflow_type, "
            "task_queue, status, start_time_ns, execution_time_ns, close_time_ns, history_length, "
            "memo, search_attributes, parent_workflow_id, parent_run_id, root_workflow_id, "
            "root_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (v.namespace_id, v.workflow_id, v.run_id, v.workflow_type, v.task_queue, v.status)
            + (v.start_time_ns, v.execution_time_ns, v.close_time_ns, v.history_length, v.memo)
            + (v.search_attributes, v.parent_workflow_id, v.parent_run_id, v.root_workflow_id)
            + (v.root_run_id,),
        )


def _write_current(db: sqlite3.Connection, tx: ExecutionTransaction) -> None:
    c = tx.current
    assert c is not None
    row = db.execute(
        "SELECT run_id FROM current_executions WHERE namespace_id = ? AND workflow_id = ?",
        (c.namespace_id, c.workflow_id),
    ).fetchone()
    found = row[0] if row else None
    if tx.expected_db_version is None:
        # A new run may only take over the pointer from the run the caller saw.
        if found != tx.expected_current_run_id:
            raise ConditionFailedError("another run of this workflow id started concurrently")
    elif found != c.run_id:
        return  # an older run closing no longer owns the pointer
    db.execute(
        "INSERT OR REPLACE INTO current_executions (shard_id, namespace_id, workflow_id, run_id, "
        "running, status, start_request_id, start_time_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (tx.shard_id, c.namespace_id, c.workflow_id, c.run_id, int(c.running), c.status)
        + (c.start_request_id, c.start_time_ns),
    )


_SCHEDULE_COLUMNS = "shard_id, namespace_id, schedule_id, state, version"


def _check_range(db: sqlite3.Connection, shard_id: int, range_id: int) -> None:
    row = db.execute("SELECT range_id FROM shards WHERE shard_id = ?", (shard_id,)).fetchone()
    if row is None or row[0] != range_id:
        raise ShardOwnershipLostError(f"shard {shard_id} is owned under another range id")
