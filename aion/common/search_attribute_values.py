"""Search attribute values as Temporal decodes them from their payloads (JSON as Go's SDK reads
it), for the checks on writes, the list filter, and the values visibility indexes."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.enums.v1 import IndexedValueType

TEXT = IndexedValueType.INDEXED_VALUE_TYPE_TEXT
KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
INT = IndexedValueType.INDEXED_VALUE_TYPE_INT
DOUBLE = IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE
BOOL = IndexedValueType.INDEXED_VALUE_TYPE_BOOL
DATETIME = IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
KEYWORD_LIST = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST


class SearchAttributeError(ValueError):
    """Invalid search attributes; the message is Temporal's (INVALID_ARGUMENT on a request,
    BAD_SEARCH_ATTRIBUTES on a command)."""


class _Undecodable(Exception):
    pass


def _decode_payload(payload: common_pb.Payload) -> Any:
    """The payload as Go's SDK decodes it into `any` (JSON values, bytes, None)."""
    encoding = payload.metadata.get("encoding")
    if encoding == b"binary/null":
        return None
    if encoding == b"binary/plain":
        return bytes(payload.data)
    if encoding != b"json/plain":
        raise _Undecodable

    try:
        value = json.loads(payload.data, parse_constant=_reject, parse_float=_finite_float)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        raise _Undecodable from None
    if not _fits_float64(value):
        raise _Undecodable
    return value


def _reject(constant: str) -> Any:
    raise ValueError(constant)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)  # Go's decoder rejects numbers beyond float64
    return value


def _fits_float64(value: Any) -> bool:
    if type(value) is int:
        return abs(value) < 2**1024
    if type(value) is list:
        return all(_fits_float64(v) for v in value)
    if type(value) is dict:
        return all(_fits_float64(v) for v in value.values())
    return True


def _is_int64(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def _conforms(value: Any, sa_type: int) -> bool:
    """Whether a decoded JSON value (not None) is one value of `sa_type`."""
    if sa_type == INT:
        return _is_int64(value)
    if sa_type == DOUBLE:
        return type(value) in (int, float)
    if sa_type == BOOL:
        return type(value) is bool
    if sa_type in (KEYWORD, TEXT):
        return type(value) is str
    if sa_type == DATETIME:
        return type(value) is str and parse_datetime(value) is not None
    if sa_type == KEYWORD_LIST:
        return type(value) is list and all(v is None or type(v) is str for v in value)
    return False


_ZERO: dict[int, Any] = {INT: 0, DOUBLE: 0, BOOL: False, KEYWORD: "", TEXT: "", KEYWORD_LIST: None}


def decode_value(payload: common_pb.Payload, sa_type: int) -> Any:
    """The value of a search attribute payload of `sa_type`, as Temporal decodes it: None means
    unset (null, empty list); a one-element list stands for its element (for KeywordList, a list
    of one list). KeywordList values are lists of strings; Datetime values stay strings.
    Raises SearchAttributeError with Temporal's message for a value of the wrong type."""
    try:
        value = _decode_payload(payload)
    except _Undecodable:
        raise SearchAttributeError(f"value from <{_payload_text(payload)}>") from None
    return _typed(value, sa_type)


def _typed(value: Any, sa_type: int) -> Any:
    """A decoded payload as a value of `sa_type` (see `decode_value`)."""
    if isinstance(value, bytes):
        raise SearchAttributeError(_go_format(value))
    if value is None:
        return None
    if _conforms(value, sa_type):
        if sa_type == KEYWORD_LIST:
            return [v or "" for v in value] or None
        return value
    if type(value) is list and all(v is None or _conforms(v, sa_type) for v in value):
        items = [_ZERO.get(sa_type) if v is None else v for v in value]
        if not items:
            return None
        if len(items) == 1:
            item = items[0]
            if sa_type == KEYWORD_LIST:
                return [v or "" for v in item] if item else None
            return item
    raise SearchAttributeError(_go_format(value))


def _payload_text(payload: common_pb.Payload) -> str:
    """A Payload in protobuf text format, spaced as the reference server prints it."""
    parts = [
        f"metadata:{{key:{_quote(k.encode())}  value:{_quote(v)}}}"
        for k, v in sorted(payload.metadata.items())
    ]
    parts.append(f"data:{_quote(payload.data)}")
    return "  ".join(parts)


def _quote(data: bytes) -> str:
    out = []
    for b in data:
        c = chr(b)
        if c in '\\"':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _go_format(value: Any) -> str:
    """`fmt.Sprintf("%v", value)` for a value Go decoded from JSON into `any`."""
    if value is None:
        return "<nil>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_float(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _go_float(x: float) -> str:
    """Go's `%v` of a float64: the shortest digits that round-trip, in exponent form when the
    exponent is below -4 or 6 and above (strconv's 'g' with shortest precision)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # decimal point position after `point` digits
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def query_value(payload: common_pb.Payload, sa_type: int) -> Any:
    """The value the list-filter engine sees (None when unset or of the wrong type)."""
    try:
        return _query_form(decode_value(payload, sa_type), sa_type)
    except SearchAttributeError:
        return None


def _query_form(value: Any, sa_type: int) -> Any:
    if sa_type == DATETIME and isinstance(value, str):
        return parse_datetime(value)
    return value


INDEXED_TYPES = (KEYWORD, INT, DOUBLE, BOOL, DATETIME, KEYWORD_LIST)
"""The types whose values visibility indexes (Text is matched in memory)."""


def indexed_values(payload: common_pb.Payload) -> dict[int, Any]:
    """The payload's value as each indexed type it decodes as (`query_value` of every type in
    `INDEXED_TYPES` that is not None), the payload decoded once. An attribute's type is the
    namespace's at query time, so a value is indexed as every type it could be read as."""
    try:
        value = _decode_payload(payload)
    except _Undecodable:
        return {}
    values: dict[int, Any] = {}
    for sa_type in INDEXED_TYPES:
        try:
            typed = _query_form(_typed(value, sa_type), sa_type)
        except SearchAttributeError:
            continue
        if typed is not None:
            values[sa_type] = typed
    return values


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_folded(text: str) -> str:
    """`text` with ASCII letters lowered, as Keyword STARTS_WITH compares (SQLite's LIKE)."""
    return text.translate(_ASCII_LOWER)


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
