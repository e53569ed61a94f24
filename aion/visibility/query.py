"""Temporal's visibility list-filter language: parse, validate and evaluate in memory.

`parse_query` turns the `query` string of ListWorkflowExecutions / CountWorkflowExecutions
into a `ListQuery` whose `matches(record)` evaluates the filter on one workflow's visibility
record (a mapping of search attribute name to Python value; a missing key is NULL).

Behaviour follows the reference Temporal server (1.32, SQL/SQLite visibility, as bundled in
the Temporal CLI dev server), including its error messages:

* Filters use SQL three-valued logic: a comparison on a NULL attribute is unknown, `NOT`
  of unknown is unknown, and a record matches only when the filter is true. KeywordList
  and Text comparisons never yield unknown: `!=` / `NOT IN` on a missing value is true.
* Keyword `STARTS_WITH` is case-insensitive for ASCII letters (SQLite `LIKE`); Keyword `=`,
  `IN` and ordering comparisons are case-sensitive.
* KeywordList `=` means "some element equals", compared case-insensitively (SQLite FTS).
* Text `=` is a full-text match, case-insensitive: the value is split on spaces and the
  record matches when any piece occurs as a run of words in the attribute (a word is a run
  of letters and digits). No stemming or diacritic folding.
* ExecutionStatus literals may be names (`'Running'`, `'WORKFLOW_EXECUTION_STATUS_RUNNING'`)
  or enum numbers; ordering compares enum numbers. ExecutionDuration literals may be
  nanoseconds or duration strings (`'1h30m'`, `'1.5s'`, `'2d'`, `'01:30:00'`).
* Datetime literals are RFC 3339 strings or integer Unix nanoseconds; values are compared at
  microsecond precision (Python `datetime`).
* A filter that does not mention TemporalNamespaceDivision only matches records without one
  (this hides internal workflows such as schedulers), as in Temporal.
* `ORDER BY` is rejected like Temporal's SQL visibility does, unless `allow_order_by=True`
  (Temporal's Elasticsearch visibility accepts it). `GROUP BY` takes one field, ExecutionStatus
  (or TemporalNamespaceDivision). `LIMIT` is rejected as in Temporal; so is `HAVING`, which
  Temporal silently ignores.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, TypeAlias, TypeGuard, TypeVar

from temporalio.api.enums.v1 import IndexedValueType

from aion.common import durations

SearchAttributeType: TypeAlias = int
"""A `temporalio.api.enums.v1.IndexedValueType` value."""

TEXT = IndexedValueType.INDEXED_VALUE_TYPE_TEXT
KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
INT = IndexedValueType.INDEXED_VALUE_TYPE_INT
DOUBLE = IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE
BOOL = IndexedValueType.INDEXED_VALUE_TYPE_BOOL
DATETIME = IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
KEYWORD_LIST = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST

PREDEFINED_SEARCH_ATTRIBUTES: dict[str, int] = {
    "BatcherNamespace": KEYWORD,
    "BatcherUser": KEYWORD,
    "BinaryChecksums": KEYWORD_LIST,
    "BuildIds": KEYWORD_LIST,
    "CloseTime": DATETIME,
    "ExecutionDuration": INT,
    "ExecutionStatus": KEYWORD,
    "ExecutionTime": DATETIME,
    "HistoryLength": INT,
    "HistorySizeBytes": INT,
    "ParentRunId": KEYWORD,
    "ParentWorkflowId": KEYWORD,
    "RootRunId": KEYWORD,
    "RootWorkflowId": KEYWORD,
    "RunId": KEYWORD,
    "StartTime": DATETIME,
    "StateTransitionCount": INT,
    "TaskQueue": KEYWORD,
    "TemporalChangeVersion": KEYWORD_LIST,
    "TemporalExternalPayloadCount": INT,
    "TemporalExternalPayloadSizeBytes": INT,
    "TemporalNamespaceDivision": KEYWORD,
    "TemporalPauseInfo": KEYWORD_LIST,
    "TemporalReportedProblems": KEYWORD_LIST,
    "TemporalSchedulePaused": BOOL,
    "TemporalScheduledById": KEYWORD,
    "TemporalScheduledStartTime": DATETIME,
    "TemporalUsedWorkerDeploymentVersions": KEYWORD_LIST,
    "TemporalWorkerDeployment": KEYWORD,
    "TemporalWorkerDeploymentVersion": KEYWORD,
    "TemporalWorkflowVersioningBehavior": KEYWORD,
    "WorkflowId": KEYWORD,
    "WorkflowType": KEYWORD,
}
"""Temporal's system search attributes (as a 1.32 server lists them) and their types."""

