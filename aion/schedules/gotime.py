"""Go's time semantics where Temporal's schedule engine depends on them.

Temporal computes schedule times with Go's `time` package, whose answers differ from Python's in
a few places that matter: how a wall-clock time that a DST change skips or repeats becomes an
instant (`time.Date`), which zone names load (`time.LoadLocation`), and the duration syntax
(`time.ParseDuration`). This module reproduces those answers.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import os
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SECOND_NS = 1_000_000_000
MAX_INT64 = (1 << 63) - 1
UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": SECOND_NS,
    "m": 60 * SECOND_NS,
    "h": 3600 * SECOND_NS,
}


class GoError(ValueError):
    """An error with the text Go's standard library gives for the same input."""


def quote(text: str) -> str:
    """Go's `strconv.Quote` for the printable strings that appear in error messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- zones ---------------------------------------------------------------------------------


def load_location(name: str) -> dt.tzinfo:
    """`time.LoadLocation`: "" and "UTC" are UTC, "Local" is the process's zone."""
    if name in ("", "UTC"):
        return dt.UTC
    if name == "Local":
        return _local_zone()
    if ".." in name or name[0] in "/\\":
        raise GoError("time: invalid location name")
    return _zone(name)


@lru_cache(maxsize=256)
def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise GoError(f"unknown time zone {name}") from None


def load_location_from_tzdata(name: str, data: bytes) -> dt.tzinfo:
    """`time.LoadLocationFromTZData`: a zone from the bytes of a TZif file."""
    try:
        return ZoneInfo.from_file(io.BytesIO(data), key=name)
    except ValueError:
        raise GoError("malformed time zone information") from None


def _local_zone() -> dt.tzinfo:
    """Go's `time.Local`: $TZ if set (empty means UTC), else /etc/localtime, else UTC."""
    tz = os.environ.get("TZ")
    try:
        if tz is None:
            with open("/etc/localtime", "rb") as f:
                return ZoneInfo.from_file(f, key="Local")
        return ZoneInfo(tz.removeprefix(":")) if tz else dt.UTC
    except (ValueError, OSError, ZoneInfoNotFoundError):
        return dt.UTC


# --- wall clock <-> instant ----------------------------------------------------------------


def offset(unix: int, tz: dt.tzinfo) -> int:
    """The zone's UTC offset in seconds at the instant `unix`."""
    if tz is dt.UTC:
        return 0
    off = dt.datetime.fromtimestamp(unix, tz).utcoffset()
    return int(off.total_seconds()) if off else 0


def wall(unix: int, tz: dt.tzinfo) -> dt.datetime:
    """The wall-clock time (naive) at the instant `unix` in `tz`."""
    return dt.datetime.fromtimestamp(unix, tz).replace(tzinfo=None)


def go_weekday(day: dt.date) -> int:
    """Go's weekday numbering: Sunday is 0."""
    return day.isoweekday() % 7


def date(
    year: int, month: int, day: int, hour: int, minute: int, second: int, tz: dt.tzinfo
) -> int:
    """`time.Date(...).Unix()`: out-of-range fields carry over, as in Go.

    A wall time that a DST change skips or repeats gets the offset Go picks: Go reads the zone's
    offset at the wall time taken as if it were UTC, then the offset at the instant that gives.
    So in zones west of UTC a skipped time lands an hour early (2:30 → 1:30) and a repeated time
    is its first occurrence; east of UTC a repeated time is its second occurrence.
    """
    years, month0 = divmod(month - 1, 12)
    days = calendar.timegm((year + years, month0 + 1, 1, 0, 0, 0)) // 86400 + day - 1
    local = days * 86400 + hour * 3600 + minute * 60 + second
    return local - offset(local - offset(local, tz), tz)


# --- durations -----------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """`time.ParseDuration`, in nanoseconds, with Go's error texts."""
    invalid = GoError(f"time: invalid duration {quote(text)}")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or "0" <= rest[0] <= "9"):
            raise invalid
        whole_digits = _leading_digits(rest)
        whole = int(whole_digits) if whole_digits else 0
        if whole > 1 << 63:
            raise invalid
        rest = rest[len(whole_digits) :]
        fraction, scale, has_fraction = 0, 1.0, False
        if rest.startswith("."):
            fraction_digits = _leading_digits(rest[1:])
            rest = rest[1 + len(fraction_digits) :]
            has_fraction = bool(fraction_digits)
            fraction, scale = _leading_fraction(fraction_digits)
        if not whole_digits and not has_fraction:
            raise invalid
        unit_len = 0
        while unit_len < len(rest) and not (rest[unit_len] == "." or "0" <= rest[unit_len] <= "9"):
            unit_len += 1
        if unit_len == 0:
            raise GoError(f"time: missing unit in duration {quote(text)}")
        unit_text, rest = rest[:unit_len], rest[unit_len:]
        unit = UNIT_NS.get(unit_text)
        if unit is None:
            raise GoError(f"time: unknown unit {quote(unit_text)} in duration {quote(text)}")
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if fraction:
            # Go adds the fraction in float64 arithmetic; so does Python's float.
            value += int(float(fraction) * (float(unit) / scale))
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > MAX_INT64:
        raise invalid
    return total


def _leading_digits(text: str) -> str:
    end = 0
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return text[:end]


def _leading_fraction(digits: str) -> tuple[int, float]:
    """Go's leadingFraction: digits stop adding precision once the value would overflow."""
    value, scale = 0, 1.0
    for digit in digits:
        if value > MAX_INT64 // 10 or value * 10 + int(digit) > 1 << 63:
            break
        value = value * 10 + int(digit)
        scale *= 10
    return value, scale


def go_duration_ns(seconds: int, nanos: int) -> int:
    """`durationpb.Duration.AsDuration()`: nanoseconds, saturating at the int64 limits."""
    return max(-MAX_INT64 - 1, min(MAX_INT64, seconds * SECOND_NS + nanos))
