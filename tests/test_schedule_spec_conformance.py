"""The schedule spec engine against the reference server's answers.

Each case creates a paused schedule on the reference dev server, asks it for
ListScheduleMatchingTimes over a fixed window and for DescribeSchedule, and compares both with
`aion.schedules` for the same spec: the same (jittered) times, and the same normalized spec.
Invalid specs must be refused with the reference's message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.schedule.v1 import Schedule, ScheduleAction, ScheduleSpec, ScheduleState
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    CreateScheduleRequest,
    DescribeNamespaceRequest,
    DescribeScheduleRequest,
    ListScheduleMatchingTimesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from aion.schedules import CompiledSpec, InvalidSpec, describe_form, jitter_seed
from tests.conformance.reference import running_reference


@dataclass(frozen=True)
class Case:
    """A spec (in protobuf JSON) and the window [start, end] to list its times in."""

    name: str
    spec: dict[str, Any]
    start: str
    end: str


def case(name: str, spec: dict[str, Any], start: str, end: str) -> Case:
    return Case(name, spec, start, end)


LA = {"timezoneName": "America/Los_Angeles"}
BERLIN = {"timezoneName": "Europe/Berlin"}

CASES = [
    # Wall-clock times across DST changes, west and east of UTC.
    case("la-2pm-spring", {"calendar": [{"hour": "14"}], **LA}, "2024-03-08", "2024-03-13"),
    case("la-2pm-fall", {"calendar": [{"hour": "14"}], **LA}, "2024-11-01", "2024-11-06"),
    case(
        "la-0230-spring-skipped",
        {"calendar": [{"hour": "2", "minute": "30"}], **LA},
        "2024-03-08",
        "2024-03-13",
    ),
    case(
        "la-0130-fall-twice",
        {"calendar": [{"hour": "1", "minute": "30"}], **LA},
        "2024-11-01",
        "2024-11-06",
    ),
    case(
        "la-hourly-spring",
        {"calendar": [{"hour": "*", "minute": "15"}], **LA},
        "2024-03-10T06:00:00Z",
        "2024-03-10T14:00:00Z",
    ),
    case(
        "la-hourly-fall",
        {"calendar": [{"hour": "*", "minute": "15"}], **LA},
        "2024-11-03T05:00:00Z",
        "2024-11-03T13:00:00Z",
    ),
    case(
        "berlin-0230-fall",
        {"calendar": [{"hour": "2", "minute": "30"}], **BERLIN},
        "2024-10-25",
        "2024-10-29",
    ),
    case(
        "berlin-hourly-fall",
        {"calendar": [{"hour": "*", "minute": "30"}], **BERLIN},
        "2024-10-26T22:00:00Z",
        "2024-10-27T04:00:00Z",
    ),
    case(
        "berlin-0230-spring",
        {"calendar": [{"hour": "2", "minute": "30"}], **BERLIN},
        "2024-03-29",
        "2024-04-02",
    ),
    case(
        "lord-howe-half-hour-dst",
        {"calendar": [{"hour": "*", "minute": "0,45"}], "timezoneName": "Australia/Lord_Howe"},
        "2024-04-06T13:00:00Z",
        "2024-04-06T17:00:00Z",
    ),
    case(
        "santiago-midnight-dst-sunday",
        {
            "calendar": [{"hour": "0", "minute": "0,30", "dayOfWeek": "sun"}],
            "timezoneName": "America/Santiago",
        },
        "2024-09-06",
        "2024-09-17",
    ),
    case(
        "santiago-midnight-dst",
        {
            "calendar": [{"hour": "0-1", "minute": "*/20", "dayOfMonth": "7-8"}],
            "timezoneName": "America/Santiago",
        },
        "2024-09-06",
        "2024-09-10",
    ),
    case(
        "kolkata-daily",
        {"calendar": [{"hour": "9", "minute": "15"}], "timezoneName": "Asia/Kolkata"},
        "2024-06-01",
        "2024-06-05",
    ),
    # Fields, steps, ranges, lists and names.
    case(
        "steps",
        {"calendar": [{"second": "*/15", "minute": "*/20", "hour": "9-17/4"}]},
        "2024-05-01",
        "2024-05-02",
    ),
    case(
        "lists-and-ranges",
        {"calendar": [{"minute": "5,10-12,40-50/5", "hour": "*"}]},
        "2024-05-01T10:00:00Z",
        "2024-05-01T13:00:00Z",
    ),
    case(
        "friday-13th",
        {"calendar": [{"dayOfMonth": "13", "dayOfWeek": "fri"}]},
        "2024-01-01",
        "2026-12-31",
    ),
    case(
        "weekdays-new-york",
        {
            "calendar": [{"hour": "9", "minute": "30", "dayOfWeek": "mon-fri"}],
            "timezoneName": "America/New_York",
        },
        "2024-03-01",
        "2024-03-15",
    ),
    case(
        "weekday-1-7",
        {"calendar": [{"hour": "12", "dayOfWeek": "1-7"}]},
        "2024-05-01",
        "2024-05-15",
    ),
    case(
        "weekday-5-7",
        {"calendar": [{"hour": "12", "dayOfWeek": "5-7"}]},
        "2024-05-01",
        "2024-05-15",
    ),
    case(
        "leap-day",
        {"calendar": [{"month": "feb", "dayOfMonth": "29", "hour": "12"}]},
        "2024-01-01",
        "2033-01-01",
    ),
    case(
        "years",
        {"calendar": [{"year": "2025,2027-2028", "month": "Jan", "dayOfMonth": "1"}]},
        "2024-01-01",
        "2030-01-01",
    ),
    case("day-31", {"calendar": [{"dayOfMonth": "31"}]}, "2024-01-01", "2025-01-01"),
    case(
        "first-sunday",
        {"calendar": [{"dayOfMonth": "1-7", "dayOfWeek": "sun", "hour": "6"}]},
        "2024-01-01",
        "2024-07-01",
    ),
    case(
        "structured",
        {
            "structuredCalendar": [
                {
                    "hour": [{"start": 8, "end": 18, "step": 5}],
                    "minute": [{"start": 0}, {"start": 30}],
                    "dayOfWeek": [{"start": 1, "end": 5}],
                    "dayOfMonth": [{"start": 1, "end": 31}],
                    "month": [{"start": 1, "end": 12}],
                    "second": [{"start": 0}],
                    "comment": "office hours",
                }
            ]
        },
        "2024-05-03",
        "2024-05-08",
    ),
    # Intervals and phases.
    case("interval-90m", {"interval": [{"interval": "5400s"}]}, "2024-05-01", "2024-05-02"),
    case(
        "interval-phase",
        {"interval": [{"interval": "3600s", "phase": "900s"}]},
        "2024-05-01T00:00:00Z",
        "2024-05-01T06:00:00Z",
    ),
    case(
        "interval-weekly-phase",
        {"interval": [{"interval": "604800s", "phase": "97200s"}]},
        "2024-05-01",
        "2024-07-01",
    ),
    case(
        "interval-odd-seconds",
        {"interval": [{"interval": "17s", "phase": "5s"}]},
        "2024-05-01T00:00:00Z",
        "2024-05-01T00:03:00Z",
    ),
    # Cron strings.
    case("cron-weekdays", {"cronString": ["0 12 * * MON-FRI"]}, "2024-05-01", "2024-05-15"),
    case(
        "cron-tz-spring",
        {"cronString": ["CRON_TZ=America/New_York 30 2 * * *"]},
        "2024-03-08",
        "2024-03-13",
    ),
    case(
        "cron-tz-london-sunday",
        {"cronString": ["TZ=Europe/London 0 1 * * sun"]},
        "2024-03-20",
        "2024-04-15",
    ),
    case(
        "cron-every-5s",
        {"cronString": ["@every 5s"]},
        "2024-05-01T00:00:00Z",
        "2024-05-01T00:01:00Z",
    ),
    case(
        "cron-hourly", {"cronString": ["@hourly"]}, "2024-05-01T00:30:00Z", "2024-05-01T06:00:00Z"
    ),
    case("cron-every-phase", {"cronString": ["@every 14h/3h"]}, "2024-05-01", "2024-05-05"),
    case(
        "cron-7-fields",
        {"cronString": ["30 */15 10 * * * 2024"]},
        "2024-12-30",
        "2025-01-02",
    ),
    case(
        "cron-6-fields-years", {"cronString": ["0 0 1 1 * 2025-2027"]}, "2024-01-01", "2030-01-01"
    ),
    case(
        "cron-comment-and-daily-weekly",
        {"cronString": ["0 9 * * 1 # standup", "@daily", "@weekly"]},
        "2024-05-01",
        "2024-05-15",
    ),
    case("cron-every-days", {"cronString": ["@every 1.5d"]}, "2024-05-01", "2024-05-10"),
    # Exclusions, start and end times.
    case(
        "exclude-lunch-and-weekends",
        {
            "calendar": [{"hour": "*"}],
            "excludeCalendar": [
                {"hour": "12-13", "minute": "*"},
                {"dayOfWeek": "sat,sun", "hour": "*"},
            ],
        },
        "2024-05-03",
        "2024-05-07",
    ),
    case(
        "exclude-structured",
        {
            "interval": [{"interval": "600s"}],
            "excludeStructuredCalendar": [
                {"minute": [{"start": 20, "end": 39}], "hour": [{"start": 0, "end": 23}]}
            ],
        },
        "2024-05-01T10:00:00Z",
        "2024-05-01T12:00:00Z",
    ),
    case(
        "start-end",
        {
            "interval": [{"interval": "600s"}],
            "startTime": "2024-05-01T10:05:30Z",
            "endTime": "2024-05-01T11:00:00Z",
        },
        "2024-05-01T09:00:00Z",
        "2024-05-01T12:00:00Z",
    ),
    case(
        "start-exactly-on-match",
        {"calendar": [{"minute": "*/5", "hour": "*"}], "startTime": "2024-05-01T10:05:00Z"},
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:30:00Z",
    ),
    case(
        "window-start-fraction",
        {"calendar": [{"minute": "*", "hour": "*"}], "endTime": "2024-05-01T10:04:00.5Z"},
        "2024-05-01T10:00:00.250Z",
        "2024-05-01T10:10:00Z",
    ),
    # Jitter: deterministic per schedule and nominal time.
    case(
        "jitter-hourly",
        {"calendar": [{"hour": "*"}], "jitter": "600s"},
        "2024-05-01",
        "2024-05-02",
    ),
    case(
        "jitter-capped-by-gap",
        {"interval": [{"interval": "60s"}], "jitter": "3600s"},
        "2024-05-01T00:00:00Z",
        "2024-05-01T00:30:00Z",
    ),
    case(
        "jitter-cron-tz",
        {"cronString": ["CRON_TZ=Asia/Tokyo 0 */6 * * *"], "jitter": "1800.5s"},
        "2024-05-01",
        "2024-05-05",
    ),
    case(
        "calendars-and-intervals",
        {
            "calendar": [{"hour": "3", "minute": "7"}, {"hour": "*/8", "minute": "0"}],
            "interval": [{"interval": "25200s", "phase": "60s"}],
            "timezoneName": "Pacific/Chatham",
        },
        "2024-04-05",
        "2024-04-09",
    ),
]

INVALID = [
    {"calendar": [{"hour": "25"}]},
    {"calendar": [{"minute": "5-3"}]},
    {"calendar": [{"dayOfWeek": "funday"}]},
    {"calendar": [{"second": "1/0"}]},
    {"calendar": [{"month": "1/2/3"}]},
    {"calendar": [{"hour": "1-2-3"}]},
    {"calendar": [{"minute": "*/x"}]},
    {"calendar": [{"minute": "5/"}]},
    {"calendar": [{"hour": "25", "minute": "61", "year": "1999"}]},
    {"cronString": ["0 12 * *"]},
    {"cronString": ["@every"]},
    {"cronString": ["@every 5"]},
    {"cronString": ["@every 5x"]},
    {"cronString": ["TZ=UTC"]},
    {"cronString": ["CRON_TZ=UTC 0 * * * *", "0 1 * * *"]},
    {"cronString": ["CRON_TZ=UTC 0 * * * *"], "timezoneName": "Asia/Tokyo"},
    {"timezoneName": "Mars/Olympus_Mons"},
    {"interval": [{"interval": "0.5s"}]},
    {"interval": [{"interval": "60s", "phase": "60s"}]},
    {"structuredCalendar": [{"hour": [{"start": 24}], "dayOfWeek": [{"start": 7}]}]},
    {"structuredCalendar": [{"minute": [{"start": 10, "end": 5, "step": -1}]}]},
    {"structuredCalendar": [{"comment": "x" * 201}]},
]

NAMESPACE = "default"


def _timestamp(text: str) -> Timestamp:
    ts = Timestamp()
    ts.FromJsonString(text if "T" in text else text + "T00:00:00Z")
    return ts


def _spec(case: Case | dict[str, Any]) -> ScheduleSpec:
    return json_format.ParseDict(case.spec if isinstance(case, Case) else case, ScheduleSpec())


@dataclass(frozen=True)
class Answer:
    """The reference's answers for one case."""

    schedule_id: str
    times: list[dt.datetime]
    described: ScheduleSpec


