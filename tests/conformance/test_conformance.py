"""Each scenario's history on Aion must match the reference Temporal dev server's."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import pytest
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from tests.conformance import update_scenarios  # noqa: F401 (registers its scenarios)
from tests.conformance.normalize import Plain, diff, normalize_history
from tests.conformance.reference import temporal_binary
from tests.conformance.scenarios import SCENARIOS, Scenario

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(temporal_binary() is None, reason="the temporal CLI is not installed"),
]

SCENARIO_TIMEOUT = 60.0
HEARTBEAT_THROTTLE = timedelta(milliseconds=100)


async def run_scenario(client: Client, scenario: Scenario) -> list[Plain]:
    """Run `scenario` on a fresh task queue with an in-process worker; its normalized history."""
    suffix = uuid.uuid4().hex[:8]
    workflow_id = f"wf-{scenario.name}-{suffix}"
    task_queue = f"tq-{scenario.name}-{suffix}"
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=scenario.workflows,
            activities=scenario.activities,
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        ):
            handle = await scenario.drive(client, task_queue, workflow_id)
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
        history = await fetch_run_chain(client, workflow_id, handle.first_execution_run_id)
    aliases = {workflow_id: "<workflow-id>", task_queue: "<task-queue>"}
    return normalize_history(history, aliases)


async def fetch_run_chain(client: Client, workflow_id: str, run_id: str | None) -> History:
    """The events of `run_id` and of every run its chain continued as (continue-as-new, retry,
    cron), one after the other."""
    chain = History()
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        chain.events.extend(history.events)
        last = history.events[-1]
        attributes = getattr(last, last.WhichOneof("attributes") or "", None)
        run_id = getattr(attributes, "new_execution_run_id", None)
    return chain


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(s, id=s.name, marks=[pytest.mark.skip(reason=s.skip)] if s.skip else [])
        for s in SCENARIOS
    ],
)
async def test_history_matches_reference(
    scenario: Scenario,
    reference_client: Client,
    candidate_client: Client,
    reference_histories: dict[str, list[Plain]],
) -> None:
    if scenario.name not in reference_histories:
        reference_histories[scenario.name] = await run_scenario(reference_client, scenario)
    expected = reference_histories[scenario.name]
    actual = await run_scenario(candidate_client, scenario)
    if actual != expected:
        pytest.fail(
            f"history of {scenario.name} differs from the reference:\n"
            + diff(expected, actual, ("reference", "candidate")),
            pytrace=False,
        )