TYPE_NAMES: dict[int, str] = {
    IndexedValueType.INDEXED_VALUE_TYPE_UNSPECIFIED: "Unspecified",
    TEXT: "Text",
    KEYWORD: "Keyword",
    INT: "Int",
    DOUBLE: "Double",
    BOOL: "Bool",
    DATETIME: "Datetime",
    KEYWORD_LIST: "KeywordList",
}
"""Type names as Temporal prints them in messages."""

EXECUTION_STATUSES: tuple[str, ...] = (
    "Unspecified",
    "Running",
    "Completed",
    "Failed",
    "Canceled",
    "Terminated",
    "ContinuedAsNew",
    "TimedOut",
    "Paused",
)
"""ExecutionStatus names as queries use them, indexed by WorkflowExecutionStatus number."""

_STATUS_RANK: dict[str, int] = {name: i for i, name in enumerate(EXECUTION_STATUSES)}
_STATUS_BY_LITERAL: dict[str, str] = {
    **{name: name for name in EXECUTION_STATUSES},
    **{
        "WORKFLOW_EXECUTION_STATUS_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper(): name
        for name in EXECUTION_STATUSES
    },
}

EXECUTION_STATUS = "ExecutionStatus"
EXECUTION_DURATION = "ExecutionDuration"
NAMESPACE_DIVISION = "TemporalNamespaceDivision"
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
_INT64_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_INVALID = "invalid expression"
_UNSUPPORTED = "operation is not supported"


class QueryError(ValueError):
    """An invalid visibility query; the message is what Temporal answers as INVALID_ARGUMENT."""

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid query: {message}")


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident", "string", "number", "keyword", "op", "eof"
    text: str  # keywords upper-cased, strings and quoted names unescaped
    start: int
    end: int
    raw: str = ""

    @property
    def near(self) -> str | None:
        """What a syntax error at this token quotes (Temporal quotes words, not symbols)."""
        if self.kind == "keyword":
            return self.raw.lower()
        if self.kind in ("ident", "string", "number"):
            return self.text
        return None


_KEYWORDS = frozenset(
    {
        "AND", "OR", "NOT", "XOR", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "LIKE",
        "REGEXP", "STARTS_WITH", "ORDER", "GROUP", "BY", "ASC", "DESC", "LIMIT", "OFFSET",
        "HAVING",
    }
)  # fmt: skip
_OPERATOR_SYMBOLS = (  # longest first
    "<=>", "<=", ">=", "<>", "!=", "&&", "||",
    "=", "<", ">", "(", ")", ",", ";", "!", "~", "-", "+", "*", "/", "%",
)  # fmt: skip
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_IDENT = re.compile(r"[^\W\d]\w*")
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


class _SyntaxError(Exception):
    def __init__(self, end: int, near: str | None) -> None:
        super().__init__(end, near)
        self.end = end
        self.near = near


