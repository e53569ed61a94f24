"""Small helpers shared by the tests: unique names, and the storage backends servers run on."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.servers import AionProcess

if TYPE_CHECKING:
    import asyncpg

# asyncpg is imported inside the functions that use it, never when this module loads: test
# modules import this one, and the Temporal workflow sandbox re-imports a workflow's module with
# its imports; asyncpg (>= 0.31) imported in the sandbox crashes the next connection the test
# process opens (a segfault in asyncpg's BaseProtocol.__init__, MagicStack/asyncpg#1292).

# Every test that talks to a server or a store runs once per backend (the `backend` fixture).
BACKENDS = ("sqlite", "postgres")

PG_ADMIN_DSN = os.environ.get("AION_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# Set by scripts/test, which makes sure a PostgreSQL server answers: there an unreachable one is
# a failure, not a skip.
REQUIRE_PG = os.environ.get("AION_REQUIRE_PG", "") not in ("", "0")


async def aion_command(*args: str) -> tuple[int, str, str]:
    """`python -m aion ARGS` run to its end: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "aion", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def run_sql(server: AionProcess, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run a statement (`?` parameters) on the server's database beside it, as a fault
    injection; the rows it returns."""
    if server.dsn is not None:
        import asyncpg

        connection = await asyncpg.connect(server.dsn)
        try:
            numbered = sql.replace("?", "${}").format(*range(1, len(args) + 1))
            return [tuple(row) for row in await connection.fetch(numbered, *args)]
        finally:
            await connection.close()
    assert server.db_filename is not None
    connection = sqlite3.connect(server.db_filename, timeout=30)
    try:
        with connection:  # commits
            return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def unique(prefix: str) -> str:
    """A workflow id or task queue name no other test uses."""
    return f"{prefix}-{uuid.uuid4()}"


async def pg_admin() -> asyncpg.Connection:
    """The admin connection to AION_TEST_PG_DSN; when PostgreSQL is not reachable, a skip naming
    the DSN (a failure when AION_REQUIRE_PG is set)."""
    import asyncpg

    try:
        return await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        message = f"PostgreSQL not reachable at {PG_ADMIN_DSN} (set AION_TEST_PG_DSN): {e!r}"
        if REQUIRE_PG:
            pytest.fail(message + " (AION_REQUIRE_PG is set)", pytrace=False)
        pytest.skip(message)


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


async def pg_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A fresh empty database: its DSN and a coroutine function that drops it."""
    admin = await pg_admin()
    name = f"aion_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return with_database(PG_ADMIN_DSN, name), drop


@dataclass(frozen=True)
class Storage:
    """Where an Aion server under test keeps its data: a SQLite file (None: in memory) or a
    PostgreSQL database."""

    backend: str
    db_filename: str | None = None
    dsn: str | None = None

    def server(self, **kwargs: Any) -> AionProcess:
        """An Aion server (not started yet) on this storage."""
        return AionProcess(db_filename=self.db_filename, dsn=self.dsn, **kwargs)


@asynccontextmanager
async def fresh_storage(backend: str, sqlite_file: str | None = None) -> AsyncIterator[Storage]:
    """Empty storage on `backend`: the SQLite file given (None: in memory), or a new PostgreSQL
    database that is dropped on exit."""
    if backend == "sqlite":
        yield Storage(backend, db_filename=sqlite_file)
        return
    assert backend == "postgres", backend
    dsn, drop = await pg_database()
    try:
        yield Storage(backend, dsn=dsn)
    finally:
        await drop()
