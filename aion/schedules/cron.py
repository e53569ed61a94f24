"""Schedule cron strings and CalendarSpec strings, parsed into structured specs as Temporal does.

The syntax of one field (CalendarSpec strings and each field of a cron string) is a comma
separated list of `*`, `x`, `x-z`, `x/y`, `x-z/y` or `*/y`; months and days of the week also
take names (at least three and two letters of the English name). A cron string has 5 fields
(minute hour day-of-month month day-of-week), 6 (plus year) or 7 (second first, then year),
or is `@every <duration>[/<phase>]` or one of `@yearly`, `@annually`, `@monthly`, `@weekly`,
`@daily`, `@midnight`, `@hourly`; it may start with `CRON_TZ=<zone> ` or `TZ=<zone> ` and end
with `# comment`.

This is not `aion.history.cron`, which parses a workflow's `cron_schedule` (robfig/cron rules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from google.protobuf.duration_pb2 import Duration
from temporalio.api.schedule.v1.message_pb2 import (
    CalendarSpec,
    IntervalSpec,
    Range,
    StructuredCalendarSpec,
)

from aion.common import durations
from aion.common.durations import GoError, quote
from aion.history.cron import DESCRIPTORS
from aion.schedules.gotime import SECOND_NS

MIN_YEAR = 2000
MAX_YEAR = 2100
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
PREDEFINED = DESCRIPTORS  # the same shortcuts as a workflow's cron_schedule
ATOI = re.compile(r"[+-]?[0-9]+")
INT64 = 1 << 63


class ParseError(ValueError):
    """A cron or calendar string Temporal rejects; the message is Temporal's."""


class Mode(Enum):
    """How one field's values are read."""

    INT = "int"
    YEAR = "year"  # "*" is the empty list of ranges
    MONTH = "month"  # also month names
    WEEKDAY = "weekday"  # also day names, and 7 for Sunday


@dataclass(frozen=True)
class Field:
    """One CalendarSpec field: its name in errors, default, bounds and value syntax."""

    name: str
    default: str
    low: int
    high: int
    mode: Mode = Mode.INT


# In the order Temporal reports their errors.
SECOND = Field("Second", "0", 0, 59)
MINUTE = Field("Minute", "0", 0, 59)
HOUR = Field("Hour", "0", 0, 23)
DAY_OF_WEEK = Field("DayOfWeek", "*", 0, 7, Mode.WEEKDAY)
DAY_OF_MONTH = Field("DayOfMonth", "*", 1, 31)
MONTH = Field("Month", "*", 1, 12, Mode.MONTH)
YEAR = Field("Year", "*", MIN_YEAR, MAX_YEAR, Mode.YEAR)


@dataclass(frozen=True)
class CronString:
    """A parsed cron string: a calendar or an interval, and the zone it named ("" if none)."""

    calendar: StructuredCalendarSpec | None
    interval: IntervalSpec | None
    timezone_name: str


def calendar_to_structured(cal: CalendarSpec) -> StructuredCalendarSpec:
    """A CalendarSpec's strings as ranges; every bad field is named in the one error."""
    errors: list[str] = []

    def ranges(text: str, field: Field) -> list[Range]:
        try:
            return parse_field(text, field)
        except ParseError as err:
            errors.append(str(err))
            return []

    structured = StructuredCalendarSpec(
        second=ranges(cal.second, SECOND),
        minute=ranges(cal.minute, MINUTE),
        hour=ranges(cal.hour, HOUR),
        day_of_week=ranges(cal.day_of_week, DAY_OF_WEEK),
        day_of_month=ranges(cal.day_of_month, DAY_OF_MONTH),
        month=ranges(cal.month, MONTH),
        year=ranges(cal.year, YEAR),
        comment=cal.comment,
    )
    if errors:
        raise ParseError(", ".join(errors))
    return structured


def parse_cron_string(text: str) -> CronString:
    """One `cron_string` entry."""
    text = text.strip()
    zone = ""
    if text.startswith(("TZ=", "CRON_TZ=")):
        prefix, space, text = text.partition(" ")
        if not space:
            raise ParseError("CronString has time zone but missing fields")
        zone = prefix.partition("=")[2]
    text, _, comment = text.partition("#")
    text, comment = text.strip(), comment.strip()
    if text.startswith("@every"):
        # Temporal drops the zone of an @every string: it names "" (see canonicalize).
        return CronString(None, _parse_every(text), "")
    fields = PREDEFINED.get(text, text).split()
    if not 5 <= len(fields) <= 7:
        raise ParseError("CronString does not have 5-7 fields")
    if len(fields) == 7:
        second, *fields = fields
    else:
        second = ""
    minute, hour, day_of_month, month, day_of_week, *year = fields
    cal = CalendarSpec(
        second=second,
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month=month,
        day_of_week=day_of_week,
        year=year[0] if year else "",
        comment=comment,
    )
    return CronString(calendar_to_structured(cal), None, zone)


