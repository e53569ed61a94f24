"""SQLite dialect: WAL, group commit with a savepoint per transition.

The shared logic (`aion.persistence.sql`) is written against an async `Connection`; here every
method of it finishes at once, so a piece of work runs to its end in one step (`_run_to_end`), as
a plain function would. Where it runs is what costs: a hop to another thread and back is two
context switches. So on a file, writes (whose commit waits for the disk) run on the one writer
connection's thread, once per group-commit batch, and reads run at once on the event loop's
thread through a second, read-only connection (WAL lets it read beside the writer; it sees every
commit that has returned). In memory nothing waits for a disk: everything runs on the loop's
thread, on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from aion.persistence.sql import schema, visibility
from aion.persistence.sql.dialect import Connection, Dialect, Row
from aion.persistence.sql.statements import Statements
from aion.persistence.sql.store import SQLStore, Work
from aion.persistence.store import HostRecord, StoreUnavailableError

T = TypeVar("T")

DIALECT = Dialect("sqlite", numbered=False, row_locks=False, arrays=False, collation=None)

# Entry n upgrades the schema from version n to n + 1 (`PRAGMA user_version`).
MIGRATIONS = schema.migrations(DIALECT.name)
SCHEMA_VERSION = len(MIGRATIONS)

# Result codes (primary) of failures of the file or the machine, not of the statement: a full
# disk, an I/O error, a lock held too long, no memory. The write was rolled back; it can succeed
# once the cause is gone.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)

_LIVE_HOSTS = "SELECT host_id, address FROM hosts WHERE last_seen_ns > ? ORDER BY host_id"
_RENEW_HOST = (
    "INSERT INTO hosts (host_id, address, last_seen_ns) VALUES (?, ?, ?) "
    "ON CONFLICT (host_id) DO UPDATE SET address = excluded.address, "
    "last_seen_ns = excluded.last_seen_ns"
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to `SCHEMA_VERSION`; returns the version found before."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for version, ddl in schema.pending_migrations(found, MIGRATIONS):
        with conn:
            conn.executescript(f"BEGIN;{ddl}PRAGMA user_version={version};")
            if found and version == schema.added_in(schema.VISIBILITY_IN_SQL, DIALECT.name):
                rows = conn.execute(visibility.BACKFILL_SELECT).fetchall()
                conn.executemany(visibility.BACKFILL_UPDATE, visibility.backfill_rows(rows))
            if found and version == schema.added_in(
                schema.VISIBILITY_SEARCH_ATTRIBUTES, DIALECT.name
            ):
                rows = conn.execute(visibility.BACKFILL_SELECT).fetchall()
                conn.executemany(
                    visibility.INSERT_SEARCH_ATTRIBUTE,
                    visibility.backfill_search_attribute_rows(rows),
                )
    return found


class SQLiteConnection:
    """The shared logic's `Connection` over sqlite3; nothing in it ever waits."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, args).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    async def execute_in(self, sql: str, args: Sequence[Any], values: Sequence[Any]) -> None:
        self.db.executemany(sql, [(*args, value) for value in values])

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = self.db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.db.execute(sql, args).fetchone()
        return row

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.db.execute(sql, args).fetchall()

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or within a transaction a savepoint."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.savepoint = False

    async def __aenter__(self) -> None:
        self.savepoint = self.db.in_transaction
        self.db.execute("SAVEPOINT tx" if self.savepoint else "BEGIN IMMEDIATE")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.db.execute("RELEASE tx" if self.savepoint else "COMMIT")
            except sqlite3.Error:
                # A COMMIT that failed (the disk is full) may leave the transaction open: end
                # it, or every later BEGIN would fail.
                if not self.savepoint and self.db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise
        elif self.db.in_transaction:  # (a failed disk write may have ended it already)
            if self.savepoint:
                self.db.execute("ROLLBACK TO tx")
                self.db.execute("RELEASE tx")
            else:
                self.db.execute("ROLLBACK")


def _run_to_end(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (its awaits are `SQLiteConnection` calls)."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("SQLite work waited on something other than its connection")


class SQLiteStore(SQLStore):
    """Embedded SQLite; `path` ":memory:" keeps everything in memory (the dev default)."""

    name = "sqlite"
    sql = Statements(DIALECT)

    def __init__(self, path: str = ":memory:") -> None:
        super().__init__()
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aion-sqlite")
        self._conn: SQLiteConnection | None = None
        self._reader: SQLiteConnection | None = None  # on a file: the loop thread's, read-only
        self._queued = 0  # work queued for or running on the writer's thread
        self._in_memory = path == ":memory:"

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._in_memory:
            return fn()
        self._queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            self._queued -= 1

    def connections(self) -> tuple[int, int]:
        """The one connection: in use while any work is queued for it."""
        return min(self._queued, 1), 0 if self._conn is None else 1

    def _connection(self) -> SQLiteConnection:
        assert self._conn is not None, "store is not open"
        return self._conn

    async def _read(self, work: Work[T]) -> T:
        try:
            return _run_to_end(work(self._reader or self._connection()))
        except sqlite3.Error as e:
            _raise_if_unavailable(e)
            raise

    async def _write(self, work: Work[T]) -> T:
        conn = self._connection()
        try:
            return await self._run(lambda: _run_to_end(_in_transaction(conn, work)))
        except sqlite3.Error as e:
            _raise_if_unavailable(e)
            raise

    async def open(self) -> None:
        def connect() -> None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if not self._in_memory:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            migrate(db)
            self._conn = SQLiteConnection(db)

        await self._run(connect)
        if not self._in_memory:
            reader = sqlite3.connect(self.path, isolation_level=None)
            reader.execute("PRAGMA query_only=1")
            self._reader = SQLiteConnection(reader)

    async def close(self) -> None:
        await self._group.drain()

        if self._reader is not None:
            self._reader.db.close()
            self._reader = None

        def shut() -> None:
            if self._conn is not None:
                self._conn.db.close()
                self._conn = None

        await self._run(shut)
        self._executor.shutdown(wait=True)

    async def heartbeat(self, host: HostRecord, lease_s: float) -> list[HostRecord]:
        now = time.time_ns()

        async def renew(conn: Connection) -> list[Row]:
            await conn.execute(_RENEW_HOST, (host.host_id, host.address, now))
            return await conn.fetch(_LIVE_HOSTS, (now - int(lease_s * 1e9),))

        return [HostRecord(*row) for row in await self._write(renew)]


def _raise_if_unavailable(error: sqlite3.Error) -> None:
    """StoreUnavailableError for a failure of the file or the machine."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
        raise StoreUnavailableError(f"{type(error).__name__}: {error}") from error


async def _in_transaction(conn: SQLiteConnection, work: Work[T]) -> T:
    async with conn.transaction():
        return await work(conn)
