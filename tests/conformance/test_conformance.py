"""Each scenario's history on Aion must match the reference Temporal dev server's."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import pytest
from temporalio.api.history.v1 import History
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkerDeploymentConfig

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
    deployment = f"dep-{suffix}"
    versioning = None
    if scenario.versioning is not None:
        versioning = WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment, "1.0"),
            use_worker_versioning=True,
            default_versioning_behavior=scenario.versioning,
        )
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=scenario.workflows,
            activities=scenario.activities,
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            deployment_config=versioning,
        ):
            if versioning is not None:
                await _make_current(client, deployment, "1.0")
            handle = await scenario.drive(client, task_queue, workflow_id)
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
        history = await fetch_run_chain(client, workflow_id, handle.first_execution_run_id)
    aliases = {workflow_id: "<workflow-id>", task_queue: "<task-queue>", deployment: "<deployment>"}
    return normalize_history(history, aliases)


async def _make_current(client: Client, deployment: str, build_id: str) -> None:
    """Once the worker's pollers registered the version, make it the current one."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=deployment, build_id=build_id
    )
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(request)
            return
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.05)


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
