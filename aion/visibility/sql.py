"""A validated filter (`aion.visibility.query.ListQuery`) as a condition on the visibility
table's columns, for the store to run in SQL.

System attributes held in columns translate exactly, SQL's three-valued logic included (a
column that stores "no value" as 0 or '' is read as NULL wherever that can change the answer).
Custom attributes and the predefined ones kept in the row's search attributes translate exactly
too, as a semi-join on their indexed values (`visibility_search_attributes`: `run_id IN
(SELECT run_id ... WHERE name = ? AND type = ? AND <value condition>)`, an index range), with
the unknown a missing value gives where a NOT can see it.

What has no exact SQL form (Text's full-text match, STARTS_WITH on a system column, whose case
folding differs between the databases) leaves a wider condition: an AND drops such an operand,
an OR or a NOT containing one gives up its condition. The result then says it is not `exact`,
and the caller re-checks every row the store returns with `ListQuery.matches`, so answers never
depend on the translation. Index-friendly forms are used where they mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from aion.common.search_attribute_values import ascii_folded
from aion.persistence import VisibilityFilter
from aion.persistence.sql.visibility import FOLDED_KEYWORD, micros, utf8
from aion.visibility.query import (
    BOOL,
    DATETIME,
    DOUBLE,
    EXECUTION_DURATION,
    EXECUTION_STATUS,
    INT,
    KEYWORD,
    KEYWORD_LIST,
    NAMESPACE_DIVISION,
    And,
    Between,
    Comparison,
    Expr,
    IsNull,
    ListQuery,
    Not,
    Or,
)
from aion.visibility.query.schema import STATUS_RANK

# Attribute: (column, how it stores "no value": None never empty, "" as '', "NULL" as NULL).
_TEXT: dict[str, tuple[str, str | None]] = {
    "WorkflowId": ("workflow_id", None),
    "RunId": ("run_id", None),
    "WorkflowType": ("workflow_type", None),
    "TaskQueue": ("task_queue", None),
    "ParentWorkflowId": ("parent_workflow_id", ""),
    "ParentRunId": ("parent_run_id", ""),
    "RootWorkflowId": ("root_workflow_id", ""),
    "RootRunId": ("root_run_id", ""),
    NAMESPACE_DIVISION: ("namespace_division", "NULL"),
}
_INT = {
    "HistoryLength": "history_length",
    "HistorySizeBytes": "history_size_bytes",
    "StateTransitionCount": "state_transition_count",
}
_TIME = {  # nanoseconds; 0 is no value
    "StartTime": "start_time_ns",
    "ExecutionTime": "execution_time_ns",
    "CloseTime": "close_time_ns",
}
GROUP_COLUMNS = {EXECUTION_STATUS: "status", NAMESPACE_DIVISION: "namespace_division"}


@dataclass(frozen=True)
class Translation:
    """The condition the store runs, and whether it is the filter itself (else wider)."""

    where: VisibilityFilter
    exact: bool


@dataclass(frozen=True)
class _Sql:
    text: str
    params: tuple[Any, ...]
    exact: bool


_WIDER = None  # no condition: every row may match


def translate(query: ListQuery, namespace_id: str) -> Translation:
    """The SQL condition of `query`'s filter in `namespace_id`, with Temporal's implicit
    division filter."""
    parts: list[_Sql] = []
    if not query.mentions_namespace_division:
        parts.append(_Sql("namespace_division IS NULL", (), True))
    exact = True
    if query.where is not None:
        emitted = _emit(query.where, False, namespace_id)
        if emitted is None:
            exact = False
        else:
            parts.append(emitted)
            exact = emitted.exact
    text = " AND ".join(f"({p.text})" for p in parts)
    params = tuple(v for p in parts for v in p.params)
    return Translation(VisibilityFilter(text, params), exact)


def _emit(expr: Expr, negated: bool, ns: str) -> _Sql | None:
    """`expr` in SQL: exact, or (only where `negated` is false) a wider condition; None
    when neither can be written."""
    match expr:
        case And(operands):
            parts = [_emit(op, negated, ns) for op in operands]
            kept = [p for p in parts if p is not None]
            if negated and len(kept) < len(parts):
                return _WIDER
            if not kept:
                return _WIDER
            exact = len(kept) == len(parts) and all(p.exact for p in kept)
            return _join(" AND ", kept, exact)
        case Or(operands):
            parts = [_emit(op, negated, ns) for op in operands]
            if any(p is None for p in parts):
                return _WIDER
            kept = [p for p in parts if p is not None]
            return _join(" OR ", kept, all(p.exact for p in kept))
        case Not(operand):
            inner = _emit(operand, not negated, ns)
            if inner is None or not inner.exact:
                return _WIDER
            return _Sql(f"NOT ({inner.text})", inner.params, True)
        case IsNull():
            return _is_null(expr, ns)
        case Comparison() | Between():
            leaf = _leaf(expr, negated, ns)
            if leaf is None or (negated and not leaf.exact):
                return _WIDER
            return leaf
    return _WIDER


def _join(glue: str, parts: list[_Sql], exact: bool) -> _Sql:
    text = glue.join(f"({p.text})" for p in parts)
    return _Sql(text, tuple(v for p in parts for v in p.params), exact)


def _is_null(expr: IsNull, ns: str) -> _Sql | None:
    name = expr.attribute
    if name in _TEXT:
        column, empty = _TEXT[name]
        if empty is None:
            test = "1 = 0"
        elif empty == "":
            test = f"{column} = ''"
        else:
            test = f"{column} IS NULL"
    elif name in _INT or name == EXECUTION_STATUS:
        test = "1 = 0"
    elif name in _TIME:
        test = f"{_TIME[name]} = 0"
    elif name == EXECUTION_DURATION:
        test = "close_time_ns = 0"
    elif expr.type in _VALUE_COLUMNS:
        present = _indexed(ns, name, (expr.type,), None)
        return present if expr.negated else _not(present)
    else:
        return _WIDER
    return _Sql(f"NOT ({test})" if expr.negated else test, (), True)


def _leaf(expr: Comparison | Between, negated: bool, ns: str) -> _Sql | None:
    name = expr.attribute
    if name in _TEXT:
        return _text(expr, *_TEXT[name], negated)
    if name == EXECUTION_STATUS:
        return _scalar(expr, "status", lambda v: STATUS_RANK[v])
    if name in _INT:
        return _scalar(expr, _INT[name], lambda v: v)
    if name in _TIME:
        column = _TIME[name]
        return _nullable(_time(expr, column), column, negated)
    if name == EXECUTION_DURATION:
        return _nullable(
            _scalar(expr, "(close_time_ns - execution_time_ns)", lambda v: v),
            "close_time_ns",
            negated,
        )
    if expr.type in _VALUE_COLUMNS:
        return _indexed_leaf(expr, negated, ns)
    return _WIDER


def _nullable(leaf: _Sql | None, column: str, negated: bool) -> _Sql | None:
    """`leaf` on a column where 0 is no value: unknown there (false will do when nothing
    negates the answer)."""
    if leaf is None:
        return None
    if negated:
        text = f"CASE WHEN {column} = 0 THEN NULL ELSE ({leaf.text}) END"
    else:
        text = f"{column} <> 0 AND ({leaf.text})"
    return _Sql(text, leaf.params, leaf.exact)


def _marker(value: Any) -> str:
    # PostgreSQL types a parameter from its column: a fraction compared with an integer
    # column must say it is one.
    return "CAST(? AS DOUBLE PRECISION)" if isinstance(value, float) else "?"


_NEGATIONS = {"!=": "<>", "NOT IN": "NOT IN"}


def _scalar(expr: Comparison | Between, column: str, convert: Any, order: str = "") -> _Sql | None:
    """A comparison of a column that always has a value (or whose NULL is SQL's)."""
    if isinstance(expr, Between):
        low, high = convert(expr.low), convert(expr.high)
        text = f"{column}{order} BETWEEN {_marker(low)} AND {_marker(high)}"
        return _Sql(f"NOT ({text})" if expr.negated else text, (low, high), True)
    op = expr.op
    if op in ("STARTS_WITH", "NOT STARTS_WITH"):
        return None
    if op in ("IN", "NOT IN"):
        values = tuple(convert(v) for v in expr.value)
        if not values:
            return None
        markers = ", ".join(_marker(v) for v in values)
        return _Sql(f"{column} {op} ({markers})", values, True)
    value = convert(expr.value)
    sql_op = _NEGATIONS.get(op, op)
    ordered = order if op in ("<", "<=", ">", ">=") else ""
    return _Sql(f"{column}{ordered} {sql_op} {_marker(value)}", (value,), True)


def _text(expr: Comparison | Between, column: str, empty: str | None, negated: bool) -> _Sql | None:
    order = "{byte_order}"
    if isinstance(expr, Comparison) and expr.op == "STARTS_WITH":
        if negated:
            return None
        escaped = expr.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").lower()
        return _Sql(f"lower({column}) LIKE ? ESCAPE '\\'", (escaped + "%",), False)
    plain = empty != "" or (
        not negated
        and isinstance(expr, Comparison)
        and expr.op in ("=", "IN")
        and all(v != "" for v in (expr.value if expr.op == "IN" else (expr.value,)))
    )
    value = column if plain else f"NULLIF({column}, '')"
    return _scalar(expr, value, lambda v: v, order)


def _time(expr: Comparison | Between, column: str) -> _Sql | None:
    """A datetime comparison on nanoseconds, as the filter compares at microsecond precision
    (a row's time is its microsecond): bounds on the column itself, so its index serves."""

    def at_least(us: int) -> tuple[str, int]:
        return f"{column} >= ?", us * 1000

    def below(us: int) -> tuple[str, int]:
        return f"{column} < ?", us * 1000

    def within(us: int) -> _Sql:
        return _Sql(f"{column} >= ? AND {column} < ?", (us * 1000, (us + 1) * 1000), True)

    if isinstance(expr, Between):
        low, high = micros(expr.low), micros(expr.high)
        text = f"{column} >= ? AND {column} < ?"
        if expr.negated:
            text = f"NOT ({text})"
        return _Sql(text, (low * 1000, (high + 1) * 1000), True)
    op = expr.op
    if op in ("IN", "NOT IN"):
        parts = [within(micros(v)) for v in expr.value]
        if not parts:
            return None
        joined = _join(" OR ", parts, True)
        return _Sql(f"NOT ({joined.text})", joined.params, True) if op == "NOT IN" else joined
    if op not in ("=", "!=", "<", "<=", ">", ">="):
        return None
    us = micros(expr.value)
    if op == "=":
        return within(us)
    if op == "!=":
        inside = within(us)
        return _Sql(f"NOT ({inside.text})", inside.params, True)
    text, bound = {
        "<": below(us),
        "<=": below(us + 1),
        ">": at_least(us + 1),
        ">=": at_least(us),
    }[op]
    return _Sql(text, (bound,), True)


# An indexed value's column by the attribute's type, and the value as that column holds it.
_VALUE_COLUMNS: dict[int, tuple[str, Any]] = {
    KEYWORD: ("keyword_value", utf8),
    KEYWORD_LIST: ("keyword_value", lambda v: utf8(v.casefold())),
    INT: ("int_value", lambda v: v),
    BOOL: ("int_value", int),
    DATETIME: ("int_value", micros),
    DOUBLE: ("double_value", float),
}
_INVERSES = {"!=": "=", "NOT IN": "IN", "NOT STARTS_WITH": "STARTS_WITH"}


def _indexed(ns: str, name: str, types: tuple[int, ...], value: _Sql | None) -> _Sql:
    """Whether the row has an indexed value of `name`, of one of `types`, passing `value` (a
    condition on the value columns; None: any value)."""
    kinds = ", ".join("?" * len(types))
    text = (
        "run_id IN (SELECT run_id FROM visibility_search_attributes WHERE namespace_id = ? "
        f"AND name = ? AND type IN ({kinds})"
    )
    params: tuple[Any, ...] = (ns, name, *types)
    if value is not None:
        text += f" AND {value.text}"
        params += value.params
    return _Sql(text + ")", params, True)


def _not(sql: _Sql) -> _Sql:
    return _Sql(f"NOT ({sql.text})", sql.params, True)


def _indexed_leaf(expr: Comparison | Between, negated: bool, ns: str) -> _Sql | None:
    """A comparison of an attribute kept in the row's search attributes, on its indexed values.

    The comparison is written as a core (`=`, `IN`, `STARTS_WITH`, BETWEEN, an ordering) and
    whether it is inverted (`!=`, `NOT IN`, NOT BETWEEN, ...). A KeywordList is never unknown:
    the core's semi-join, inverted or not. Any other attribute is unknown without a value, which
    only a NOT can tell from false: outside a NOT the answer must be true exactly when the
    comparison is, inside one false exactly when it is. Hence `has(core)` / `has(not core)` and
    their negations, where `has(not core)` is "a value, not passing the core"."""
    column, convert = _VALUE_COLUMNS[expr.type]
    core: Comparison | Between
    starts_with = False
    if isinstance(expr, Between):
        inverted, core = expr.negated, replace(expr, negated=False)
        value = _scalar(core, column, convert)
    else:
        inverted = expr.op in _INVERSES
        core = replace(expr, op=_INVERSES.get(expr.op, expr.op))
        starts_with = core.op == "STARTS_WITH"
        value = _prefix(core.value, column) if starts_with else _scalar(core, column, convert)
    if value is None:
        return _WIDER
    types = (KEYWORD, FOLDED_KEYWORD) if starts_with else (expr.type,)
    has = _indexed(ns, expr.attribute, types, value)
    if expr.type == KEYWORD_LIST:
        return _not(has) if inverted else has
    if starts_with:  # a Keyword and its lowered row: "a value, not passing" takes two
        present = _indexed(ns, expr.attribute, (KEYWORD,), None)
        has_not = _join(" AND ", [present, _not(has)], True)
    else:
        has_not = _indexed(ns, expr.attribute, types, _not(value))
    if negated:
        return _not(has) if inverted else _not(has_not)
    return has_not if inverted else has


def _prefix(prefix: str, column: str) -> _Sql:
    """Keyword STARTS_WITH on its ASCII-lowered form: a byte range (no UTF-8 byte is 0xFF)."""
    low = utf8(ascii_folded(prefix))
    return _Sql(f"{column} >= ? AND {column} < ?", (low, low + b"\xff"), True)
