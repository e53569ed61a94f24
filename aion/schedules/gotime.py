"""Go's time semantics where Temporal's schedule engine depends on them.

Temporal computes schedule times with Go's `time` package, whose answers differ from Python's in
a few places that matter: how a wall-clock time that a DST change skips or repeats becomes an
instant (`time.Date`) and which zone names load (`time.LoadLocation`). This module reproduces
those answers; Go's duration syntax is `aion.common.durations`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import os
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aion.common.durations import GoError

SECOND_NS = 1_000_000_000


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