@dataclass(frozen=True)
class Reference:
    namespace_id: str
    answers: dict[str, Answer]
    errors: list[str]


async def _create(client: Client, schedule_id: str, spec: ScheduleSpec) -> None:
    action = ScheduleAction(
        start_workflow=NewWorkflowExecutionInfo(
            workflow_id=f"wf-{schedule_id}",
            workflow_type=WorkflowType(name="Nothing"),
            task_queue=TaskQueue(name="nowhere"),
        )
    )
    await client.workflow_service.create_schedule(
        CreateScheduleRequest(
            namespace=NAMESPACE,
            schedule_id=schedule_id,
            request_id=schedule_id,
            schedule=Schedule(spec=spec, action=action, state=ScheduleState(paused=True)),
        )
    )


async def _answer(client: Client, index: int, case: Case) -> Answer:
    schedule_id = f"spec-{index}-{case.name}"
    await _create(client, schedule_id, _spec(case))
    described = await client.workflow_service.describe_schedule(
        DescribeScheduleRequest(namespace=NAMESPACE, schedule_id=schedule_id)
    )
    listed = await client.workflow_service.list_schedule_matching_times(
        ListScheduleMatchingTimesRequest(
            namespace=NAMESPACE,
            schedule_id=schedule_id,
            start_time=_timestamp(case.start),
            end_time=_timestamp(case.end),
        )
    )
    times = [t.ToDatetime(tzinfo=dt.UTC) for t in listed.start_time]
    return Answer(schedule_id, times, described.schedule.spec)


