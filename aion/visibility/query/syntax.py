"""The parsed, not yet validated, syntax tree of a list filter.

Node classes carry `go_type`, the name Temporal's error messages give such a node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Raw:
    """A parsed, not yet validated, node; `go_type` names it the way Temporal's errors do."""

    go_type: ClassVar[str] = "sqlparser.Expr"


@dataclass(frozen=True)
class RawColumn(Raw):
    go_type = "*sqlparser.ColName"
    name: str


@dataclass(frozen=True)
class RawValue(Raw):
    go_type = "*sqlparser.SQLVal"
    kind: str  # "string" or "number"
    text: str


@dataclass(frozen=True)
class RawBool(Raw):
    go_type = "sqlparser.BoolVal"
    value: bool


@dataclass(frozen=True)
class RawNull(Raw):
    go_type = "*sqlparser.NullVal"


@dataclass(frozen=True)
class RawTuple(Raw):
    go_type = "sqlparser.ValTuple"
    items: tuple[Raw, ...]


@dataclass(frozen=True)
class RawUnary(Raw):
    go_type = "*sqlparser.UnaryExpr"
    op: str
    operand: Raw
    source: str


@dataclass(frozen=True)
class RawArithmetic(Raw):
    go_type = "*sqlparser.BinaryExpr"


@dataclass(frozen=True)
class RawFunction(Raw):
    go_type = "*sqlparser.FuncExpr"


@dataclass(frozen=True)
class RawParen(Raw):
    go_type = "*sqlparser.ParenExpr"
    inner: Raw


@dataclass(frozen=True)
class RawLogic(Raw):
    op: str  # "AND" or "OR"
    left: Raw
    right: Raw


@dataclass(frozen=True)
class RawNot(Raw):
    operand: Raw


@dataclass(frozen=True)
class RawCompare(Raw):
    op: str
    left: Raw
    right: Raw


@dataclass(frozen=True)
class RawRange(Raw):
    negated: bool
    left: Raw
    low: Raw
    high: Raw


@dataclass(frozen=True)
class RawIs(Raw):
    op: str  # "NULL", "NOT NULL", "TRUE", ...
    operand: Raw


@dataclass
class Statement:
    """The clauses of a parsed query; HAVING and LIMIT are only noted, to be rejected."""

    where: Raw | None = None
    group_by: list[Raw] = field(default_factory=list)
    having: bool = False
    order_by: list[tuple[Raw, bool]] = field(default_factory=list)
    limit: bool = False
