"""A compiled StructuredCalendarSpec: does a time match, and the next matching time."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable

from temporalio.api.schedule.v1.message_pb2 import Range, StructuredCalendarSpec

from aion.schedules import gotime
from aion.schedules.cron import MAX_YEAR


class Matcher:
    """The values one field's ranges match (a missing End means Start, a missing Step 1)."""

    def __init__(self, ranges: Iterable[Range], *, empty_matches_all: bool = False) -> None:
        # A negative Step (possible only in an unvalidated exclude) matches nothing.
        self.ranges = [range(r.start, max(r.end, r.start) + 1, r.step or 1) for r in ranges]
        self.matches_all = empty_matches_all and not self.ranges

    def __contains__(self, value: int) -> bool:
        return self.matches_all or any(value in r for r in self.ranges)

    def covers(self, low: int, high: int) -> bool:
        """True when every value in [low, high] matches."""
        return all(v in self for v in range(low, high + 1))


class CompiledCalendar:
    """A StructuredCalendarSpec read in one time zone; times are Unix seconds."""

    def __init__(self, spec: StructuredCalendarSpec, tz: dt.tzinfo) -> None:
        self.tz = tz
        self.year = Matcher(spec.year, empty_matches_all=True)
        self.month = Matcher(spec.month)
        self.day_of_month = Matcher(spec.day_of_month)
        self.day_of_week = Matcher(spec.day_of_week)
        self.every_weekday = self.day_of_week.covers(0, 6)
        self.hour = Matcher(spec.hour)
        self.minute = Matcher(spec.minute)
        self.second = Matcher(spec.second)

    def matches(self, unix: int) -> bool:
        """Whether the wall-clock time at `unix` matches every field."""
        t = gotime.wall(unix, self.tz)
        return (
            t.year in self.year
            and t.month in self.month
            and t.day in self.day_of_month
            and gotime.go_weekday(t) in self.day_of_week
            and t.hour in self.hour
            and t.minute in self.minute
            and t.second in self.second
        )

    def next(self, after: int) -> int | None:
        """The first matching time strictly after `after`; None if none up to year 2100.

        The search walks the wall clock field by field, outermost first, as Temporal's does,
        DST included: a wall time a spring-forward skips does not run; in an hour that
        fall-back repeats, a time runs twice when the search reaches the repeat through the
        hour's end (`second_copy`: the next hour starts two hours after this one).
        """
        tz = self.tz
        t = gotime.wall(after, tz)
        y, mo, d, h, mi, s = t.year, t.month, t.day, t.hour, t.minute, t.second + 1
        second_copy = gotime.wall(after - 3600, tz).hour == h
        while True:
            if s >= 60:
                mi, s = mi + 1, 0
            if mi >= 60:
                start = gotime.date(y, mo, d, h, 0, 0, tz)
                h, mi = h + 1, 0
                if not second_copy and gotime.date(y, mo, d, h, 0, 0, tz) - start > 3600:
                    h, second_copy = h - 1, True
                else:
                    second_copy = False
            if h >= 24:
                d, h = d + 1, 0
            if mo <= 12 and d > calendar.monthrange(y, mo)[1]:
                mo, d = mo + 1, 1
            if mo > 12:
                y, mo = y + 1, 1
            if y > MAX_YEAR:
                return None
            # Match from the outermost field in; a field that runs out of values carries into
            # the next larger one and the search starts over (`continue`).
            if y not in self.year:
                y, mo, d, h, mi, s, second_copy = y + 1, 1, 1, 0, 0, 0, False
                continue
            while mo <= 12 and mo not in self.month:
                mo, d, h, mi, s, second_copy = mo + 1, 1, 0, 0, 0, False
            if mo > 12:
                continue
            last_day = calendar.monthrange(y, mo)[1]
            while d <= last_day and not self._day_matches(y, mo, d, h, mi, s):
                d, h, mi, s, second_copy = d + 1, 0, 0, 0, False
            if d > last_day:
                continue
            while h < 24 and h not in self.hour:
                h, mi, s, second_copy = h + 1, 0, 0, False
            if h >= 24:
                continue
            while mi < 60 and mi not in self.minute:
                mi, s = mi + 1, 0
            if mi >= 60:
                continue
            while s < 60 and s not in self.second:
                s += 1
            if s >= 60:
                continue
            found = gotime.date(y, mo, d, h, mi, s, tz)
            if gotime.wall(found, tz).hour == h:
                return found + (3600 if second_copy else 0)
            # The wall time does not exist (skipped by a DST change): try the next hour.
            h, mi, s = h + 1, 0, 0

    def _day_matches(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> bool:
        if d not in self.day_of_month:
            return False
        if self.every_weekday:
            return True
        # Temporal takes the weekday of the instant the wall time maps to, not of the date.
        found = gotime.date(y, mo, d, h, mi, s, self.tz)
        return gotime.go_weekday(gotime.wall(found, self.tz)) in self.day_of_week
