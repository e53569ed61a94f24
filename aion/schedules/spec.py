"""The schedule spec engine: which times a ScheduleSpec matches, with Temporal's answers.

`CompiledSpec.from_proto(spec)` checks and compiles a spec as CreateSchedule does (raising
`InvalidSpec` with Temporal's message); `next_time` gives the next action time and
`matching_times` answers ListScheduleMatchingTimes. `canonicalize` is the form Temporal stores
(calendar and cron strings turned into structured calendars and intervals) and `describe_form`
the form DescribeSchedule shows.
"""

from __future__ import annotations

import calendar
import datetime as dt
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.schedule.v1.message_pb2 import (
    IntervalSpec,
    Range,
    ScheduleSpec,
    StructuredCalendarSpec,
)

from aion.common import durations
from aion.farmhash import fingerprint32
from aion.schedules import gotime
from aion.schedules.calendar import CompiledCalendar
from aion.schedules.cron import (
    MAX_YEAR,
    MIN_YEAR,
    ParseError,
    calendar_to_structured,
    parse_cron_string,
)

SECOND_NS = gotime.SECOND_NS
MAX_COMMENT_BYTES = 200
MAX_MATCHING_TIMES = 1000  # ListScheduleMatchingTimes answers at most this many
DEFAULT_MAX_ITERATIONS = 2 * 7 * 24 * 60 * 60  # scheduler.specMaxIterations
END_OF_CALENDAR = calendar.timegm((MAX_YEAR + 1, 1, 1, 0, 0, 0))  # later times never match
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
GO_UNIX_TO_INTERNAL = 62_135_596_800  # seconds from Go's zero time (year 1) to 1970
MAX_DURATION_SECONDS = 315_576_000_000  # 10000 years, the protobuf Duration limit


class InvalidSpec(ValueError):
    """A spec Temporal refuses with INVALID_ARGUMENT; `message` is Temporal's text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooManyExclusions(InvalidSpec):
    """The exclusions hide every candidate time for longer than the search is allowed to run."""

    def __init__(self) -> None:
        super().__init__(
            "the schedule calendar specification has too many exclusions. "
            "Please modify the specification."
        )


@dataclass(frozen=True)
class NextTime:
    """One action time of a schedule."""

    nominal: dt.datetime
    """The time the spec matches (UTC)."""
    actual: dt.datetime
    """`nominal` plus the schedule's jitter: when the action runs (UTC)."""


def jitter_seed(namespace_id: str, schedule_id: str) -> str:
    """The seed Temporal hashes with each nominal time to pick that time's jitter."""
    return f"{namespace_id}-{schedule_id}"


def canonicalize(spec: ScheduleSpec) -> ScheduleSpec:
    """The spec as Temporal stores it: calendar strings, exclude calendar strings and cron
    strings parsed into structured calendars and intervals (appended after the given ones),
    a cron string's zone moved to `timezone_name`, and everything validated."""
    _check_durations(spec.interval)
    out = ScheduleSpec()
    out.CopyFrom(spec)
    try:
        out.structured_calendar.extend(calendar_to_structured(c) for c in spec.calendar)
        out.exclude_structured_calendar.extend(
            calendar_to_structured(c) for c in spec.exclude_calendar
        )
        cron_zone: str | None = None
        for text in spec.cron_string:
            cron = parse_cron_string(text)
            if cron_zone is not None and cron.timezone_name != cron_zone:
                raise ParseError("conflicting timezone names")  # all must agree, even on none
            cron_zone = cron.timezone_name
            if cron.calendar is not None:
                out.structured_calendar.append(cron.calendar)
            if cron.interval is not None:
                out.interval.append(cron.interval)
    except ParseError as err:
        raise _invalid(str(err)) from None
    del out.calendar[:], out.exclude_calendar[:], out.cron_string[:]
    if cron_zone:
        if out.timezone_name not in ("", cron_zone) or out.timezone_data:
            raise _invalid("conflicting timezone names")
        out.timezone_name = cron_zone
    for structured in out.structured_calendar:
        _check_calendar(structured)
    for interval in out.interval:
        _check_interval(interval)
    return out


def describe_form(spec: ScheduleSpec) -> ScheduleSpec:
    """The spec as DescribeSchedule shows it: canonical, with every range's End (at least
    Start) and Step (1 when unset) filled in."""
    out = canonicalize(spec)
    for cal in [*out.structured_calendar, *out.exclude_structured_calendar]:
        for ranges in _fields(cal):
            for r in ranges:
                r.end = max(r.end, r.start)
                r.step = r.step or 1
    return out