def _parse_every(text: str) -> IntervalSpec:
    """`@every 90m` or `@every 14h/3h` (interval/phase); durations also take `d` for days."""
    _, space, rest = text.partition(" ")
    if not space:
        raise ParseError("CronString does not have interval after @every")
    interval, slash, phase = rest.partition("/")
    spec = IntervalSpec(interval=_duration(parse_temporal_duration(interval)))
    if slash and phase:
        spec.phase.CopyFrom(_duration(parse_temporal_duration(phase)))
    return spec


def parse_temporal_duration(text: str) -> int:
    """Temporal's duration syntax (Go's plus `d` for 24 hours), in nanoseconds."""
    try:
        return durations.parse_temporal_duration(text)
    except GoError as err:
        raise ParseError(str(err)) from None


def _duration(ns: int) -> Duration:
    """`durationpb.New`: seconds and nanos both truncated toward zero."""
    seconds = abs(ns) // SECOND_NS * (1 if ns >= 0 else -1)
    return Duration(seconds=seconds, nanos=ns - seconds * SECOND_NS)


def parse_field(text: str, field: Field) -> list[Range]:
    """One field's string as ranges, in Temporal's compact form (End 0 and Step 0 omitted)."""
    text = text.strip() or field.default
    if text == "*" and field.mode is Mode.YEAR:
        return []
    ranges: list[Range] = []
    for part in text.split(","):
        step, has_step = 1, False
        if part.count("/") > 1:
            raise ParseError(f"{field.name} has too many slashes")
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text:
                raise ParseError(f"{field.name} missing step value")
            step = _atoi(step_text)
            if step < 1:
                raise ParseError(f"{field.name} has invalid Step")
            has_step = True
        start, end = field.low, field.high
        if part != "*":
            if "-" in part:
                if part.count("-") > 1:
                    raise ParseError(f"{field.name} has too many dashes")
                first, _, last = part.partition("-")
                bounds = f"[{field.low}-{field.high}]"
                first_value = _value(first, field.low, field.high, field.mode)
                if first_value is None:
                    raise ParseError(f"{field.name} Start is not in range {bounds}")
                last_value = _value(last, first_value, field.high, field.mode)
                if last_value is None:
                    raise ParseError(f"{field.name} End is before Start or not in range {bounds}")
                start, end = first_value, last_value
            else:
                value = _value(part, field.low, field.high, field.mode)
                if value is None:
                    raise ParseError(f"{field.name} is not in range [{field.low}-{field.high}]")
                start = value
                # With a step, a single value runs to the field's maximum.
                end = end if has_step else start
        if field.mode is Mode.WEEKDAY and end == 7:
            # 7 is Sunday, stored as 0. Temporal adds a separate 0 only when the range really
            # reaches 7 and does not start at 0 or 1 with step 1; so "1-7" loses Sunday.
            if (7 - start) % step == 0 and (step > 1 or start > 1):
                ranges.append(Range(start=0))
                if start == 7:
                    continue
            end = 6
        ranges.append(
            Range(start=start, end=0 if end == start else end, step=0 if step == 1 else step)
        )
    return ranges


def _value(text: str, low: int, high: int, mode: Mode) -> int | None:
    """An integer, month or day name within [low, high]; None when not."""
    names = {Mode.MONTH: (MONTHS, 3, 1), Mode.WEEKDAY: (WEEKDAYS, 2, 0)}.get(mode)
    if names and len(text) >= names[1]:
        lowered = text.lower()
        for index, name in enumerate(names[0]):
            if name.startswith(lowered):
                value = index + names[2]
                return value if low <= value <= high else None
    try:
        value = _atoi(text)
    except ParseError:
        return None
    return value if low <= value <= high else None


def _atoi(text: str) -> int:
    """Go's `strconv.Atoi` on a 64-bit platform, with its error texts."""
    if not ATOI.fullmatch(text):
        raise ParseError(f"strconv.Atoi: parsing {quote(text)}: invalid syntax")
    value = int(text)
    if not -INT64 <= value < INT64:
        raise ParseError(f"strconv.Atoi: parsing {quote(text)}: value out of range")
    return value