async def _error(client: Client, index: int, spec: dict[str, Any]) -> str:
    try:
        await _create(client, f"invalid-{index}", _spec(spec))
    except RPCError as err:
        assert err.status == RPCStatusCode.INVALID_ARGUMENT, err
        return err.message
    raise AssertionError(f"the reference accepted {spec}")


@pytest.fixture(scope="module")
async def reference() -> AsyncIterator[Reference]:
    async with running_reference() as server:
        client = await Client.connect(server.address, namespace=NAMESPACE)
        namespace = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=NAMESPACE)
        )
        answers = await asyncio.gather(*(_answer(client, i, c) for i, c in enumerate(CASES)))
        errors = await asyncio.gather(*(_error(client, i, s) for i, s in enumerate(INVALID)))
        yield Reference(
            namespace.namespace_info.id,
            {c.name: a for c, a in zip(CASES, answers, strict=True)},
            list(errors),
        )


def test_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matching_times_equal_the_reference(reference: Reference, case: Case) -> None:
    answer = reference.answers[case.name]
    compiled = CompiledSpec.from_proto(_spec(case))
    times = compiled.matching_times(
        _timestamp(case.start).ToDatetime(tzinfo=dt.UTC),
        _timestamp(case.end).ToDatetime(tzinfo=dt.UTC),
        jitter_seed(reference.namespace_id, answer.schedule_id),
    )
    assert answer.times, "a window without matches proves nothing"
    assert [t.isoformat() for t in times] == [t.isoformat() for t in answer.times]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_described_spec_equals_the_reference(reference: Reference, case: Case) -> None:
    expected = json_format.MessageToDict(reference.answers[case.name].described)
    assert json_format.MessageToDict(describe_form(_spec(case))) == expected


@pytest.mark.parametrize("index", range(len(INVALID)))
def test_invalid_spec_errors_equal_the_reference(reference: Reference, index: int) -> None:
    with pytest.raises(InvalidSpec) as raised:
        CompiledSpec.from_proto(_spec(INVALID[index]))
    assert raised.value.message == reference.errors[index]