def _tokenize(src: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif c == "#" or src.startswith("--", i):
            newline = src.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif src.startswith("/*", i):
            close = src.find("*/", i + 2)
            if close < 0:
                raise _SyntaxError(n, None)
            i = close + 2
        elif c in "'\"`":
            text, end = _scan_quoted(src, i)
            tokens.append(_Token("ident" if c == "`" else "string", text, i, end))
            i = end
        elif c.isdigit() or (c == "." and src[i + 1 : i + 2].isdigit()):
            m = _NUMBER.match(src, i)
            if m is None:
                raise _SyntaxError(i + 1, None)
            tokens.append(_Token("number", m.group(), i, m.end()))
            i = m.end()
        elif (m := _IDENT.match(src, i)) is not None:
            word = m.group()
            kind = "keyword" if word.upper() in _KEYWORDS else "ident"
            text = word.upper() if kind == "keyword" else word
            tokens.append(_Token(kind, text, i, m.end(), word))
            i = m.end()
        else:
            symbol = next((s for s in _OPERATOR_SYMBOLS if src.startswith(s, i)), None)
            if symbol is None:
                raise _SyntaxError(i + 1, c)
            tokens.append(_Token("op", symbol, i, i + len(symbol)))
            i += len(symbol)
    tokens.append(_Token("eof", "", n, n))
    return tokens


def _scan_quoted(src: str, start: int) -> tuple[str, int]:
    """Unescape the string or `name` starting at `start`; return it and the end offset."""
    quote, out, i = src[start], [], start + 1
    while i < len(src):
        c = src[i]
        if c == "\\" and quote != "`" and i + 1 < len(src):
            out.append(_ESCAPES.get(src[i + 1], src[i + 1]))
            i += 2
        elif c == quote and src[i + 1 : i + 2] == quote:
            out.append(quote)
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise _SyntaxError(len(src), src[start + 1 :])


# --------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class _Raw:
    """A parsed, not yet validated, node; `go_type` names it the way Temporal's errors do."""

    go_type: ClassVar[str] = "sqlparser.Expr"


@dataclass(frozen=True)
class _RCol(_Raw):
    go_type = "*sqlparser.ColName"
    name: str


@dataclass(frozen=True)
class _RVal(_Raw):
    go_type = "*sqlparser.SQLVal"
    kind: str  # "string" or "number"
    text: str


@dataclass(frozen=True)
class _RBool(_Raw):
    go_type = "sqlparser.BoolVal"
    value: bool


@dataclass(frozen=True)
class _RNull(_Raw):
    go_type = "*sqlparser.NullVal"


@dataclass(frozen=True)
class _RTuple(_Raw):
    go_type = "sqlparser.ValTuple"
    items: tuple[_Raw, ...]


@dataclass(frozen=True)
class _RUnary(_Raw):
    go_type = "*sqlparser.UnaryExpr"
    op: str
    operand: _Raw
    source: str


@dataclass(frozen=True)
class _RArith(_Raw):
    go_type = "*sqlparser.BinaryExpr"


@dataclass(frozen=True)
class _RFunc(_Raw):
    go_type = "*sqlparser.FuncExpr"


@dataclass(frozen=True)
class _RParen(_Raw):
    go_type = "*sqlparser.ParenExpr"
    inner: _Raw


@dataclass(frozen=True)
class _RLogic(_Raw):
    op: str  # "AND" or "OR"
    left: _Raw
    right: _Raw


@dataclass(frozen=True)
class _RNot(_Raw):
    operand: _Raw


@dataclass(frozen=True)
class _RCompare(_Raw):
    op: str
    left: _Raw
    right: _Raw


@dataclass(frozen=True)
class _RRange(_Raw):
    negated: bool
    left: _Raw
    low: _Raw
    high: _Raw


@dataclass(frozen=True)
class _RIs(_Raw):
    op: str  # "NULL", "NOT NULL", "TRUE", ...
    operand: _Raw


@dataclass
class _Statement:
    where: _Raw | None = None
    group_by: list[_Raw] = field(default_factory=list)
    having: bool = False
    order_by: list[tuple[_Raw, bool]] = field(default_factory=list)
    limit: bool = False


def _is_integer(node: _Raw) -> TypeGuard[_RVal]:
    return isinstance(node, _RVal) and node.kind == "number" and node.text.isdigit()


class _Parser:
    """Recursive descent over MySQL's expression grammar, as far as Temporal accepts it."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = _tokenize(src)
        self.pos = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("keyword", "op") and self.tok.text in texts

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise self.error()
        self.advance()

    def error(self) -> _SyntaxError:
        return _SyntaxError(self.tok.end, self.tok.near)

    def statement(self, has_where: bool) -> _Statement:
        st = _Statement()
        if has_where:
            st.where = self.disjunction()
        if self.at("GROUP"):
            self.advance()
            self.expect("BY")
            st.group_by.append(self.operand())
            while self.at(","):
                self.advance()
                st.group_by.append(self.operand())
        if self.at("HAVING"):
            self.advance()
            self.disjunction()
            st.having = True
        if self.at("ORDER"):
            self.advance()
            self.expect("BY")
            st.order_by.append(self.order_item())
            while self.at(","):
                self.advance()
                st.order_by.append(self.order_item())
        if self.at("LIMIT"):
            self.advance()
            self.operand()
            if self.at(",", "OFFSET"):
                self.advance()
                self.operand()
            st.limit = True
        if self.at(";"):
            self.advance()
        if self.tok.kind != "eof":
            raise self.error()
        return st

    def order_item(self) -> tuple[_Raw, bool]:
        item = self.operand()
        if self.at("ASC", "DESC"):
            return item, self.advance().text == "DESC"
        return item, False

    def disjunction(self) -> _Raw:
        node = self.conjunction()
        while self.at("OR", "||"):
            self.advance()
            node = _RLogic("OR", node, self.conjunction())
        return node

    def conjunction(self) -> _Raw:
        node = self.negation()
        while self.at("AND", "&&"):
            self.advance()
            node = _RLogic("AND", node, self.negation())
        return node

    def negation(self) -> _Raw:
        if self.at("NOT"):
            self.advance()
            return _RNot(self.negation())
        return self.predicate()

    def predicate(self) -> _Raw:
        left = self.operand()
        if self.at("=", "!=", "<>", "<", "<=", ">", ">=", "<=>"):
            op = self.advance().text
            return _RCompare("!=" if op == "<>" else op, left, self.operand())
        if self.at("IS"):
            self.advance()
            negated = self.at("NOT")
            if negated:
                self.advance()
            if not self.at("NULL", "TRUE", "FALSE"):
                raise self.error()
            return _RIs(("NOT " if negated else "") + self.advance().text, left)
        negated = self.at("NOT")
        if negated:
            self.advance()
            if not self.at("IN", "BETWEEN", "LIKE", "REGEXP", "STARTS_WITH"):
                raise self.error()
        prefix = "NOT " if negated else ""
        if self.at("IN"):
            self.advance()
            return _RCompare(prefix + "IN", left, self.value_list())
        if self.at("BETWEEN"):
            self.advance()
            low = self.operand()
            self.expect("AND")
            return _RRange(negated, left, low, self.operand())
        if self.at("LIKE", "REGEXP", "STARTS_WITH"):
            op = self.advance().text
            return _RCompare(prefix + op, left, self.operand())
        return left

    def value_list(self) -> _RTuple:
        self.expect("(")
        items = [self.operand()]
        while self.at(","):
            self.advance()
            items.append(self.operand())
        self.expect(")")
        return _RTuple(tuple(items))

    def operand(self) -> _Raw:
        node = self.term()
        while self.at("+", "-", "*", "/", "%"):
            self.advance()
            self.term()
            node = _RArith()
        return node

    def term(self) -> _Raw:
        tok = self.tok
        if tok.kind == "op" and tok.text in ("-", "+", "!", "~"):
            self.advance()
            inner = self.term()
            if _is_integer(inner) and tok.text == "-":  # MySQL folds "-<integer>" into one literal
                return _RVal("number", "-" + inner.text)
            return _RUnary(tok.text, inner, self.src[tok.start : self.tokens[self.pos - 1].end])
        if tok.kind == "op" and tok.text == "(":
            self.advance()
            items = [self.disjunction()]
            while self.at(","):
                self.advance()
                items.append(self.disjunction())
            self.expect(")")
            return _RParen(items[0]) if len(items) == 1 else _RTuple(tuple(items))
        if tok.kind == "ident":
            self.advance()
            if tok.raw and self.at("("):
                self.function_args()
                return _RFunc()
            return _RCol(tok.text)
        if tok.kind in ("string", "number"):
            self.advance()
            return _RVal(tok.kind, tok.text)
        if self.at("TRUE", "FALSE"):
            return _RBool(self.advance().text == "TRUE")
        if self.at("NULL"):
            self.advance()
            return _RNull()
        raise self.error()

    def function_args(self) -> None:
        self.expect("(")
        while not self.at(")"):
            if self.at("*"):
                self.advance()
            else:
                self.disjunction()
            if not self.at(","):
                break
            self.advance()
        self.expect(")")


# --------------------------------------------------------------------------- filter AST


def _record_value(record: Mapping[str, Any], name: str, sa_type: int) -> Any:
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


def _order_key(name: str, value: Any) -> Any:
    return _STATUS_RANK.get(value) if name == EXECUTION_STATUS else value


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
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
        actual = _record_value(record, self.attribute, self.type)
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
                prefix = self.value.translate(_ASCII_LOWER)
                return actual.translate(_ASCII_LOWER).startswith(prefix) != negated
            if self.op in ("IN", "NOT IN"):
                return (actual in self.value) != negated
            left = _order_key(self.attribute, actual)
            if left is None:
                return None
            return _COMPARE[self.op](left, _order_key(self.attribute, self.value))
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
        actual = _order_key(self.attribute, _record_value(record, self.attribute, self.type))
        if actual is None:
            return None
        low = _order_key(self.attribute, self.low)
        high = _order_key(self.attribute, self.high)
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
        return (_record_value(record, self.attribute, self.type) is None) != self.negated


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


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Column:
    name: str  # resolved search attribute name
    alias: str  # as written in the query
    type: int


def _go_value(value: Any) -> tuple[str, str]:
    """A literal as Go's `%#v` and `%T` print it, for Temporal's value type errors."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "bool"
    if isinstance(value, int):
        return str(value), "int64"
    if isinstance(value, float):
        text = repr(value)
        return text.removesuffix(".0"), "float64"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"', "string"


def _parse_number(text: str) -> int | float | None:
    if text.removeprefix("-").isdigit():
        number = int(text)
        return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else float(number)
    try:
        return float(text)
    except ValueError:
        return None


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:(Z)|([+-])(\d\d):(\d\d))", re.ASCII
)


