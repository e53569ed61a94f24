"""PostgreSQL dialect: an asyncpg pool, group commit with a savepoint per transition.

The logic is the shared one (`aion.persistence.sql`); because several processes may share one
database, the checks SQLite gets for free from its single writer are made explicit with row locks
(see `aion.persistence.sql.execution`), and the database's clock times the hosts' leases.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import asyncpg

from aion.persistence.sql import schema, visibility
from aion.persistence.sql.dialect import Connection, Dialect, Row
from aion.persistence.sql.statements import Statements
from aion.persistence.sql.store import SQLStore, Work
from aion.persistence.store import HostRecord, StoreUnavailableError, UnstorableValueError

T = TypeVar("T")

log = logging.getLogger(__name__)

DIALECT = Dialect("postgres", numbered=True, row_locks=True, arrays=True, collation="C")

# Entry n upgrades the schema from version n to n + 1 (a row in `schema_version`).
MIGRATIONS = schema.migrations(DIALECT.name)
SCHEMA_VERSION = len(MIGRATIONS)

# A transaction left open this long (its process paused or hung) is ended by the server, which
# frees the shard rows it holds for the process taking the shards over.
IDLE_IN_TRANSACTION_MS = 3000
LOCK_TIMEOUT_MS = 2000

# Key of the advisory lock that serializes migrations of processes starting together.
_MIGRATION_LOCK = 0x41494F4E  # "AION"

# Failures of the connection or of the server as a whole (down, restarting, shutting down, out of
# connections or disk), not of the statement: the same call can succeed once the database is back.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a pooled connection the server just closed
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)

_BOUND_LOCK_WAIT = f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"
# The database's clock, not the hosts': leases compare times from one clock only.
_RENEW_HOST = (
    "INSERT INTO hosts (host_id, address, last_seen) VALUES ($1, $2, now()) "
    "ON CONFLICT (host_id) DO UPDATE SET address = excluded.address, "
    "last_seen = excluded.last_seen"
)
_LIVE_HOSTS = (
    "SELECT host_id, address FROM hosts "
    "WHERE last_seen > now() - make_interval(secs => $1) ORDER BY host_id"
)


async def migrate(conn: asyncpg.Connection, upgrade: bool = True) -> int:
    """Bring the schema up to `SCHEMA_VERSION` in one transaction; returns the version found.
    With `upgrade` False only an empty database is set up; an older schema is refused."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        found = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
        for version, ddl in schema.pending_migrations(found, MIGRATIONS, upgrade):
            await conn.execute(ddl)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            if found and version == schema.added_in(schema.VISIBILITY_IN_SQL, DIALECT.name):
                rows = await conn.fetch(visibility.BACKFILL_SELECT)
                updates = visibility.backfill_rows(rows)
                await conn.executemany(DIALECT.render(visibility.BACKFILL_UPDATE), updates)
            if found and version == schema.added_in(
                schema.VISIBILITY_SEARCH_ATTRIBUTES, DIALECT.name
            ):
                rows = await conn.fetch(visibility.BACKFILL_SELECT)
                await conn.executemany(
                    DIALECT.render(visibility.INSERT_SEARCH_ATTRIBUTE),
                    visibility.backfill_search_attribute_rows(rows),
                )
    return found


async def migrate_dsn(dsn: str) -> tuple[int, int]:
    """Migrate the database at `dsn`; returns (version found, version now)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn), SCHEMA_VERSION
    finally:
        await conn.close()


class PostgresConnection:
    """The shared logic's `Connection` over an asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with _storable():
            status: str = await self.conn.execute(sql, *args)  # "UPDATE 1", "INSERT 0 1", "SET"
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _storable():
            await self.conn.executemany(sql, rows)

    async def execute_in(self, sql: str, args: Sequence[Any], values: Sequence[Any]) -> None:
        with _storable():
            await self.conn.execute(sql, *args, values)

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with _storable():
            return await self.conn.fetchval(sql, *args)

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        with _storable():
            row: Row | None = await self.conn.fetchrow(sql, *args)
        return row

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with _storable():
            rows: list[Row] = await self.conn.fetch(sql, *args)
        return rows

    def transaction(self) -> Any:
        return self.conn.transaction()


@contextmanager
def _storable() -> Iterator[None]:
    """PostgreSQL's refusal of a NUL character in text as UnstorableValueError (SQLite stores
    it)."""
    try:
        yield
    except asyncpg.CharacterNotInRepertoireError:
        raise UnstorableValueError(
            "a string of the request holds a NUL character, which PostgreSQL cannot store"
        ) from None


class PostgresStore(SQLStore):
    """PostgreSQL at `dsn` (e.g. ``postgresql://user@host:5432/aion``); sets up or (with
    `upgrade_schema`) migrates the schema on open."""

    name = "postgres"
    shared = True
    sql = Statements(DIALECT)

    def __init__(self, dsn: str, max_connections: int = 8, upgrade_schema: bool = True) -> None:
        super().__init__()
        self.dsn = dsn
        self.upgrade_schema = upgrade_schema
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None

    def connections(self) -> tuple[int, int]:
        if self._pool is None:
            return 0, 0
        size = self._pool.get_size()
        return size - self._pool.get_idle_size(), size

    def _db(self) -> asyncpg.Pool:
        assert self._pool is not None, "store is not open"
        return self._pool

    async def _read(self, work: Work[T]) -> T:
        try:
            async with self._connection() as conn:
                return await work(PostgresConnection(conn))
        except UNAVAILABLE_ERRORS as e:
            raise StoreUnavailableError(f"{type(e).__name__}: {e}") from e

    async def _write(self, work: Work[T]) -> T:
        # The pool replaces a connection the server closed on its next acquire: once the
        # database is back, the next call gets through.
        try:
            async with self._connection() as conn:
                try:
                    async with conn.transaction():
                        return await work(PostgresConnection(conn))
                except UNAVAILABLE_ERRORS as e:
                    message = f"{type(e).__name__}: {e}"
                    raise StoreUnavailableError(message, outcome_unknown=True) from e
        except UNAVAILABLE_ERRORS as e:
            raise StoreUnavailableError(f"{type(e).__name__}: {e}") from e

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection. The pool resets it when it comes back; a reset that fails (the
        database went away once the work was done) only closes it: the work's outcome stands.
        Raised from here, it would pass a committed write off as one never applied, and the
        tasks it made durable would wait unseen until the shard is next loaded."""
        pool = self._db()
        conn = await pool.acquire()
        try:
            yield conn
        finally:
            try:
                await pool.release(conn)
            except UNAVAILABLE_ERRORS as e:
                log.info(
                    "a connection could not be reset and was closed: %s: %s", type(e).__name__, e
                )

    async def _write_or_unavailable(self, work: Work[T]) -> T:
        try:
            return await self._write(work)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StoreUnavailableError(f"{type(e).__name__}: {e}") from e

    async def _before_shard_takeover(self, conn: Connection) -> None:
        # Commits under the old lease hold the shard row; a stuck one (its process paused
        # mid-transaction) is ended by the server's idle-in-transaction timeout, so wait a
        # little and let the caller try again rather than hang.
        await conn.execute(_BOUND_LOCK_WAIT)

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
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def heartbeat(self, host: HostRecord, lease_s: float) -> list[HostRecord]:
        async def renew(conn: Connection) -> list[Row]:
            await conn.execute(_RENEW_HOST, (host.host_id, host.address))
            return await conn.fetch(_LIVE_HOSTS, (lease_s,))

        return [HostRecord(*row) for row in await self._read(renew)]
