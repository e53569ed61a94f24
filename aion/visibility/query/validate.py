"""Validation of a parsed statement against the namespace's search attributes: `parse_query`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aion.common.search_attribute_values import parse_datetime
from aion.visibility.query.filters import (
    And,
    Between,
    Comparison,
    Expr,
    IsNull,
    ListQuery,
    Not,
    Or,
)
from aion.visibility.query.lexer import QuerySyntaxError
from aion.visibility.query.literals import (
    datetime_from_nanos,
    duration_value,
    go_value,
    parse_number,
    status_value,
)
from aion.visibility.query.parser import Parser
from aion.visibility.query.schema import (
    BOOL,
    DATETIME,
    DOUBLE,
    EXECUTION_DURATION,
    EXECUTION_STATUS,
    INT,
    INVALID,
    KEYWORD,
    KEYWORD_LIST,
    NAMESPACE_DIVISION,
    TEXT,
    TYPE_NAMES,
    UNSUPPORTED,
    QueryError,
    SearchAttributeType,
)
from aion.visibility.query.syntax import (
    Raw,
    RawBool,
    RawColumn,
    RawCompare,
    RawFunction,
    RawIs,
    RawLogic,
    RawNot,
    RawParen,
    RawRange,
    RawTuple,
    RawUnary,
    RawValue,
)

_GROUP_BY_ALLOWED = frozenset({EXECUTION_STATUS, NAMESPACE_DIVISION})
_RANGE_TYPES = frozenset({DATETIME, DOUBLE, INT, KEYWORD})
_OPERATORS: dict[int, frozenset[str]] = {
    KEYWORD: frozenset(
        {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "STARTS_WITH", "NOT STARTS_WITH"}
    ),
    KEYWORD_LIST: frozenset({"=", "!=", "IN", "NOT IN"}),
    TEXT: frozenset({"=", "!="}),
}
_SCALAR_OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"})


@dataclass(frozen=True)
class _Column:
    name: str  # resolved search attribute name
    alias: str  # as written in the query
    type: int


class _Converter:
    """Validates a parsed statement against the namespace's search attributes."""

    def __init__(self, types: Mapping[str, int]) -> None:
        self.types = types
        self.mentions_division = False
        self.columns: list[tuple[str, str]] = []

    def column(self, node: Raw) -> _Column:
        if not isinstance(node, RawColumn):
            raise QueryError(f"{INVALID}: must be a column name but was {node.go_type}")
        alias = node.name
        name = self.resolve(alias)
        if name == NAMESPACE_DIVISION:
            self.mentions_division = True
        self.columns.append((name, alias))
        return _Column(name, alias, self.types[name])

    def resolve(self, alias: str) -> str:
        if alias.startswith("Temporal"):
            name = "BuildIds" if alias == "TemporalBuildIds" else alias
        elif alias in self.types:
            name = alias
        elif alias == "ScheduleId":
            name = "WorkflowId"
        else:
            name = "Temporal" + alias
        if name not in self.types:
            raise QueryError(f"invalid search attribute: {alias}")
        return name

    def filter(self, node: Raw) -> Expr:
        match node:
            case RawParen(inner):
                return self.filter(inner)
            case RawNot(operand):
                return Not(self.filter(operand))
            case RawLogic(op, left, right):
                kind = And if op == "AND" else Or
                parts: list[Expr] = []
                for side in (self.filter(left), self.filter(right)):
                    parts.extend(side.operands if isinstance(side, kind) else (side,))
                return kind(tuple(parts))
            case RawCompare():
                return self.comparison(node)
            case RawRange(negated, left, low, high):
                col = self.column(left)
                if col.type not in _RANGE_TYPES:
                    raise QueryError(
                        f"{INVALID}: cannot do range condition on search attribute "
                        f"'{col.alias}' of type {TYPE_NAMES.get(col.type, col.type)}"
                    )
                return Between(
                    col.name, col.type, self.scalar(low, col), self.scalar(high, col), negated
                )
            case RawIs(op, operand):
                col = self.column(operand)
                if op not in ("NULL", "NOT NULL"):
                    raise QueryError(
                        f"{INVALID}: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'"
                    )
                return IsNull(col.name, col.type, op == "NOT NULL")
            case RawFunction():
                raise QueryError(f"{UNSUPPORTED}: function expression")
            case RawColumn():
                raise QueryError(f"{INVALID}: incomplete expression")
        raise QueryError(f"{UNSUPPORTED}: expression of type {node.go_type}")

    def comparison(self, node: RawCompare) -> Comparison:
        col = self.column(node.left)
        value = self.value(node.right, col)
        allowed = _OPERATORS.get(col.type, _SCALAR_OPERATORS)
        if node.op not in allowed:
            raise QueryError(
                f"{UNSUPPORTED}: operator '{node.op}' not supported for "
                f"{TYPE_NAMES.get(col.type, col.type)} type search attribute '{col.alias}'"
            )
        if isinstance(value, tuple) != node.op.endswith("IN"):
            raise QueryError(
                f"{INVALID}: operator '{node.op}' on search attribute '{col.alias}' "
                + ("needs a list of values" if node.op.endswith("IN") else "needs a single value")
            )
        return Comparison(col.name, col.type, node.op, value)

    def scalar(self, node: Raw, col: _Column) -> Any:
        value = self.value(node, col)
        if isinstance(value, tuple):
            raise QueryError(
                f"{INVALID}: a list of values is not allowed here for search attribute "
                f"'{col.alias}'"
            )
        return value

    def value(self, node: Raw, col: _Column) -> Any:
        match node:
            case RawValue(kind, text):
                literal: Any = text
                if kind == "number" and (literal := parse_number(text)) is None:
                    raise QueryError(f'{INVALID}: unable to parse value "{text}"')
                if col.name == EXECUTION_STATUS:
                    return status_value(literal)
                if col.name == EXECUTION_DURATION:
                    return duration_value(literal)
                return self.typed(literal, col)
            case RawBool(value):
                return self.typed(value, col)
            case RawTuple(items):
                return tuple(self.scalar(item, col) for item in items)
            case RawUnary(op, operand, source):
                if op not in ("-", "+"):
                    raise QueryError(f'{UNSUPPORTED}: unary operator "{op}"')
                if not (isinstance(operand, RawValue) and operand.kind == "number"):
                    raise QueryError(f'{INVALID}: unary operator not supported in "{source}"')
                value = self.value(operand, col)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise QueryError(f'{INVALID}: unary expression "{source}"')
                return -value if op == "-" else value
            case RawFunction():
                raise QueryError(f"{UNSUPPORTED}: nested func")
            case RawColumn(name):
                raise QueryError(
                    f"{UNSUPPORTED}: column name on the right side of comparison expression "
                    f'(did you forget to quote "{name}"?)'
                )
        raise QueryError(f"{INVALID}: unexpected value type {node.go_type}")

    def typed(self, value: Any, col: _Column) -> Any:
        """Check a literal against the attribute's type; datetimes become `datetime`s."""
        shown, go_type = go_value(value)
        type_name = TYPE_NAMES.get(col.type, str(col.type))
        mismatch = QueryError(
            f"{INVALID}: invalid value type for search attribute {col.alias} of type "
            f"{type_name}: {shown} (type: {go_type})"
        )
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if col.type in (INT, DOUBLE):
            if not is_number:
                raise mismatch
            return value
        if col.type == BOOL:
            if not isinstance(value, bool):
                raise mismatch
            return value
        if col.type == DATETIME:
            if isinstance(value, int) and not isinstance(value, bool):
                return datetime_from_nanos(value)
            if not isinstance(value, str):
                raise mismatch
            moment = parse_datetime(value)
            if moment is None:
                raise QueryError(f"{INVALID}: unable to parse datetime '{value}'")
            return moment
        if col.type in (KEYWORD, KEYWORD_LIST, TEXT):
            if not isinstance(value, str):
                raise mismatch
            if col.type == TEXT and not value.strip():
                raise QueryError(
                    f"{INVALID}: no tokens found filtering on Text type search attribute "
                    f"{col.alias}"
                )
            return value
        raise QueryError(f"{INVALID}: unknown search attribute type {type_name} for {col.alias}")


