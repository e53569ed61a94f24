"""What differs between the SQL databases: a `Dialect` (syntax, rendered into the statements once
per dialect) and a `Connection` (how a statement runs on it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Row = Sequence[Any]


@dataclass(frozen=True)
class Dialect:
    """The syntax the shared statements are rendered with. The shared SQL writes parameters as
    `?`; `lock_*`, `byte_order` and `one_of` are appended where the statement needs them."""

    name: str
    numbered_parameters: bool  # `$1, $2, ...` instead of `?`
    # A read of a row the transaction relies on but does not change (the shard's range id).
    lock_for_share: str
    # A read of a row the transaction is about to change (the current-run pointer).
    lock_for_update: str
    # After an ORDER BY of text: sort by code point, whatever the database's locale.
    byte_order: str
    # A column compared with the list `Connection.execute_in` binds as the last parameter.
    one_of: str
    # The schema's column types by the names `aion.persistence.sql.schema` uses.
    types: Mapping[str, str]

    def render(self, sql: str) -> str:
        """`sql` with this dialect's parameter markers."""
        if not self.numbered_parameters:
            return sql
        first, *rest = sql.split("?")
        return first + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))


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
