"""The keynote's three schedules, each defined in one spec.

- every 5 seconds: a heartbeat report;
- hourly during business hours, Monday to Friday, Pacific time, with up to 5 minutes of jitter;
- every day at 2 pm Pacific, which stays at 2 pm local time across daylight saving changes.

Run a server (`scripts/dev-server`), then `python -m examples.schedules.schedules` creates the
three schedules and a worker that runs what they start.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.worker import Worker

TASK_QUEUE = "schedules-example"
PACIFIC = "America/Los_Angeles"


@workflow.defn
class Report:
    """What every schedule starts: a report named after its schedule."""

    @workflow.run
    async def run(self, name: str) -> str:
        return f"{name} report at {workflow.now():%Y-%m-%d %H:%M:%S} UTC"


def _start(name: str) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(Report.run, name, id=name, task_queue=TASK_QUEUE)


EVERY_FIVE_SECONDS = Schedule(
    action=_start("heartbeat"),
    spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=5))]),
)

BUSINESS_HOURS = Schedule(
    action=_start("business-hours"),
    spec=ScheduleSpec(
        calendars=[
            ScheduleCalendarSpec(
                hour=[ScheduleRange(9, 17)],
                day_of_week=[ScheduleRange(1, 5)],  # Monday to Friday
                comment="hourly, 9 am to 5 pm, weekdays",
            )
        ],
        time_zone_name=PACIFIC,
        jitter=timedelta(minutes=5),
    ),
)

TWO_PM_PACIFIC = Schedule(
    action=_start("two-pm"),
    spec=ScheduleSpec(cron_expressions=["0 14 * * *"], time_zone_name=PACIFIC),
)

SCHEDULES = {
    "every-five-seconds": EVERY_FIVE_SECONDS,
    "business-hours": BUSINESS_HOURS,
    "two-pm-pacific": TWO_PM_PACIFIC,
}


async def create_all(client: Client, prefix: str = "") -> list[ScheduleHandle]:
    """Create the three schedules (ids prefixed with `prefix`)."""
    return [await client.create_schedule(prefix + sid, s) for sid, s in SCHEDULES.items()]


def new_worker(client: Client) -> Worker:
    return Worker(client, task_queue=TASK_QUEUE, workflows=[Report])


async def main() -> None:
    client = await Client.connect("localhost:7233")
    for handle in await create_all(client):
        described = await handle.describe()
        print(handle.id, "next:", [str(t) for t in described.info.next_action_times[:3]])
    async with new_worker(client):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
