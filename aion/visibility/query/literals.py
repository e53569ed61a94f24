"""Literal values of the query language: numbers, datetimes, durations and statuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aion.common import durations
from aion.visibility.query.schema import (
    EXECUTION_DURATION,
    EXECUTION_STATUS,
    EXECUTION_STATUSES,
    INVALID,
    STATUS_BY_LITERAL,
    QueryError,
)

_INT64_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def go_value(value: Any) -> tuple[str, str]:
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


def parse_number(text: str) -> int | float | None:
    """A numeric literal: an int within int64, else a float; None if not a number."""
    if text.removeprefix("-").isdigit():
        number = int(text)
        return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else float(number)
    try:
        return float(text)
    except ValueError:
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


def status_value(literal: float | str) -> str:
    """An ExecutionStatus literal (name or enum number) as its status name."""
    if isinstance(literal, str):
        if literal in STATUS_BY_LITERAL:
            return STATUS_BY_LITERAL[literal]
        raise QueryError(f"{INVALID}: invalid {EXECUTION_STATUS} value '{literal}'")
    if isinstance(literal, int):
        if 0 <= literal < len(EXECUTION_STATUSES):
            return EXECUTION_STATUSES[literal]
        raise QueryError(f"{INVALID}: invalid {EXECUTION_STATUS} value {literal}")
    raise QueryError(
        f"{INVALID}: unexpected value type float64 for search attribute {EXECUTION_STATUS}"
    )


def duration_value(literal: float | str) -> int:
    """An ExecutionDuration literal (nanoseconds or duration string) in nanoseconds."""
    if isinstance(literal, int):
        return literal
    if isinstance(literal, str):
        nanos = parse_duration(literal)
        if nanos is None:
            raise QueryError(
                f"{INVALID}: invalid duration value for search attribute "
                f"{EXECUTION_DURATION}: {literal}"
            )
        return nanos
    raise QueryError(
        f"{INVALID}: unexpected value type float64 for search attribute {EXECUTION_DURATION}"
    )