class CompiledSpec:
    """A checked ScheduleSpec, ready to answer which times it matches (build with `from_proto`)."""

    def __init__(self, canonical: ScheduleSpec, tz: dt.tzinfo, max_iterations: int | None) -> None:
        self._spec = canonical
        self.tz = tz  # the zone its calendars are read in
        self._calendars = [CompiledCalendar(c, tz) for c in canonical.structured_calendar]
        self._excludes = [CompiledCalendar(c, tz) for c in canonical.exclude_structured_calendar]
        self._intervals = [_interval_seconds(iv) for iv in canonical.interval]
        self._start_ns = _timestamp_ns(canonical.start_time)  # the epoch when unset, as in Go
        self._end_ns = _timestamp_ns(canonical.end_time) if canonical.HasField("end_time") else None
        self._jitter_ns = durations.go_duration_ns(canonical.jitter.seconds, canonical.jitter.nanos)
        self._max_iterations = max_iterations

    @classmethod
    def from_proto(
        cls, spec: ScheduleSpec, *, max_iterations: int | None = DEFAULT_MAX_ITERATIONS
    ) -> CompiledSpec:
        """Check and compile `spec` as CreateSchedule does; raises `InvalidSpec`.

        `max_iterations` bounds how many excluded candidate times one `next_time` skips
        before raising `TooManyExclusions` (None: no bound).
        """
        canonical = canonicalize(spec)
        try:
            if canonical.timezone_data:
                tz = gotime.load_location_from_tzdata(
                    canonical.timezone_name, canonical.timezone_data
                )
            else:
                tz = gotime.load_location(canonical.timezone_name)
        except durations.GoError as err:
            raise _invalid(str(err)) from None
        return cls(canonical, tz, max_iterations)

    @property
    def canonical(self) -> ScheduleSpec:
        """The canonical spec (see `canonicalize`): what CreateSchedule stores."""
        out = ScheduleSpec()
        out.CopyFrom(self._spec)
        return out

    def next_time(self, after: dt.datetime, seed: str = "") -> NextTime | None:
        """The first action time strictly after `after` (and within start/end time), or None.

        `seed` is the schedule's `jitter_seed`: the jitter of a time is a fixed fraction of
        the spec's jitter (capped at the gap to the following matching time), picked by
        hashing the nominal time with the seed.
        """
        after_ns = max(_ns(after), self._start_ns - SECOND_NS)
        candidate = after_ns // SECOND_NS
        iterations = 0
        while True:
            if self._max_iterations is not None and iterations >= self._max_iterations:
                raise TooManyExclusions
            iterations += 1
            nominal = self._raw_next(candidate)
            if nominal is None or self._past_end(nominal):
                return None
            if not any(exclude.matches(nominal) for exclude in self._excludes):
                break
            candidate = nominal
        max_jitter_ns = self._jitter_ns
        following = self._raw_next(nominal)
        if following is not None:
            max_jitter_ns = min(max_jitter_ns, (following - nominal) * SECOND_NS)
        actual_ns = nominal * SECOND_NS + _jitter_ms(seed, nominal, max_jitter_ns) * 1_000_000
        return NextTime(_datetime(nominal * SECOND_NS), _datetime(actual_ns))

    def matching_times(
        self, start: dt.datetime, end: dt.datetime, seed: str = "", limit: int = MAX_MATCHING_TIMES
    ) -> list[dt.datetime]:
        """ListScheduleMatchingTimes: the action times (jittered) after `start` up to `end`
        inclusive, at most `limit` of them."""
        end_ns = _ns(end)
        out: list[dt.datetime] = []
        t = start
        while len(out) < limit:
            found = self.next_time(t, seed)
            if found is None or _ns(found.actual) > end_ns:
                break
            out.append(found.actual)
            t = found.actual
        return out

    def _raw_next(self, after: int) -> int | None:
        """The first time after `after` (Unix seconds) that a calendar or interval matches."""
        candidates = [t for c in self._calendars if (t := c.next(after)) is not None]
        for interval, phase in self._intervals:
            # Go's integer division truncates toward zero; times before the phase round up.
            since = after - phase
            periods = abs(since) // interval * (1 if since >= 0 else -1)
            candidates.append((periods + 1) * interval + phase)
        return min(candidates, default=None)

    def _past_end(self, nominal: int) -> bool:
        return (
            self._end_ns is not None and nominal * SECOND_NS > self._end_ns
        ) or nominal >= END_OF_CALENDAR