def parse_query(
    text: str, types: Mapping[str, SearchAttributeType], *, allow_order_by: bool = False
) -> ListQuery:
    """Parse and validate a list/count query against the namespace's search attribute types.

    `types` maps every known search attribute (predefined and custom) to its
    IndexedValueType. Raises QueryError with Temporal's wording for invalid queries.
    """
    src = text.strip()
    lowered = src.lower()
    has_where = bool(src) and not lowered.startswith(("order by", "group by"))
    try:
        statement = Parser(src).statement(has_where)
    except QuerySyntaxError as e:
        # Temporal parses "select * from table1 where <query>"; positions count from there.
        prefix = len("select * from table1 where " if has_where else "select * from table1 ")
        position = prefix + len(src[: e.end].encode()) + 1
        near = f" near '{e.near}'" if e.near is not None else ""
        raise QueryError(
            f"malformed SQL query: syntax error at position {position}{near}"
        ) from None

    if statement.limit:
        raise QueryError(f"{UNSUPPORTED}: 'LIMIT' clause")
    if statement.having:
        raise QueryError(f"{UNSUPPORTED}: 'HAVING' clause")
    converter = _Converter(types)
    query = ListQuery()
    if statement.where is not None:
        query.where = converter.filter(statement.where)
    if len(statement.group_by) > 1:
        raise QueryError(f"{UNSUPPORTED}: 'GROUP BY' clause supports only a single field")
    for node in statement.group_by:
        col = converter.column(node)
        if col.name not in _GROUP_BY_ALLOWED:
            raise QueryError(
                f"{UNSUPPORTED}: 'GROUP BY' clause is not supported for search attribute "
                f"{col.alias}"
            )
        query.group_by.append(col.name)
    for node, descending in statement.order_by:
        col = converter.column(node)
        if col.type == TEXT:
            raise QueryError(f"{UNSUPPORTED}: unable to sort by search attribute type Text")
        query.order_by.append((col.name, descending))
    if query.order_by and not allow_order_by:
        raise QueryError(f"{UNSUPPORTED}: 'ORDER BY' clause")
    if query.order_by and query.group_by:
        raise QueryError(
            f"{UNSUPPORTED}: 'ORDER BY' clause is not supported with 'GROUP BY' clause"
        )
    query.mentions_namespace_division = converter.mentions_division
    query.columns = converter.columns
    return query
