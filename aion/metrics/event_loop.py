"""Event-loop lag: how late the loop runs a callback it was asked to run at a given time. A
Python server does all its work on one loop, so this is the first sign that it is saturated."""

from __future__ import annotations

import asyncio

from aion import metrics

INTERVAL_S = 0.25


async def watch(interval: float = INTERVAL_S) -> None:
    """Observe `aion_event_loop_lag` every `interval` seconds, until cancelled."""
    loop = asyncio.get_running_loop()
    lag = metrics.event_loop_lag.labels("frontend")
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        lag.observe(max(0.0, loop.time() - due))
