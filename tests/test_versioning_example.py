"""examples/versioning: the keynote's Worker Versioning demo on a real Aion server."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from examples.versioning import demo
from tests.helpers import unique

pytestmark = pytest.mark.timeout(60)


async def test_transfers_finish_on_the_build_they_started_on(client: Client) -> None:
    deployment = unique("bank")
    results = await demo.run(client, deployment)
    assert results == {"A (started on v1)": "moved $10", "B (started on v2)": "moved $25"}
    builds: dict[str, set[str]] = {}
    async for execution in client.list_workflows(f"TemporalWorkerDeployment = '{deployment}'"):
        handle = client.get_workflow_handle(execution.id)
        builds[execution.id.split("-")[1]] = {
            e.workflow_task_completed_event_attributes.deployment_version.build_id
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        }
    assert builds == {"a": {"v1"}, "b": {"v2"}}
