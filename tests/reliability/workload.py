"""The workflows the database fault tests run: a short one (an activity), a longer one (a chain
of activities), and a sink that keeps every number signalled to it (a `Probe`'s) until told to
finish."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import RetryPolicy


@activity.defn
async def double(x: int) -> int:
    return 2 * x


@workflow.defn
class Short:
    """One activity: a workflow task, the activity, a workflow task."""

    @workflow.run
    async def run(self, x: int) -> int:
        return await workflow.execute_activity(
            double,
            x,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )


@workflow.defn
class Chain:
    """`steps` activities one after the other: in flight for a while."""

    @workflow.run
    async def run(self, x: int, steps: int) -> int:
        for _ in range(steps):
            x = await workflow.execute_activity(
                double,
                x,
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
            )
        return x


@workflow.defn
class Sink:
    """Keeps the numbers signalled to it; returns them when signalled to finish."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.done = False

    @workflow.signal
    def number(self, value: int, padding: str = "") -> None:
        self.received.append(value)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> list[int]:
        await workflow.wait_condition(lambda: self.done)
        return self.received


async def assert_completed_once(client: Client, workflow_id: str) -> None:
    """One history with ids 1..n in order, one start and one completion: nothing written twice."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    ids = [e.event_id for e in history.events]
    assert ids == list(range(1, len(ids) + 1)), f"{workflow_id}: event ids {ids}"
    types = [e.event_type for e in history.events]
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1, workflow_id
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == 1, workflow_id
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, workflow_id
