"""What differs between the SQL databases: a `Dialect` (syntax, rendered into the statements once
per dialect) and a `Connection` (how a statement runs on it)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Row = Sequence[Any]


@dataclass(frozen=True)
class Dialect:
    """The syntax the shared statements are rendered with (they write parameters as `?`)."""

    name: str
    # Parameters are `$1, $2, ...` instead of `?`.
    numbered: bool
    # Rows can be locked: the shard row is read FOR SHARE, the current-run pointer FOR UPDATE
    # (see `aion.persistence.sql.execution`). Without: one connection writes, nothing to lock.
    row_locks: bool
    # A list binds as one parameter (`= ANY(?)`); without, `Connection.execute_in` runs the
    # statement once per value.
    arrays: bool
    # The collation that sorts text by code point; None: the database's default does.
    collation: str | None

    def render(self, sql: str) -> str:
        """`sql` with this dialect's parameter markers."""
        if not self.numbered:
            return sql
        first, *rest = sql.split("?")
        return first + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))

    @property
    def byte_order(self) -> str:
        """What follows a text column in ORDER BY to sort it by code point."""
        return f' COLLATE "{self.collation}"' if self.collation else ""

    @property
    def one_of(self) -> str:
        """What follows a column compared with the list `Connection.execute_in` binds."""
        return " = ANY(?)" if self.arrays else " = ?"

    def lock(self, mode: str) -> str:
        """What follows a SELECT to lock its rows in `mode` (SHARE, UPDATE)."""
        return f" FOR {mode}" if self.row_locks else ""


class Connection(Protocol):
    """One database connection as the shared logic uses it. The shared logic awaits nothing but
    these methods, so a driver without asyncio (SQLite) can run it to the end in one step."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; returns how many rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row of arguments."""

    async def execute_in(self, sql: str, args: Sequence[Any], values: Sequence[Any]) -> None:
        """Run `sql`, whose last parameter is compared by `Dialect.one_of`, for all `values`."""

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row; None without a row."""

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None: ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A transaction, or within one a savepoint: an exception undoes everything since."""
