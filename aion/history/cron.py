"""Cron schedules for `cron_schedule` workflows: standard five fields, descriptors, `@every`, CRON_TZ."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aion.common.timeutil import SECOND

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": SECOND,
    "m": 60 * SECOND,
    "h": 3600 * SECOND,
}
SEARCH_LIMIT_MINUTES = 366 * 24 * 60 * 5


class CronError(ValueError):
    """The cron string cannot be parsed."""


@dataclass(frozen=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool
    every_ns: int = 0
    tz: dt.tzinfo = dt.UTC

    def next_after(self, after_ns: int) -> int:
        """The first scheduled time strictly after `after_ns` (Unix nanoseconds)."""
        if self.every_ns:
            return (after_ns // self.every_ns + 1) * self.every_ns
        t = dt.datetime.fromtimestamp(after_ns // SECOND, tz=self.tz).replace(second=0)
        t += dt.timedelta(minutes=1)
        for _ in range(SEARCH_LIMIT_MINUTES):
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
                continue
            return int(t.timestamp()) * SECOND
        raise CronError("cron schedule never fires")

    def _day_matches(self, t: dt.datetime) -> bool:
        day_ok = t.day in self.days
        weekday_ok = (t.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def parse(spec: str) -> CronSchedule:
    text = spec.strip()
    tz: dt.tzinfo = dt.UTC
    if text.startswith(("CRON_TZ=", "TZ=")):
        zone, _, text = text.partition(" ")
        try:
            tz = ZoneInfo(zone.split("=", 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(f"invalid time zone in cron schedule: {zone}") from None
        text = text.strip()
    if text.startswith("@every "):
        total = 0
        rest = text[len("@every ") :].strip()
        for number, unit in DURATION.findall(rest):
            total += int(float(number) * UNIT_NS[unit])
        if total <= 0 or DURATION.sub("", rest):
            raise CronError(f"invalid duration in cron schedule: {rest}")
        return CronSchedule(*(frozenset(),) * 5, False, False, every_ns=total, tz=tz)
    text = DESCRIPTORS.get(text.lower(), text)
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {spec}")
    minute, hour, day, month, weekday = fields
    weekdays = _field(weekday, 0, 7, DAYS)
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    return CronSchedule(
        minutes=_field(minute, 0, 59),
        hours=_field(hour, 0, 23),
        days=_field(day, 1, 31),
        months=_field(month, 1, 12, MONTHS),
        weekdays=weekdays,
        days_restricted=not day.startswith(("*", "?")),
        weekdays_restricted=not weekday.startswith(("*", "?")),
        tz=tz,
    )


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        range_part, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if range_part in ("*", "?"):
            start, end = low, high
        else:
            first, _, last = range_part.partition("-")
            start = _value(first, names)
            end = _value(last, names) if last else (high if step_text else start)
        if not (low <= start <= high and low <= end <= high) or step <= 0 or start > end:
            raise CronError(f"value out of range in cron field: {part}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise CronError(f"invalid value in cron field: {text}")
    return int(text)


def backoff_ns(spec: str, now_ns: int) -> int:
    """Time from `now_ns` until the schedule's next firing."""
    return parse(spec).next_after(now_ns) - now_ns
