"""The validated filter tree and its evaluation on one visibility record (SQL three-valued
logic: None stands for unknown)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from aion.common.search_attribute_values import ascii_folded
from aion.visibility.query.schema import (
    EXECUTION_STATUS,
    EXECUTION_STATUSES,
    KEYWORD_LIST,
    NAMESPACE_DIVISION,
    STATUS_RANK,
    TEXT,
)


def record_value(record: Mapping[str, Any], name: str, sa_type: int) -> Any:
    """The record's value for `name` in the shape comparisons expect; None for NULL."""
    value = record.get(name)
    if value is None:
        return None
    if sa_type == KEYWORD_LIST:
        items = [value] if isinstance(value, str) else list(value)
        return items or None
    if name == EXECUTION_STATUS and isinstance(value, int):
        return EXECUTION_STATUSES[value] if 0 <= value < len(EXECUTION_STATUSES) else None
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1) * 1000
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def order_key(name: str, value: Any) -> Any:
    """The value in comparison order: ExecutionStatus by enum number, others as they are."""
    return STATUS_RANK.get(value) if name == EXECUTION_STATUS else value


_WORD = re.compile(r"[^\W_]+")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _text_matches(value: str, query: str) -> bool:
    words = _WORD.findall(value.casefold())
    for piece in query.split():
        phrase = _WORD.findall(piece.casefold())
        if phrase and any(
            words[i : i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1)
        ):
            return True
    return False


@dataclass(frozen=True)
class Comparison:
    """`attribute <op> value`; for IN / NOT IN, `value` is a tuple."""

    attribute: str
    type: int
    op: str  # = != < <= > >= IN, NOT IN, STARTS_WITH, NOT STARTS_WITH
    value: Any

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """True, False, or None for SQL's unknown."""
        actual = record_value(record, self.attribute, self.type)
        negated = self.op in ("!=", "NOT IN", "NOT STARTS_WITH")
        if self.type == KEYWORD_LIST:
            wanted = self.value if isinstance(self.value, tuple) else (self.value,)
            have = {str(item).casefold() for item in actual or ()}
            return any(w.casefold() in have for w in wanted) != negated
        if self.type == TEXT:
            return (isinstance(actual, str) and _text_matches(actual, self.value)) != negated
        if actual is None:
            return None
        try:
            if self.op in ("STARTS_WITH", "NOT STARTS_WITH"):
                if not isinstance(actual, str):
                    return None
                return ascii_folded(actual).startswith(ascii_folded(self.value)) != negated
            if self.op in ("IN", "NOT IN"):
                return (actual in self.value) != negated
            left = order_key(self.attribute, actual)
            if left is None:
                return None
            return _COMPARE[self.op](left, order_key(self.attribute, self.value))
        except TypeError:
            return None


@dataclass(frozen=True)
class Between:
    """`attribute [NOT] BETWEEN low AND high` (inclusive)."""

    attribute: str
    type: int
    low: Any
    high: Any
    negated: bool = False

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """True, False, or None for SQL's unknown."""
        actual = order_key(self.attribute, record_value(record, self.attribute, self.type))
        if actual is None:
            return None
        low = order_key(self.attribute, self.low)
        high = order_key(self.attribute, self.high)
        try:
            return bool(low <= actual <= high) != self.negated
        except TypeError:
            return None


@dataclass(frozen=True)
class IsNull:
    """`attribute IS [NOT] NULL`; an empty keyword list counts as NULL."""

    attribute: str
    type: int
    negated: bool = False

    def evaluate(self, record: Mapping[str, Any]) -> bool:
        """Never unknown."""
        return (record_value(record, self.attribute, self.type) is None) != self.negated


@dataclass(frozen=True)
class Not:
    """SQL NOT: unknown stays unknown."""

    operand: Expr

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """True, False, or None for SQL's unknown."""
        result = self.operand.evaluate(record)
        return None if result is None else not result


@dataclass(frozen=True)
class And:
    """SQL AND over two or more operands."""

    operands: tuple[Expr, ...]

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """False if any is false, else unknown if any is unknown, else true."""
        unknown = False
        for operand in self.operands:
            result = operand.evaluate(record)
            if result is False:
                return False
            unknown = unknown or result is None
        return None if unknown else True


@dataclass(frozen=True)
class Or:
    """SQL OR over two or more operands."""

    operands: tuple[Expr, ...]

    def evaluate(self, record: Mapping[str, Any]) -> bool | None:
        """True if any is true, else unknown if any is unknown, else false."""
        unknown = False
        for operand in self.operands:
            result = operand.evaluate(record)
            if result is True:
                return True
            unknown = unknown or result is None
        return None if unknown else False


Expr: TypeAlias = Comparison | Between | IsNull | Not | And | Or


@dataclass
class ListQuery:
    """A validated visibility query. Attribute names are resolved search attribute names."""

    where: Expr | None = None
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (name, descending)
    group_by: list[str] = field(default_factory=list)
    mentions_namespace_division: bool = False
    # Every attribute the query names: (resolved name, name as written).
    columns: list[tuple[str, str]] = field(default_factory=list)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether the record passes the filter (and Temporal's implicit division filter)."""
        if not self.mentions_namespace_division and record.get(NAMESPACE_DIVISION) is not None:
            return False
        return self.where is None or self.where.evaluate(record) is True
