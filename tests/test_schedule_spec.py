"""Unit tests of the schedule spec engine (`aion.schedules`), on fixed times."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import json_format
from temporalio.api.schedule.v1 import ScheduleSpec

from aion.common import durations
from aion.farmhash import fingerprint32
from aion.schedules import (
    CompiledSpec,
    InvalidSpec,
    TooManyExclusions,
    canonicalize,
    describe_form,
    gotime,
    jitter_seed,
)
from aion.schedules.cron import (
    DAY_OF_WEEK,
    MINUTE,
    MONTH,
    YEAR,
    ParseError,
    parse_cron_string,
    parse_field,
    parse_temporal_duration,
)

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
S = 1_000_000_000


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def compile_spec(**fields: Any) -> CompiledSpec:
    return CompiledSpec.from_proto(json_format.ParseDict(fields, ScheduleSpec()))


def times(compiled: CompiledSpec, start: str, end: str, seed: str = "") -> list[str]:
    found = compiled.matching_times(utc(start), utc(end), seed)
    return [t.strftime("%Y-%m-%d %H:%M:%S") for t in found]


def local(compiled: CompiledSpec, start: str, end: str, tz: dt.tzinfo) -> list[str]:
    found = compiled.matching_times(utc(start), utc(end))
    return [t.astimezone(tz).strftime("%m-%d %H:%M %Z") for t in found]


def ranges(text: str, field: Any) -> list[tuple[int, int, int]]:
    return [(r.start, r.end, r.step) for r in parse_field(text, field)]


# --- Go semantics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1h30m", 5400 * S),
        ("1.5h", 5400 * S),
        (".5s", S // 2),
        ("-5s", -5 * S),
        ("+2m", 120 * S),
        ("0", 0),
        ("10µs", 10_000),
        ("3ms4us5ns", 3_004_005),
    ],
)
def test_go_duration(text: str, ns: int) -> None:
    assert durations.parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("5", 'time: missing unit in duration "5"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        (".s", 'time: invalid duration ".s"'),
        ("99999999999h", 'time: invalid duration "99999999999h"'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(durations.GoError, match=f"^{message}$"):
        durations.parse_duration(text)


def test_temporal_duration_takes_days() -> None:
    assert parse_temporal_duration("1.5d") == 36 * 3600 * S
    assert parse_temporal_duration("1d2h") == 26 * 3600 * S


def test_go_date_picks_go_offsets_for_skipped_and_repeated_wall_times() -> None:
    def at(*fields: int, tz: dt.tzinfo) -> str:
        unix = gotime.date(*fields, tz)
        return dt.datetime.fromtimestamp(unix, tz).strftime("%Y-%m-%d %H:%M %Z")

    # West of UTC: a skipped time lands an hour early; a repeated one is the first.
    assert at(2024, 3, 10, 2, 30, 0, tz=LA) == "2024-03-10 01:30 PST"
    assert at(2024, 11, 3, 1, 30, 0, tz=LA) == "2024-11-03 01:30 PDT"
    # East of UTC: a skipped time lands an hour late; a repeated one is the second.
    assert at(2024, 3, 31, 2, 30, 0, tz=BERLIN) == "2024-03-31 03:30 CEST"
    assert at(2024, 10, 27, 2, 30, 0, tz=BERLIN) == "2024-10-27 02:30 CET"
    # Out-of-range fields carry over.
    assert at(2024, 12, 31, 24, 0, 0, tz=dt.UTC) == "2025-01-01 00:00 UTC"
    assert at(2024, 13, 32, 0, 0, 0, tz=dt.UTC) == "2025-02-01 00:00 UTC"


def test_load_location() -> None:
    assert gotime.load_location("") is dt.UTC
    assert gotime.load_location("UTC") is dt.UTC
    assert str(gotime.load_location("Asia/Tokyo")) == "Asia/Tokyo"
    with pytest.raises(gotime.GoError, match="^unknown time zone Mars/Base$"):
        gotime.load_location("Mars/Base")
    with pytest.raises(gotime.GoError, match="^time: invalid location name$"):
        gotime.load_location("../etc/passwd")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0xDC56D17A),
        ("abc", 0x2F635EC7),
        ("abcdefgh", 0xFD7EC8B9),
        ("0123456789^0123456789", 0x536D1EFD),
        ("Nepal premier won't resign.", 0x322984D9),
        ("He who has a shady past knows that nice guys finish last.", 0xF585DFC4),
    ],
)
def test_fingerprint32_matches_farmhash(text: str, expected: int) -> None:
    assert fingerprint32(text.encode()) == expected


# --- parsing ---------------------------------------------------------------------------------


def test_field_syntax() -> None:
    assert ranges("*", MINUTE) == [(0, 59, 0)]
    assert ranges("5", MINUTE) == [(5, 0, 0)]
    assert ranges("1-5/2,8", MINUTE) == [(1, 5, 2), (8, 0, 0)]
    assert ranges("3/5", MINUTE) == [(3, 59, 5)]
    assert ranges("*/15", MINUTE) == [(0, 59, 15)]
    assert ranges("", MINUTE) == [(0, 0, 0)]  # minute defaults to 0
    assert ranges("", YEAR) == []  # year defaults to every year
    assert ranges("*/2", YEAR) == [(2000, 2100, 2)]
    assert ranges("Mar-may,dec", MONTH) == [(3, 5, 0), (12, 0, 0)]
    assert ranges("mon-fri", DAY_OF_WEEK) == [(1, 5, 0)]
    assert ranges("tu,th", DAY_OF_WEEK) == [(2, 0, 0), (4, 0, 0)]


def test_sunday_as_seven() -> None:
    assert ranges("7", DAY_OF_WEEK) == [(0, 0, 0)]
    assert ranges("*", DAY_OF_WEEK) == [(0, 6, 0)]
    assert ranges("5-7", DAY_OF_WEEK) == [(0, 0, 0), (5, 6, 0)]
    assert ranges("1-7/2", DAY_OF_WEEK) == [(0, 0, 0), (1, 6, 2)]
    # Temporal's quirk: "1-7" becomes 1-6 and loses Sunday.
    assert ranges("1-7", DAY_OF_WEEK) == [(1, 6, 0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("61", "Minute is not in range [0-59]"),
        ("5-3", "Minute End is before Start or not in range [0-59]"),
        ("x-3", "Minute Start is not in range [0-59]"),
        ("1-2-3", "Minute has too many dashes"),
        ("1/2/3", "Minute has too many slashes"),
        ("5/", "Minute missing step value"),
        ("*/0", "Minute has invalid Step"),
        ("*/x", 'strconv.Atoi: parsing "x": invalid syntax'),
        ("1, 2", "Minute is not in range [0-59]"),
    ],
)
def test_field_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_field(text, MINUTE)
    assert str(raised.value) == message


def test_cron_string_forms() -> None:
    five = parse_cron_string("CRON_TZ=Asia/Tokyo 30 9 * * 1-5 # weekdays")
    assert five.timezone_name == "Asia/Tokyo"
    assert five.calendar is not None and five.calendar.comment == "weekdays"
    assert [r.start for r in five.calendar.minute] == [30]
    six = parse_cron_string("0 0 1 1 * 2030")
    assert six.calendar is not None and [r.start for r in six.calendar.year] == [2030]
    seven = parse_cron_string("15 0 0 1 1 * 2030")
    assert seven.calendar is not None and [r.start for r in seven.calendar.second] == [15]
    hourly = parse_cron_string("@hourly")
    assert hourly.calendar is not None and [r.start for r in hourly.calendar.minute] == [0]
    every = parse_cron_string("TZ=Asia/Tokyo @every 14h/3h")
    assert every.calendar is None and every.interval is not None
    assert every.interval.interval.seconds == 14 * 3600
    assert every.interval.phase.seconds == 3 * 3600
    assert every.timezone_name == ""  # Temporal drops an @every string's zone


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 12 * *", "CronString does not have 5-7 fields"),
        ("@Hourly", "CronString does not have 5-7 fields"),
        ("@every", "CronString does not have interval after @every"),
        ("@every 5", 'time: missing unit in duration "5"'),
        ("TZ=UTC", "CronString has time zone but missing fields"),
    ],
)
def test_cron_string_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_cron_string(text)
    assert str(raised.value) == message


def test_canonical_and_described_forms() -> None:
    spec = json_format.ParseDict(
        {
            "cronString": ["CRON_TZ=Europe/Paris 0 12 * * *", "CRON_TZ=Europe/Paris @every 1h"],
            "calendar": [{"hour": "3"}],
            "excludeCalendar": [{"dayOfWeek": "sat"}],
            "structuredCalendar": [{"hour": [{"start": 5}]}],
        },
        ScheduleSpec(),
    )
    with pytest.raises(InvalidSpec, match="conflicting timezone names"):
        canonicalize(spec)  # the @every string names no zone, the other does
    del spec.cron_string[1]
    canonical = canonicalize(spec)
    assert not canonical.cron_string and not canonical.calendar and not canonical.exclude_calendar
    assert canonical.timezone_name == "Europe/Paris"
    assert [[r.start for r in c.hour] for c in canonical.structured_calendar] == [[5], [3], [12]]
    assert [(r.start, r.end, r.step) for r in canonical.structured_calendar[1].hour] == [(3, 0, 0)]
    assert [r.start for r in canonical.exclude_structured_calendar[0].day_of_week] == [6]
    described = describe_form(spec)
    assert [(r.start, r.end, r.step) for r in described.structured_calendar[1].hour] == [(3, 3, 1)]
    assert canonicalize(canonical) == canonical  # idempotent


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"calendar": [{"hour": "25", "minute": "x"}]},
            "Minute is not in range [0-59], Hour is not in range [0-23]",
        ),
        (
            {"structuredCalendar": [{"hour": [{"start": 24}]}]},
            "invalid calendar spec: Hour Start is not in range [0-23]",
        ),
        ({"interval": [{"interval": "0.5s"}]}, "interval is too small"),
        ({"interval": [{"interval": "60s", "phase": "-1s"}]}, "phase is negative"),
        (
            {"interval": [{"interval": "60s", "phase": "60s"}]},
            "phase cannot be greater than Interval",
        ),
        ({"timezoneName": "Nowhere/Special"}, "unknown time zone Nowhere/Special"),
        (
            {"cronString": ["TZ=UTC 0 * * * *"], "timezoneName": "Asia/Tokyo"},
            "conflicting timezone names",
        ),
        ({"timezoneName": "X", "timezoneData": "bm90IHR6aWY="}, "malformed time zone information"),
    ],
)
def test_invalid_specs(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        compile_spec(**fields)
    assert raised.value.message == "Invalid schedule spec: " + message


# --- matching times --------------------------------------------------------------------------


def test_every_field() -> None:
    spec = compile_spec(
        structuredCalendar=[
            {
                "second": [{"start": 10}, {"start": 40}],
                "minute": [{"start": 5, "end": 6}],
                "hour": [{"start": 7}],
                "dayOfMonth": [{"start": 1, "end": 31}],
                "month": [{"start": 5}],
                "year": [{"start": 2025}],
                "dayOfWeek": [{"start": 0, "end": 6}],
            }
        ]
    )
    assert times(spec, "2024-01-01", "2025-05-03")[:5] == [
        "2025-05-01 07:05:10",
        "2025-05-01 07:05:40",
        "2025-05-01 07:06:10",
        "2025-05-01 07:06:40",
        "2025-05-02 07:05:10",
    ]


def test_structured_calendar_without_a_field_never_matches() -> None:
    assert (
        times(
            compile_spec(structuredCalendar=[{"hour": [{"start": 3}]}]), "2024-01-01", "2025-01-01"
        )
        == []
    )


def test_steps_and_lists() -> None:
    spec = compile_spec(calendar=[{"second": "*/20", "minute": "0,30-31", "hour": "*/12"}])
    assert times(spec, "2024-05-01", "2024-05-01T12:00:30") == [
        "2024-05-01 00:00:20",
        "2024-05-01 00:00:40",
        "2024-05-01 00:30:00",
        "2024-05-01 00:30:20",
        "2024-05-01 00:30:40",
        "2024-05-01 00:31:00",
        "2024-05-01 00:31:20",
        "2024-05-01 00:31:40",
        "2024-05-01 12:00:00",
        "2024-05-01 12:00:20",
    ]


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # Unlike classic cron, which fires when either matches.
    spec = compile_spec(calendar=[{"dayOfMonth": "13", "dayOfWeek": "friday"}])
    assert times(spec, "2024-01-01", "2025-12-31") == [
        "2024-09-13 00:00:00",
        "2024-12-13 00:00:00",
        "2025-06-13 00:00:00",
    ]


def test_months_years_and_leap_days() -> None:
    spec = compile_spec(calendar=[{"month": "2", "dayOfMonth": "29", "year": "2024-2032/4,2030"}])
    assert times(spec, "2023-01-01", "2040-01-01") == [
        "2024-02-29 00:00:00",
        "2028-02-29 00:00:00",
        "2032-02-29 00:00:00",
    ]
    assert (
        compile_spec(calendar=[{"year": "2099-2100", "month": "12", "dayOfMonth": "31"}]).next_time(
            utc("2100-12-31T00:00:00")
        )
        is None
    )  # nothing after 2100


def test_interval_with_phase() -> None:
    spec = compile_spec(interval=[{"interval": "3600s", "phase": "900s"}])
    assert times(spec, "2024-05-01T00:15:00", "2024-05-01T03:00:00") == [
        "2024-05-01 01:15:00",
        "2024-05-01 02:15:00",
    ]
    # Intervals count from the Unix epoch, whatever the time zone.
    weekly = compile_spec(interval=[{"interval": "604800s"}], timezoneName="Asia/Tokyo")
    assert times(weekly, "2024-05-01", "2024-05-10") == [
        "2024-05-02 00:00:00",
        "2024-05-09 00:00:00",
    ]


def test_exclusions() -> None:
    spec = compile_spec(
        calendar=[{"hour": "*"}],
        excludeCalendar=[{"hour": "1-22", "minute": "*"}],
        excludeStructuredCalendar=[
            {
                "second": [{"start": 0}],
                "minute": [{"start": 0}],
                "hour": [{"start": 0}],
                "dayOfMonth": [{"start": 2}],
                "month": [{"start": 1, "end": 12}],
                "dayOfWeek": [{"start": 0, "end": 6}],
            }
        ],
    )
    assert times(spec, "2024-05-01", "2024-05-03T12:00:00") == [
        "2024-05-01 23:00:00",
        "2024-05-02 23:00:00",
        "2024-05-03 00:00:00",
    ]


def test_excluded_search_is_bounded() -> None:
    spec = CompiledSpec.from_proto(
        json_format.ParseDict(
            {
                "interval": [{"interval": "1s"}],
                "excludeCalendar": [{"second": "*", "minute": "*", "hour": "*"}],
            },
            ScheduleSpec(),
        ),
        max_iterations=1000,
    )
    with pytest.raises(TooManyExclusions) as raised:
        spec.next_time(utc("2024-05-01"))
    assert "too many exclusions" in raised.value.message


def test_start_and_end_times() -> None:
    spec = compile_spec(
        interval=[{"interval": "600s"}],
        startTime="2024-05-01T10:00:00Z",
        endTime="2024-05-01T10:30:00.5Z",
    )
    # The start time itself can match; the end time is inclusive.
    assert times(spec, "2024-05-01", "2024-05-02") == [
        "2024-05-01 10:00:00",
        "2024-05-01 10:10:00",
        "2024-05-01 10:20:00",
        "2024-05-01 10:30:00",
    ]
    # next_time is strictly after its argument.
    found = spec.next_time(utc("2024-05-01T10:10:00"))
    assert found is not None and found.nominal == utc("2024-05-01T10:20:00")
    with pytest.raises(ValueError):
        spec.next_time(dt.datetime(2024, 5, 1))


def test_matching_times_limit() -> None:
    spec = compile_spec(cronString=["@every 1s"])
    assert len(spec.matching_times(utc("2024-05-01"), utc("2024-05-02"))) == 1000
    assert len(spec.matching_times(utc("2024-05-01"), utc("2024-05-02"), limit=3)) == 3


def test_jitter_is_bounded_and_deterministic() -> None:
    spec = compile_spec(calendar=[{"hour": "*"}], jitter="600s")
    seed = jitter_seed("ns-id", "my-schedule")
    first = [spec.next_time(utc(f"2024-05-01T{h:02}:00:00"), seed) for h in range(24)]
    again = [spec.next_time(utc(f"2024-05-01T{h:02}:00:00"), seed) for h in range(24)]
    other = [spec.next_time(utc(f"2024-05-01T{h:02}:00:00"), "other") for h in range(24)]
    assert first == again != other
    offsets = {(n.actual - n.nominal) for n in first if n}
    assert len(offsets) > 20
    assert all(dt.timedelta(0) <= o < dt.timedelta(minutes=10) for o in offsets)
    assert all(o.microseconds % 1000 == 0 for o in offsets)  # whole milliseconds


def test_jitter_never_reaches_the_following_time() -> None:
    spec = compile_spec(interval=[{"interval": "60s"}], jitter="86400s")
    for found in (spec.next_time(utc(f"2024-05-01T00:{m:02}:00"), "seed") for m in range(30)):
        assert found and dt.timedelta(0) <= found.actual - found.nominal < dt.timedelta(minutes=1)


# --- time zones and DST ------------------------------------------------------------------------


def test_2pm_survives_dst_in_los_angeles() -> None:
    spec = compile_spec(calendar=[{"hour": "14"}], timezoneName="America/Los_Angeles")
    assert local(spec, "2024-03-09", "2024-03-12", LA) == [
        "03-09 14:00 PST",
        "03-10 14:00 PDT",
        "03-11 14:00 PDT",
    ]
    assert local(spec, "2024-11-02", "2024-11-05", LA) == [
        "11-02 14:00 PDT",
        "11-03 14:00 PST",
        "11-04 14:00 PST",
    ]


def test_skipped_wall_time_does_not_run() -> None:
    spec = compile_spec(
        calendar=[{"hour": "2", "minute": "30"}], timezoneName="America/Los_Angeles"
    )
    assert local(spec, "2024-03-09", "2024-03-12", LA) == ["03-09 02:30 PST", "03-11 02:30 PDT"]


def test_repeated_wall_time_runs_twice_west_of_utc() -> None:
    spec = compile_spec(
        calendar=[{"hour": "1", "minute": "30"}], timezoneName="America/Los_Angeles"
    )
    assert local(spec, "2024-11-02", "2024-11-05", LA) == [
        "11-02 01:30 PDT",
        "11-03 01:30 PDT",
        "11-03 01:30 PST",
        "11-04 01:30 PST",
    ]


def test_repeated_wall_time_east_of_utc_as_temporal_does() -> None:
    # A daily 2:30 runs once, at the second 2:30; an hourly :30 runs the first 2:30 only.
    daily = compile_spec(calendar=[{"hour": "2", "minute": "30"}], timezoneName="Europe/Berlin")
    assert local(daily, "2024-10-26", "2024-10-28", BERLIN) == [
        "10-26 02:30 CEST",
        "10-27 02:30 CET",
    ]
    hourly = compile_spec(calendar=[{"hour": "*", "minute": "30"}], timezoneName="Europe/Berlin")
    assert local(hourly, "2024-10-26T23:00:00", "2024-10-27T03:00:00", BERLIN) == [
        "10-27 01:30 CEST",
        "10-27 02:30 CEST",
        "10-27 03:30 CET",
    ]


def test_timezone_data() -> None:
    files = [Path(root, "Asia", "Tokyo") for root in zoneinfo.TZPATH]
    tzif = next((f for f in files if f.exists()), None)
    if tzif is None:
        pytest.skip("no system time zone files")
    spec = CompiledSpec.from_proto(
        ScheduleSpec(
            cron_string=["0 9 * * *"], timezone_name="Tokyo", timezone_data=tzif.read_bytes()
        )
    )
    assert times(spec, "2024-04-30T12:00:00", "2024-05-02") == [
        "2024-05-01 00:00:00",
        "2024-05-02 00:00:00",
    ]


# --- cron strings ------------------------------------------------------------------------------


def test_cron_tz() -> None:
    spec = compile_spec(cronString=["CRON_TZ=America/New_York 0 9 * * mon-fri"])
    assert times(spec, "2024-03-08", "2024-03-12") == ["2024-03-08 14:00:00", "2024-03-11 13:00:00"]


def test_cron_every_and_hourly() -> None:
    every = compile_spec(cronString=["@every 5s"])
    assert times(every, "2024-05-01T00:00:00", "2024-05-01T00:00:15") == [
        "2024-05-01 00:00:05",
        "2024-05-01 00:00:10",
        "2024-05-01 00:00:15",
    ]
    hourly = compile_spec(cronString=["@hourly # top of the hour"])
    assert times(hourly, "2024-05-01T00:00:00", "2024-05-01T02:59:59") == [
        "2024-05-01 01:00:00",
        "2024-05-01 02:00:00",
    ]
