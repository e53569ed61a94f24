"""examples/schedules: the keynote's three schedules on a real Aion server."""

from __future__ import annotations

import asyncio
import time
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client

from examples.schedules.schedules import create_all, new_worker
from tests.helpers import unique

pytestmark = pytest.mark.timeout(60)

PACIFIC = ZoneInfo("America/Los_Angeles")


async def test_the_three_keynote_schedules(client: Client) -> None:
    every_5s, business, two_pm = await create_all(client, prefix=unique("keynote") + "-")
    try:
        for t in (await two_pm.describe()).info.next_action_times:
            local = t.astimezone(PACIFIC)
            assert (local.hour, local.minute, local.second) == (14, 0, 0)  # DST or not
        for t in (await business.describe()).info.next_action_times:
            local = t.astimezone(PACIFIC)
            assert local.weekday() < 5 and 9 <= local.hour <= 17 and local.minute < 5  # jitter
        gaps = [
            (b - a).total_seconds()
            for a, b in zip(
                (await every_5s.describe()).info.next_action_times,
                (await every_5s.describe()).info.next_action_times[1:],
                strict=False,
            )
        ]
        assert set(gaps) == {5.0}
        async with new_worker(client):
            deadline = time.monotonic() + 30
            while (await every_5s.describe()).info.num_actions < 1:
                assert time.monotonic() < deadline, "the 5-second schedule never ran"
                await asyncio.sleep(0.2)
            action = (await every_5s.describe()).info.recent_actions[0].action
            result = await client.get_workflow_handle(
                action.workflow_id,  # type: ignore[attr-defined]
                run_id=action.first_execution_run_id,  # type: ignore[attr-defined]
            ).result()
            assert result.startswith("heartbeat report at ")
    finally:
        for handle in (every_5s, business, two_pm):
            await handle.delete()