def parse_datetime(text: str) -> datetime | None:
    """An RFC 3339 timestamp (as Go's time.RFC3339Nano parses) in UTC, or None."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    try:
        tz = UTC
        if m.group(8) is None:
            offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
            tz = timezone(-offset if m.group(9) == "-" else offset)
        moment = datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def datetime_from_nanos(nanos: int) -> datetime:
    """A Unix-nanosecond timestamp as a UTC datetime (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=nanos // 1000)


_HHMMSS = re.compile(r"(\d+):([0-5]\d):([0-5]\d)", re.ASCII)


def parse_duration(text: str) -> int | None:
    """Nanoseconds from `'123'` (nanos), Go durations (`'1h30m'`, `'-1.5s'`, `'2d'`) or
    `'hh:mm:ss'`; None if none of these."""
    if re.fullmatch(r"[-+]?\d+", text, re.ASCII):
        return int(text)
    if m := _HHMMSS.fullmatch(text):
        return ((int(m[1]) * 60 + int(m[2])) * 60 + int(m[3])) * 1_000_000_000
    try:
        return durations.parse_temporal_duration(text)
    except durations.GoError:
        return None


class _Converter:
    """Validates a parsed statement against the namespace's search attributes."""

    def __init__(self, types: Mapping[str, int]) -> None:
        self.types = types
        self.mentions_division = False
        self.columns: list[tuple[str, str]] = []

    def column(self, node: _Raw) -> _Column:
        if not isinstance(node, _RCol):
            raise QueryError(f"{_INVALID}: must be a column name but was {node.go_type}")
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

    def filter(self, node: _Raw) -> Expr:
        match node:
            case _RParen(inner):
                return self.filter(inner)
            case _RNot(operand):
                return Not(self.filter(operand))
            case _RLogic(op, left, right):
                kind = And if op == "AND" else Or
                parts: list[Expr] = []
                for side in (self.filter(left), self.filter(right)):
                    parts.extend(side.operands if isinstance(side, kind) else (side,))
                return kind(tuple(parts))
            case _RCompare():
                return self.comparison(node)
            case _RRange(negated, left, low, high):
                col = self.column(left)
                if col.type not in _RANGE_TYPES:
                    raise QueryError(
                        f"{_INVALID}: cannot do range condition on search attribute "
                        f"'{col.alias}' of type {TYPE_NAMES.get(col.type, col.type)}"
                    )
                return Between(
                    col.name, col.type, self.scalar(low, col), self.scalar(high, col), negated
                )
            case _RIs(op, operand):
                col = self.column(operand)
                if op not in ("NULL", "NOT NULL"):
                    raise QueryError(
                        f"{_INVALID}: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'"
                    )
                return IsNull(col.name, col.type, op == "NOT NULL")
            case _RFunc():
                raise QueryError(f"{_UNSUPPORTED}: function expression")
            case _RCol():
                raise QueryError(f"{_INVALID}: incomplete expression")
        raise QueryError(f"{_UNSUPPORTED}: expression of type {node.go_type}")

    def comparison(self, node: _RCompare) -> Comparison:
        col = self.column(node.left)
        value = self.value(node.right, col)
        allowed = _OPERATORS.get(col.type, _SCALAR_OPERATORS)
        if node.op not in allowed:
            raise QueryError(
                f"{_UNSUPPORTED}: operator '{node.op}' not supported for "
                f"{TYPE_NAMES.get(col.type, col.type)} type search attribute '{col.alias}'"
            )
        if isinstance(value, tuple) != node.op.endswith("IN"):
            raise QueryError(
                f"{_INVALID}: operator '{node.op}' on search attribute '{col.alias}' "
                + ("needs a list of values" if node.op.endswith("IN") else "needs a single value")
            )
        return Comparison(col.name, col.type, node.op, value)

    def scalar(self, node: _Raw, col: _Column) -> Any:
        value = self.value(node, col)
        if isinstance(value, tuple):
            raise QueryError(
                f"{_INVALID}: a list of values is not allowed here for search attribute "
                f"'{col.alias}'"
            )
        return value

    def value(self, node: _Raw, col: _Column) -> Any:
        match node:
            case _RVal(kind, text):
                literal: Any = text
                if kind == "number" and (literal := _parse_number(text)) is None:
                    raise QueryError(f'{_INVALID}: unable to parse value "{text}"')
                if col.name == EXECUTION_STATUS:
                    return _status_value(literal)
                if col.name == EXECUTION_DURATION:
                    return _duration_value(literal)
                return self.typed(literal, col)
            case _RBool(value):
                return self.typed(value, col)
            case _RTuple(items):
                return tuple(self.scalar(item, col) for item in items)
            case _RUnary(op, operand, source):
                if op not in ("-", "+"):
                    raise QueryError(f'{_UNSUPPORTED}: unary operator "{op}"')
                if not (isinstance(operand, _RVal) and operand.kind == "number"):
                    raise QueryError(f'{_INVALID}: unary operator not supported in "{source}"')
                value = self.value(operand, col)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise QueryError(f'{_INVALID}: unary expression "{source}"')
                return -value if op == "-" else value
            case _RFunc():
                raise QueryError(f"{_UNSUPPORTED}: nested func")
            case _RCol(name):
                raise QueryError(
                    f"{_UNSUPPORTED}: column name on the right side of comparison expression "
                    f'(did you forget to quote "{name}"?)'
                )
        raise QueryError(f"{_INVALID}: unexpected value type {node.go_type}")

    def typed(self, value: Any, col: _Column) -> Any:
        """Check a literal against the attribute's type; datetimes become `datetime`s."""
        shown, go_type = _go_value(value)
        type_name = TYPE_NAMES.get(col.type, str(col.type))
        mismatch = QueryError(
            f"{_INVALID}: invalid value type for search attribute {col.alias} of type "
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
                raise QueryError(f"{_INVALID}: unable to parse datetime '{value}'")
            return moment
        if col.type in (KEYWORD, KEYWORD_LIST, TEXT):
            if not isinstance(value, str):
                raise mismatch
            if col.type == TEXT and not value.strip():
                raise QueryError(
                    f"{_INVALID}: no tokens found filtering on Text type search attribute "
                    f"{col.alias}"
                )
            return value
        raise QueryError(f"{_INVALID}: unknown search attribute type {type_name} for {col.alias}")


def _status_value(literal: float | str) -> str:
    if isinstance(literal, str):
        if literal in _STATUS_BY_LITERAL:
            return _STATUS_BY_LITERAL[literal]
        raise QueryError(f"{_INVALID}: invalid {EXECUTION_STATUS} value '{literal}'")
    if isinstance(literal, int):
        if 0 <= literal < len(EXECUTION_STATUSES):
            return EXECUTION_STATUSES[literal]
        raise QueryError(f"{_INVALID}: invalid {EXECUTION_STATUS} value {literal}")
    raise QueryError(
        f"{_INVALID}: unexpected value type float64 for search attribute {EXECUTION_STATUS}"
    )


def _duration_value(literal: float | str) -> int:
    if isinstance(literal, int):
        return literal
    if isinstance(literal, str):
        nanos = parse_duration(literal)
        if nanos is None:
            raise QueryError(
                f"{_INVALID}: invalid duration value for search attribute "
                f"{EXECUTION_DURATION}: {literal}"
            )
        return nanos
    raise QueryError(
        f"{_INVALID}: unexpected value type float64 for search attribute {EXECUTION_DURATION}"
    )


# --------------------------------------------------------------------------- public API


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
        statement = _Parser(src).statement(has_where)
    except _SyntaxError as e:
        # Temporal parses "select * from table1 where <query>"; positions count from there.
        prefix = len("select * from table1 where " if has_where else "select * from table1 ")
        position = prefix + len(src[: e.end].encode()) + 1
        near = f" near '{e.near}'" if e.near is not None else ""
        raise QueryError(
            f"malformed SQL query: syntax error at position {position}{near}"
        ) from None

    if statement.limit:
        raise QueryError(f"{_UNSUPPORTED}: 'LIMIT' clause")
    if statement.having:
        raise QueryError(f"{_UNSUPPORTED}: 'HAVING' clause")
    converter = _Converter(types)
    query = ListQuery()
    if statement.where is not None:
        query.where = converter.filter(statement.where)
    if len(statement.group_by) > 1:
        raise QueryError(f"{_UNSUPPORTED}: 'GROUP BY' clause supports only a single field")
    for node in statement.group_by:
        col = converter.column(node)
        if col.name not in _GROUP_BY_ALLOWED:
            raise QueryError(
                f"{_UNSUPPORTED}: 'GROUP BY' clause is not supported for search attribute "
                f"{col.alias}"
            )
        query.group_by.append(col.name)
    for node, descending in statement.order_by:
        col = converter.column(node)
        if col.type == TEXT:
            raise QueryError(f"{_UNSUPPORTED}: unable to sort by search attribute type Text")
        query.order_by.append((col.name, descending))
    if query.order_by and not allow_order_by:
        raise QueryError(f"{_UNSUPPORTED}: 'ORDER BY' clause")
    if query.order_by and query.group_by:
        raise QueryError(
            f"{_UNSUPPORTED}: 'ORDER BY' clause is not supported with 'GROUP BY' clause"
        )
    query.mentions_namespace_division = converter.mentions_division
    query.columns = converter.columns
    return query


R = TypeVar("R", bound=Mapping[str, Any])

_DEFAULT_ORDER: tuple[tuple[str, bool, bool], ...] = (
    ("CloseTime", True, True),  # open executions (no CloseTime) first
    ("StartTime", True, False),
    ("RunId", False, False),
)


def sort_records(records: Iterable[R], order_by: Sequence[tuple[str, bool]]) -> list[R]:
    """Sort records as Temporal lists them.

    Without `order_by`: open executions first, then CloseTime descending, StartTime
    descending, RunId ascending (Temporal's SQL visibility order). With it: by each
    (name, descending) key, missing values last, then RunId ascending as tie-breaker.
    """
    keys: list[tuple[str, bool, bool]]
    if order_by:
        keys = [(name, desc, False) for name, desc in order_by]
        if all(name != "RunId" for name, _ in order_by):
            keys.append(("RunId", False, False))
    else:
        keys = list(_DEFAULT_ORDER)

    def compare(a: R, b: R) -> int:
        for name, descending, nulls_first in keys:
            va = _order_key(name, _plain_value(a, name))
            vb = _order_key(name, _plain_value(b, name))
            if va is None and vb is None:
                continue
            if va is None or vb is None:
                a_first = (va is None) == nulls_first
                return -1 if a_first else 1
            if va == vb:
                continue
            result = -1 if va < vb else 1
            return -result if descending else result
        return 0

    return sorted(records, key=functools.cmp_to_key(compare))


def _plain_value(record: Mapping[str, Any], name: str) -> Any:
    value = _record_value(record, name, KEYWORD)
    return tuple(value) if isinstance(value, list) else value


def group_counts(
    records: Iterable[Mapping[str, Any]], group_by: Sequence[str]
) -> list[tuple[tuple[Any, ...], int]]:
    """Count records per distinct value tuple of `group_by` (None for a missing value, which
    Temporal reports as an empty string).

    Groups come in ascending order (ExecutionStatus by enum number), as Temporal returns
    them; without `group_by` there are no groups.
    """
    if not group_by:
        return []
    counts: dict[tuple[Any, ...], int] = {}
    for record in records:
        key = tuple(_plain_value(record, name) for name in group_by)
        counts[key] = counts.get(key, 0) + 1

    def sort_key(item: tuple[tuple[Any, ...], int]) -> tuple[tuple[bool, Any], ...]:
        return tuple(
            (v is not None, _order_key(name, v) if v is not None else 0)
            for name, v in zip(group_by, item[0], strict=True)
        )

    return sorted(counts.items(), key=sort_key)
