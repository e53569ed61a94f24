"""The visibility table queried in SQL: listing in the default order from a keyset, counting
(per group), the columns and the indexed values derived from a row's search attributes, and
their backfill."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import message_pb2 as common_pb

from aion.common.search_attribute_values import (
    BOOL,
    DATETIME,
    DOUBLE,
    INT,
    KEYWORD,
    KEYWORD_LIST,
    ascii_folded,
    indexed_values,
)
from aion.persistence.sql.dialect import Dialect
from aion.persistence.sql.schema import CLOSE_ORDER
from aion.persistence.store import VisibilityFilter, VisibilityKey

NAMESPACE_DIVISION = "TemporalNamespaceDivision"
GROUP_COLUMNS = frozenset({"status", "namespace_division"})


def namespace_division(search_attributes: bytes) -> str | None:
    """The TemporalNamespaceDivision a row's search attributes set (None: none), which the
    `namespace_division` column holds so that the implicit filter on it runs in SQL."""
    if not search_attributes:
        return None
    try:
        fields = common_pb.SearchAttributes.FromString(search_attributes).indexed_fields
    except DecodeError:
        return None
    if NAMESPACE_DIVISION not in fields:
        return None
    try:
        value = json.loads(fields[NAMESPACE_DIVISION].data)
    except ValueError:
        return None
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return value if isinstance(value, str) else None


FOLDED_KEYWORD = -KEYWORD
"""The type of a Keyword's row with its ASCII letters lowered, written where that differs from
the Keyword (STARTS_WITH compares so)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

SearchAttributeRow = tuple[str, str, str, int, int | None, float | None, bytes | None]
"""(namespace id, run id, name, type, int value, double value, keyword value)."""


def utf8(text: str) -> bytes:
    """A Keyword as the index holds it (lone surrogates, which JSON can carry, kept)."""
    return text.encode("utf-8", "surrogatepass")


def micros(moment: datetime) -> int:
    """A datetime as the index holds it: microseconds since the Unix epoch."""
    return (moment - _EPOCH) // _MICRO


def search_attribute_rows(
    namespace_id: str, run_id: str, search_attributes: bytes
) -> list[SearchAttributeRow]:
    """The indexed values of a visibility row's search attributes (Text is matched in memory,
    and the namespace division has its column)."""
    if not search_attributes:
        return []
    try:
        fields = common_pb.SearchAttributes.FromString(search_attributes).indexed_fields
    except DecodeError:
        return []
    rows: list[SearchAttributeRow] = []
    for name, payload in fields.items():
        if name == NAMESPACE_DIVISION:
            continue
        for sa_type, int_value, double_value, keyword in _values(payload):
            rows.append((namespace_id, run_id, name, sa_type, int_value, double_value, keyword))
    return rows


def _values(
    payload: common_pb.Payload,
) -> Iterator[tuple[int, int | None, float | None, bytes | None]]:
    for sa_type, value in indexed_values(payload).items():
        if sa_type == KEYWORD:
            yield KEYWORD, None, None, utf8(value)
            folded = ascii_folded(value)
            if folded != value:
                yield FOLDED_KEYWORD, None, None, utf8(folded)
        elif sa_type == KEYWORD_LIST:
            # KeywordList `=` compares case-insensitively; an item once is enough.
            for item in sorted({item.casefold() for item in value}):
                yield KEYWORD_LIST, None, None, utf8(item)
        elif sa_type in (INT, BOOL):
            yield sa_type, int(value), None, None
        elif sa_type == DOUBLE:
            yield DOUBLE, None, float(value), None
        elif sa_type == DATETIME:
            yield DATETIME, micros(value), None, None


class VisibilityQueries:
    """The statements of a listing or a count, rendered for one dialect per filter."""

    def __init__(self, dialect: Dialect, columns: Sequence[str]) -> None:
        self.dialect = dialect
        self.columns = ", ".join(columns)
        self.order = f"{CLOSE_ORDER} DESC, start_time_ns DESC, run_id{dialect.byte_order}"

    def _where(self, where: VisibilityFilter) -> str:
        condition = where.condition.format(byte_order=self.dialect.byte_order)
        return "namespace_id = ?" + (f" AND ({condition})" if condition else "")

    def select(
        self, namespace_id: str, where: VisibilityFilter, after: VisibilityKey | None, limit: int
    ) -> tuple[str, tuple[Any, ...]]:
        sql = f"SELECT {self.columns} FROM visibility WHERE {self._where(where)}"
        args: tuple[Any, ...] = (namespace_id, *where.params)
        if after is not None:
            close, start, run_id = after
            sql += (
                f" AND {CLOSE_ORDER} <= ? AND ({CLOSE_ORDER} < ? OR start_time_ns < ?"
                f" OR (start_time_ns = ? AND run_id{self.dialect.byte_order} > ?))"
            )
            args += (close, close, start, start, run_id)
        sql += f" ORDER BY {self.order} LIMIT ?"
        return self.dialect.render(sql), (*args, limit)

    def count(
        self, namespace_id: str, where: VisibilityFilter, group_by: str | None
    ) -> tuple[str, tuple[Any, ...]]:
        args = (namespace_id, *where.params)
        if group_by is None:
            sql = f"SELECT NULL, COUNT(*) FROM visibility WHERE {self._where(where)}"
        else:
            if group_by not in GROUP_COLUMNS:
                raise ValueError(f"cannot group visibility by {group_by}")
            # `status + 0`: no index's order serves the grouping, so the planner picks the
            # index of the filter (SQLite would rather walk every row of the status index).
            key = "status + 0" if group_by == "status" else group_by
            sql = (
                f"SELECT {key}, COUNT(*) FROM visibility WHERE {self._where(where)} GROUP BY {key}"
            )
        return self.dialect.render(sql), args


BACKFILL_SELECT = "SELECT namespace_id, run_id, search_attributes FROM visibility"
INSERT_SEARCH_ATTRIBUTE = (
    "INSERT INTO visibility_search_attributes (namespace_id, run_id, name, type, int_value, "
    "double_value, keyword_value) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DELETE_SEARCH_ATTRIBUTES = (
    "DELETE FROM visibility_search_attributes WHERE namespace_id = ? AND run_id = ?"
)
BACKFILL_UPDATE = (
    "UPDATE visibility SET namespace_division = ? WHERE namespace_id = ? AND run_id = ?"
)


def backfill_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[str, str, str]]:
    """The (division, namespace id, run id) updates rows written before the column existed
    need."""
    updates = []
    for namespace_id, run_id, blob in rows:
        division = namespace_division(bytes(blob))
        if division is not None:
            updates.append((division, namespace_id, run_id))
    return updates


def backfill_search_attribute_rows(rows: Sequence[Sequence[Any]]) -> list[SearchAttributeRow]:
    """The indexed values of rows written before the table of them existed."""
    return [
        row
        for namespace_id, run_id, blob in rows
        for row in search_attribute_rows(namespace_id, run_id, bytes(blob))
    ]