def _invalid(reason: str) -> InvalidSpec:
    return InvalidSpec(f"Invalid schedule spec: {reason}")


def _fields(cal: StructuredCalendarSpec) -> list[Iterable[Range]]:
    return [
        cal.second,
        cal.minute,
        cal.hour,
        cal.day_of_month,
        cal.month,
        cal.year,
        cal.day_of_week,
    ]


def _check_calendar(cal: StructuredCalendarSpec) -> None:
    errors: list[str] = []
    bounds = [
        ("Second", 0, 59),
        ("Minute", 0, 59),
        ("Hour", 0, 23),
        ("DayOfMonth", 1, 31),
        ("Month", 1, 12),
        ("Year", MIN_YEAR, MAX_YEAR),
        ("DayOfWeek", 0, 6),
    ]
    for ranges, (name, low, high) in zip(_fields(cal), bounds, strict=True):
        for r in ranges:
            if not low <= r.start <= high:
                errors.append(f"{name} Start is not in range [{low}-{high}]")
            if r.end != 0 and (r.end < r.start or r.end > high):
                errors.append(f"{name} End is before Start or not in range [{low}-{high}]")
            if r.step < 0:
                errors.append(f"{name} has invalid Step")
    if len(cal.comment.encode()) > MAX_COMMENT_BYTES:
        errors.append("comment is too long")
    if errors:
        raise _invalid("invalid calendar spec: " + ", ".join(errors))


def _check_durations(intervals: Iterable[IntervalSpec]) -> None:
    """The frontend's first check: interval and phase are valid protobuf Durations."""
    for iv in intervals:
        durations = [
            ("interval", iv.HasField("interval"), iv.interval),
            ("phase", iv.HasField("phase"), iv.phase),
        ]
        for name, present, duration in durations:
            if present and (problem := _duration_problem(duration)):
                raise _invalid(f"{name} is not a valid duration: {problem}")


def _duration_problem(d: Duration) -> str | None:
    """protobuf-go's `Duration.CheckValid` text (which varies its spacing at random)."""
    text = " ".join(f"{k}:{v}" for k, v in (("seconds", d.seconds), ("nanos", d.nanos)) if v)
    if d.seconds < -MAX_DURATION_SECONDS:
        problem = "exceeds -10000 years"
    elif d.seconds > MAX_DURATION_SECONDS:
        problem = "exceeds +10000 years"
    elif not -SECOND_NS < d.nanos < SECOND_NS:
        problem = "has out-of-range nanos"
    elif (d.seconds > 0 and d.nanos < 0) or (d.seconds < 0 and d.nanos > 0):
        problem = "has seconds and nanos with different signs"
    else:
        return None
    return f"proto: duration ({text}) {problem}"


def _check_interval(iv: IntervalSpec) -> None:
    interval = durations.go_duration_ns(iv.interval.seconds, iv.interval.nanos)
    phase = durations.go_duration_ns(iv.phase.seconds, iv.phase.nanos)
    if interval < SECOND_NS:
        raise _invalid("interval is too small")
    if phase < 0:
        raise _invalid("phase is negative")
    if phase >= interval:
        raise _invalid("phase cannot be greater than Interval")


def _interval_seconds(iv: IntervalSpec) -> tuple[int, int]:
    """(interval, phase) in whole seconds, truncated as Temporal does."""
    interval = durations.go_duration_ns(iv.interval.seconds, iv.interval.nanos) // SECOND_NS
    phase = durations.go_duration_ns(iv.phase.seconds, iv.phase.nanos) // SECOND_NS
    return max(interval, 1), max(phase, 0)


def _jitter_ms(seed: str, nominal: int, max_jitter_ns: int) -> int:
    """Temporal's jitter for one nominal time: the FarmHash fingerprint of Go's binary form of
    the time (UTC) and the seed, scaled into [0, max jitter) in whole milliseconds."""
    max_ms = min(max(max_jitter_ns, 0) // 1_000_000, 0xFFFFFFFF)
    go_time = struct.pack(">Bqih", 1, nominal + GO_UNIX_TO_INTERNAL, 0, -1)
    return (fingerprint32(go_time + seed.encode()) * max_ms) >> 32


def _timestamp_ns(ts: Timestamp) -> int:
    return ts.seconds * SECOND_NS + ts.nanos


def _ns(t: dt.datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware datetimes")
    return (t - EPOCH) // dt.timedelta(microseconds=1) * 1000


def _datetime(ns: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=ns // 1000)
